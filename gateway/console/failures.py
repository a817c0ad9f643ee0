"""Failures and data quality (seed 003's "recent failures" and "data-quality issues").

Recent failed calls grouped by provider and error type, and interactions with quality flags
grouped by flag. Failures are the review API's listing query (status=error) with a bound; the
flags come from one query that keeps the newest few per flag. A page never returns more than
a few hundred rows however large the store is; a group's count is exact up to that bound and
says so past it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiohttp import web

from gateway.console.guard import REVIEW, page, render
from gateway.console.overview import RANGES, chosen_window
from gateway.console.reader import reader
from gateway.console.render import when
from gateway.console.session import Session
from gateway.proxy.capture import ANSWER_TRUNCATED, USAGE_OUT_OF_RANGE
from gateway.proxy.exchange import DERIVATION_FAILED
from gateway.quality import CONTENT_FILTERED, EMPTY_RESPONSE, TRUNCATED, UNRENDERED_TEMPLATE
from gateway.records.interaction import ERROR
from gateway.storable import REPLACED_FLAG
from gateway.store import ReviewStore
from gateway.store.queries import InteractionQuery

FAILURES_READ = 200  # the latest failures grouped; enough to see what is going wrong now
EXAMPLES_PER_FLAG = 5
FLAGS = (
    UNRENDERED_TEMPLATE,
    EMPTY_RESPONSE,
    TRUNCATED,
    CONTENT_FILTERED,
    ANSWER_TRUNCATED,
    USAGE_OUT_OF_RANGE,
    DERIVATION_FAILED,
    REPLACED_FLAG,
)


@page(REVIEW)
async def failures(request: web.Request, session: Session) -> web.StreamResponse:
    name, window = chosen_window(request.query)
    store: ReviewStore = reader(request)
    failed = await store.list_interactions(
        InteractionQuery(window=window, status=ERROR, limit=FAILURES_READ)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in await store.flagged(window, FLAGS, EXAMPLES_PER_FLAG + 1):
        found.setdefault(row["flag"], []).append(row)
    flagged = [
        {
            "flag": flag,
            "count": len(found[flag][:EXAMPLES_PER_FLAG]),
            "more": len(found[flag]) > EXAMPLES_PER_FLAG,
            "examples": [_example(row) for row in found[flag][:EXAMPLES_PER_FLAG]],
        }
        for flag in FLAGS
        if flag in found
    ]
    context = {
        "ranges": list(RANGES),
        "range": name,
        "groups": _grouped(failed),
        "failures_read": len(failed),
        "failures_capped": len(failed) == FAILURES_READ,
        "flagged": flagged,
    }
    return render(request, session, "failures.html", context)


def _grouped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "statuses": set(), "latest": None}
    )
    for row in rows:  # newest first: the first of each group is its latest
        group = groups[(row["provider"] or "?", row["error_type"] or "?")]
        group["count"] += 1
        group["statuses"].add(row["http_status"])
        if group["latest"] is None:
            group["latest"] = _example(row)
    return [
        {"provider": provider, "error_type": error_type, **group}
        for (provider, error_type), group in sorted(groups.items(), key=lambda g: -g[1]["count"])
    ]


def _example(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "created": when(row["created_at"]),
        "model": row["requested_model"],
        "message": (row.get("error_message") or "")[:300],
    }
