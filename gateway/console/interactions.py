"""The interactions pages: the filtered listing, one interaction as a conversation, judging it.

Filters are the review API's (gateway/admin/params.py), under the same names, in the URL: a
view is shared by sharing its address, and the listing and the detail page ask the store the
same `list_interactions` query the API asks. Empty form fields are dropped before parsing
(a form sends `model=` for a field left blank; the API would call that an error).
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from multidict import MultiDict, MultiMapping

from gateway.admin.params import LIST_PARAMS, decode_cursor, encode_cursor, interaction_query
from gateway.console import conversation, judging
from gateway.console.diff import word_diff
from gateway.console.guard import REVIEW, page, render
from gateway.console.reader import reader
from gateway.console.render import when
from gateway.console.session import CSRF_FIELD, Session
from gateway.errors import NotFound
from gateway.feedback.edits import answer_text
from gateway.records.feedback import OUTCOMES, THUMBS, latest
from gateway.store import ReviewStore
from gateway.store.search import SHORT_RECENT, is_short

PAGE_SIZE = 50
# Kept between pages and carried to the detail page: the review API's filters, not its paging.
PAGING = ("cursor", "before", "limit")
FILTERS = tuple(name for name in LIST_PARAMS if name not in PAGING)


def filters(params: MultiMapping[str]) -> MultiDict[str]:
    """The filter parameters that carry a value, in the review API's names."""
    return MultiDict((k, v.strip()) for k, v in params.items() if k in FILTERS and v.strip())


@page(REVIEW)
async def listing(request: web.Request, session: Session) -> web.StreamResponse:
    chosen = filters(request.query)
    params = MultiDict(chosen)
    for name in ("cursor", "before"):  # `before`: the previous page (newer rows)
        if request.query.get(name):
            params[name] = request.query[name]
    query = dataclasses.replace(interaction_query(params), limit=PAGE_SIZE + 1)
    store: ReviewStore = reader(request)
    rows = await store.list_interactions(query)
    more = len(rows) > PAGE_SIZE
    backwards = query.before is not None
    # Read backwards, the row past the page is its newest: the far end from the cursor.
    rows = rows[-PAGE_SIZE:] if backwards else rows[:PAGE_SIZE]
    newer = more if backwards else query.after is not None
    older = backwards or more
    context = {
        "rows": [_summary(row) for row in rows],
        "chosen": chosen,
        "tags": chosen.getall("tag", []),
        "filter_qs": urlencode(list(chosen.items())),
        "next_url": _page_url(chosen, "cursor", rows[-1]) if rows and older else None,
        "prev_url": _page_url(chosen, "before", rows[0]) if rows and newer else None,
        "first_page": "cursor" not in params and "before" not in params,
        "outcomes": OUTCOMES,
        "thumbs": THUMBS,
        # A needle too short for the search index looks through the newest rows only.
        "short_search": SHORT_RECENT if query.text and is_short(query.text) else None,
        "short_recent": SHORT_RECENT,
    }
    template = "interaction_rows.html" if request.query.get("rows") else "interactions.html"
    return render(request, session, template, context)


def _page_url(chosen: MultiDict[str], direction: str, row: dict[str, Any]) -> str:
    return "?" + urlencode([*chosen.items(), (direction, encode_cursor(row))])


@page(REVIEW)
async def detail(request: web.Request, session: Session) -> web.StreamResponse:
    interaction_id = _id(request)
    store: ReviewStore = reader(request)
    row = await store.get_interaction(interaction_id)
    if row is None:
        raise NotFound(f"No interaction {interaction_id} is stored (yet).", param="id")
    events = await store.get_feedback(interaction_id)
    chosen = filters(request.query)
    answer = conversation.answer(row["response"])
    original = answer_text(row["response"])
    context = {
        "row": row,
        "messages": conversation.messages(row["endpoint"], row["request"]),
        "answer": answer,
        "original": original or "",
        "placeholders": conversation.placeholders(
            row["endpoint"], row["request"], row["quality_flags"]
        ),
        "events": [_event(event, original) for event in reversed(events)],
        "latest": latest(events),
        "raw_request": conversation.pretty(row["request"]),
        "raw_response": conversation.pretty(row["response"]),
        "filter_qs": urlencode(list(chosen.items())),
        "next_url": await _neighbour_url(store, row, chosen, "after"),
        "prev_url": await _neighbour_url(store, row, chosen, "before"),
        "saved": request.query.get("saved"),
        "outcomes": OUTCOMES,
        "dimensions": judging.DIMENSIONS,
        "idempotency_key": str(uuid.uuid4()),
        "csrf_name": CSRF_FIELD,
    }
    return render(request, session, "interaction.html", context)


@page(REVIEW)
async def judge(request: web.Request, session: Session) -> web.StreamResponse:
    interaction_id = _id(request)
    store: ReviewStore = reader(request)
    row = await store.get_interaction(interaction_id)
    if row is None:
        raise NotFound(f"No interaction {interaction_id} is stored (yet).", param="id")
    form = await request.post()
    body = judging.feedback_body(form, interaction_id, session)
    labels = (row["requested_model"], row["variant"])
    stored_id = await judging.save(request.app, body, session, labels)
    # Back to the page, under the filters it was opened with (re-checked: it came from a form).
    back = filters(MultiDict(parse_qsl(str(form.get("filter_qs", "")))))
    back["saved"] = stored_id
    query = urlencode(list(back.items()))
    raise web.HTTPSeeOther(f"/console/interactions/{interaction_id}?{query}")


def _id(request: web.Request) -> str:
    raw = request.match_info["id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise NotFound(f"No interaction {raw!r}: ids are UUIDs.", param="id") from None


async def _neighbour_url(
    store: ReviewStore, row: dict[str, Any], chosen: MultiDict[str], side: str
) -> str | None:
    """The next older (`after`) or newer (`before`) interaction under the same filters; None
    at either end."""
    params = MultiDict(chosen)
    params["limit"] = "1"
    edge = decode_cursor(encode_cursor(row))
    base = interaction_query(params)
    if side == "after":
        query = dataclasses.replace(base, after=edge)
    else:
        query = dataclasses.replace(base, before=edge)
    found = await store.list_interactions(query)
    if not found:
        return None
    suffix = f"?{urlencode(list(chosen.items()))}" if chosen else ""
    return f"/console/interactions/{found[0]['id']}{suffix}"


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """What a listing row shows: who, which model, how it went, and how it starts."""
    messages = conversation.messages(row["endpoint"], row["request"])
    asked = next((m.text for m in reversed(messages) if m.role in ("user", "prompt")), "")
    return {
        **{k: row[k] for k in ("id", "created_at", "requested_model", "variant", "status")},
        **{k: row[k] for k in ("user", "latency_ms", "cost_usd", "feedback_count")},
        "created": when(row["created_at"]),
        "tokens": (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0),
        "flags": row["quality_flags"] or [],
        "asked": _short(asked),
        "answered": _short(answer_text(row["response"]) or row["error_message"] or ""),
    }


def _event(event: dict[str, Any], original: str | None) -> dict[str, Any]:
    correction = event.get("correction")
    diff = word_diff(original, correction) if correction is not None and original else None
    return {**event, "created": when(event["created_at"]), "diff": diff}


def _short(text: str, limit: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
