"""The overview: the store's numbers for a chosen time range, in total and per model/variant.

The same numbers and the same report as `GET /admin/stats` (gateway/admin/stats.py), so the
page and the API never disagree; computed from the store, so it needs no Prometheus. The store's
`overview` gives the usage, the latency percentiles and the charts over time from one read of
the hourly rollups plus the rows at the window's edges (gateway/store/rollups.py): exact counts
and sums, percentiles within 5% on large ranges.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.admin.stats import report
from gateway.console.charts import Series, series
from gateway.console.guard import REVIEW, page, render
from gateway.console.reader import reader
from gateway.console.session import Session
from gateway.store import StatsStore
from gateway.store.queries import TimeWindow
from gateway.store.rollups import EXACT_PERCENTILES_MAX

RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_RANGE = "24h"
# Bucket per range: a few dozen bars each (`all` is weekly, however long the store has run).
BUCKET_SECONDS = {"1h": 300, "24h": 3600, "7d": 6 * 3600, "30d": 24 * 3600, "all": 7 * 24 * 3600}
MAX_BARS = 400  # beyond this, empty buckets are left out rather than drawn


def chosen_window(params: Any) -> tuple[str, TimeWindow]:
    name = params.get("range", DEFAULT_RANGE)
    if name not in RANGES:
        name = DEFAULT_RANGE
    span = RANGES[name]
    return name, TimeWindow(since=datetime.now(UTC) - span if span else None)


@page(REVIEW)
async def overview(request: web.Request, session: Session) -> web.StreamResponse:
    name, window = chosen_window(request.query)
    store: StatsStore = reader(request)
    seconds = BUCKET_SECONDS[name]
    # Side by side: PostgreSQL's pool and the SQLite reader's threads run them at once.
    numbers, feedback = await asyncio.gather(
        store.overview(window, seconds), store.feedback_by_variant(window)
    )
    stats = report(window, numbers["usage"], numbers["latency"], feedback)
    context = {
        "trends": trends(numbers["over_time"], seconds, window),
        "ranges": list(RANGES),
        "range": name,
        "totals": stats["totals"],
        "totals_extra": _feedback_rates(stats["totals"]),
        "groups": [{**g, **_feedback_rates(g)} for g in stats["by_variant"]],
        "exact_percentiles_max": EXACT_PERCENTILES_MAX,
    }
    return render(request, session, "overview.html", context)


def _feedback_rates(group: dict[str, Any]) -> dict[str, float | None]:
    """Share of interactions with feedback, and of thumbs given, the share that were up."""
    feedback = group["feedback"]
    thumbs = feedback["thumbs"]
    given = sum(thumbs.values())
    return {
        "feedback_rate": feedback["interactions"] / group["interactions"]
        if group["interactions"]
        else None,
        "positive_rate": thumbs.get("up", 0) / given if given else None,
    }


def trends(rows: list[dict[str, Any]], seconds: int, window: TimeWindow) -> list[Series]:
    """The charts over time: requests (errors as the line), latency p95 (p50 as the line),
    tokens, cost, and the share of interactions with feedback."""
    by_bucket = {int(row["bucket"]): row for row in rows}
    buckets = _bucket_starts(sorted(by_bucket), seconds, window)
    picked = [by_bucket.get(b) for b in buckets]

    def column(name: str) -> list[float | None]:
        return [float(row[name] or 0) if row else 0.0 for row in picked]

    def latency(name: str) -> list[float | None]:
        return [row["latency_ms"][name] if row else None for row in picked]

    feedback_rate: list[float | None] = [
        row["with_feedback"] / row["interactions"] if row and row["interactions"] else None
        for row in picked
    ]
    moment = _moment(seconds)
    return [
        series(
            "Requests (line: errors)",
            buckets,
            column("interactions"),
            _count,
            moment,
            overlay=column("error"),
        ),
        series(
            "Latency p95 (line: p50)", buckets, latency("p95"), _ms, moment, overlay=latency("p50")
        ),
        series("Tokens", buckets, column("tokens"), _count, moment),
        series("Cost (USD)", buckets, column("cost_usd"), _usd, moment),
        series("Share with feedback", buckets, feedback_rate, _share, moment),
    ]


def _bucket_starts(found: list[int], seconds: int, window: TimeWindow) -> list[int]:
    """Every bucket from the window's start (or the first with traffic) to now, so a quiet
    hour shows as a gap and not as nothing."""
    if not found and window.since is None:
        return []
    first = int(window.since.timestamp()) // seconds * seconds if window.since else found[0]
    last = int(datetime.now(UTC).timestamp()) // seconds * seconds
    last = max(last, found[-1] if found else last)
    if (last - first) // seconds > MAX_BARS:
        return found
    return list(range(first, last + 1, seconds))


def _moment(seconds: int) -> Callable[[int], str]:
    fmt = "%Y-%m-%d" if seconds >= 24 * 3600 else "%m-%d %H:%M"
    return lambda epoch: datetime.fromtimestamp(epoch, UTC).strftime(fmt)


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def _usd(value: float) -> str:
    return f"${value:,.4f}"


def _share(value: float) -> str:
    return f"{100 * value:.1f}%"
