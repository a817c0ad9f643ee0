"""The review API's handlers (admin scope, checked by the auth middleware).

    GET /admin/interactions         filtered, newest first, cursor-paged
    GET /admin/interactions/{id}    one interaction, its feedback events, the latest of each field
    GET /admin/stats                totals, success rate, latency, cost, tokens, feedback
    GET /admin/failures             recent failed calls with their error and request

Each handler parses its query (admin/params.py), asks the store one thing at a time, and shapes
the answer; the SQL lives in the store. A store failure passes through: the error middleware
answers it (503). Listings show bounded previews of each row
(admin/previews.py); one interaction's route shows it whole.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from aiohttp import web

from gateway.admin.params import encode_cursor, interaction_query, time_window
from gateway.admin.previews import preview
from gateway.admin.stats import report
from gateway.appkeys import STORE
from gateway.errors import NotFound, ValidationFailed
from gateway.http_errors import json_response
from gateway.records.feedback import latest
from gateway.records.interaction import ERROR
from gateway.store import ReviewStore, StatsStore
from gateway.store.queries import InteractionQuery

# What a failure listing shows: enough to see what was asked and what went wrong.
FAILURE_FIELDS = (
    "id",
    "created_at",
    "endpoint",
    "requested_model",
    "variant",
    "provider",
    "upstream_model",
    "user",
    "session",
    "http_status",
    "error_type",
    "error_message",
    "latency_ms",
    "request",
)


async def list_interactions(request: web.Request) -> web.Response:
    query = interaction_query(request.query)
    return json_response(await _page(request, query, fields=None))


async def list_failures(request: web.Request) -> web.Response:
    query = interaction_query(request.query)
    if query.status is not None:
        raise ValidationFailed("Failures are the calls with status error.", param="status")
    query = dataclasses.replace(query, status=ERROR)
    return json_response(await _page(request, query, fields=FAILURE_FIELDS))


async def get_interaction(request: web.Request) -> web.Response:
    raw_id = request.match_info["id"]
    try:
        interaction_id = str(uuid.UUID(raw_id))
    except ValueError:
        raise NotFound(f"No interaction {raw_id!r}: ids are UUIDs.", param="id") from None
    store: ReviewStore = request.app[STORE]
    row = await store.get_interaction(interaction_id)
    if row is None:
        raise NotFound(f"No interaction {interaction_id} is stored (yet).", param="id")
    events = await store.get_feedback(interaction_id)
    return json_response({**row, "feedback": {"events": events, "latest": latest(events)}})


async def get_stats(request: web.Request) -> web.Response:
    window = time_window(request.query)
    store: StatsStore = request.app[STORE]
    usage = await store.usage_by_variant(window)
    latency = await store.latency_percentiles(window)
    feedback = await store.feedback_by_variant(window)
    return json_response(report(window, usage, latency, feedback))


async def _page(
    request: web.Request, query: InteractionQuery, fields: tuple[str, ...] | None
) -> dict[str, Any]:
    # One row more than asked tells whether another page exists, without a count. Paging
    # backwards (`before`), that row is the newest one: the far end from the cursor.
    extra = dataclasses.replace(query, limit=query.limit + 1)
    store: ReviewStore = request.app[STORE]
    rows = await store.list_interactions(extra)
    more = len(rows) > query.limit
    backwards = query.before is not None
    rows = (rows[-query.limit :] if backwards else rows[: query.limit]) if more else rows
    data = [{name: preview(row[name]) for name in fields or row} for row in rows]
    newer = more if backwards else query.after is not None
    older = backwards or more
    return {
        "object": "list",
        "data": data,
        "has_more": more,
        "next_cursor": encode_cursor(rows[-1]) if rows and older else None,
        "prev_cursor": encode_cursor(rows[0]) if rows and newer else None,
    }
