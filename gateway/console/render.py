"""HTML for the console: Jinja2 templates (autoescaped), and the headers every page carries.

Autoescaping is on for every template, so a prompt, an answer or a key name is text on the page,
never markup. The Content-Security-Policy allows scripts, styles and requests from this origin
only and no inline script or style at all: a string that slipped past escaping still could not
run. Charts are SVG drawn on the server (console/charts.py), so they need no script either.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
UNKNOWN = "\N{EN DASH}"  # a value not known (no price, no latency): not zero
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Pages show conversations: no shared cache or back-button copy should keep them.
    "Cache-Control": "no-store",
}


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = _number
    env.filters["percent"] = _percent
    env.filters["usd"] = _usd
    env.filters["ms"] = _ms
    env.filters["when"] = when
    return env


def html(env: jinja2.Environment, template: str, context: dict[str, Any], status: int = 200):
    body = env.get_template(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def when(value: Any) -> str:
    """A stored time (datetime, or ISO text from SQLite) as `2025-06-01 12:00:00`, in UTC."""
    if value is None:
        return UNKNOWN
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _number(value: Any) -> str:
    if value is None:
        return UNKNOWN
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def _percent(value: Any) -> str:
    return UNKNOWN if value is None else f"{100 * value:.1f}%"


def _usd(value: Any) -> str:
    if value is None:
        return UNKNOWN
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _ms(value: Any) -> str:
    if value is None:
        return UNKNOWN
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"
