"""`POST /v1/feedback`: check, authorize, tie each item to its interaction, store, answer 201.

Unlike inference, the write is awaited: the caller wants to know its feedback is saved (a 503,
from the error middleware when the store fails, says it is not). The request is all or
nothing: any bad, forbidden or unknown item stores none.

Which interaction an item is about, in order: its `interaction_id`; its `response_id`, through
the ids this process saw lately, then the store; or the interaction of its feedback token. An
id is accepted when this process issued it lately (its row may still sit in the recorder's
queue or spool), when a valid token vouches for it, or when its row is stored; else 404.

With API keys configured, a key without the `admin` scope may only rate interactions it made
itself (or that a feedback token vouches for): another key's interaction answers the same 404
as an unknown id, so a key cannot learn which ids exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.appkeys import CONFIG, FEEDBACK_TOKENS, KEYS, METRICS, RECENT_INTERACTIONS, STORE
from gateway.auth import ADMIN, API_KEY, KEY_NAME
from gateway.bodies import read_json
from gateway.errors import AuthenticationFailed, NotFound, PermissionDenied
from gateway.feedback.edits import EditBudget, answer_text, classify, levenshtein
from gateway.feedback.recent import Labels
from gateway.feedback.validate import FeedbackItem, parse_body
from gateway.http_errors import json_response
from gateway.ids import uuid7
from gateway.metrics import feedback_events
from gateway.records.feedback import Feedback
from gateway.records.headers import FEEDBACK_TOKEN_HEADER
from gateway.store import FeedbackStore

# How long past `capture.flush_interval` a correction waits for its answer's row when it came
# in before the recorder wrote it; after that its edit distance is left null.
_ANSWER_WAIT_SECONDS = 1.0
_ANSWER_POLL_SECONDS = 0.05


async def post_feedback(request: web.Request) -> web.Response:
    app = request.app
    server = app[CONFIG].server
    body = await read_json(
        request, server.max_body_bytes, server.body_read_timeout, "a JSON object or array"
    )
    header_token = request.headers.get(FEEDBACK_TOKEN_HEADER)
    items, batch = parse_body(body, header_token=header_token is not None)
    grants = _grants(request, items, header_token)
    interaction_ids, models = await _resolve(app, items, grants, _owner(request))
    rows, stored = await store_feedback(app, items, interaction_ids, models, request.get(KEY_NAME))
    data = [
        {"object": "feedback", "id": stored_id, "interaction_id": row.interaction_id}
        for stored_id, row in zip(stored, rows, strict=True)
    ]
    return json_response({"object": "list", "data": data} if batch else data[0], status=201)


async def store_feedback(
    app: web.Application,
    items: Sequence[FeedbackItem],
    interaction_ids: Sequence[str],
    models: dict[str, Labels],
    key_name: str | None,
) -> tuple[list[Feedback], list[str]]:
    """Checked items on resolved interactions, stored: their events, corrections measured,
    the insert, the metrics. The console saves a reviewer's judgement through this too, so it
    stores exactly what this endpoint would. Returns the rows and the ids stored (an idempotent
    repeat answers its first id, and is not counted again)."""
    rows = _events(items, interaction_ids, key_name)
    await _measure_corrections(app, rows)
    store: FeedbackStore = app[STORE]
    stored = await store.insert_feedback(rows)
    _observe(
        app,
        [row for row, stored_id in zip(rows, stored, strict=True) if row.id == stored_id],
        models,
    )
    return rows, stored


def _grants(
    request: web.Request, items: Sequence[FeedbackItem], header_token: str | None
) -> list[str | None]:
    """Per item, the interaction its feedback token vouches for (None: no token).

    With API keys configured, an item needs a token unless the request came with a key (the
    auth middleware let it through without one for exactly this check).
    """
    tokens = request.app[FEEDBACK_TOKENS]
    keyless = request.app[KEYS].enabled and request.get(KEY_NAME) is None
    grants: list[str | None] = []
    for item in items:
        token = item.token or header_token
        if token is None:
            if keyless:
                raise AuthenticationFailed(
                    "Send an API key with the 'feedback' scope, or the response's "
                    f"{FEEDBACK_TOKEN_HEADER} (header, or `feedback_token` in the body)."
                )
            grants.append(None)
            continue
        try:
            grants.append(tokens.verify(token).interaction_id)
        except AuthenticationFailed as exc:
            exc.param = f"{item.label}.feedback_token" if item.label else "feedback_token"
            raise
    return grants


def _owner(request: web.Request) -> str | None:
    """The key whose own interactions are all this request may rate; None: any interaction
    (no keys configured, a feedback token alone, or a key with the admin scope)."""
    key = request.get(API_KEY)
    return None if key is None or ADMIN in key.scopes else key.name


async def _resolve(
    app: web.Application,
    items: Sequence[FeedbackItem],
    grants: Sequence[str | None],
    owner: str | None,
) -> tuple[list[str], dict[str, Labels]]:
    """The interaction id of each item, and the (model, variant) of those looked up in the
    store; PermissionDenied or NotFound naming the items."""
    recent = app[RECENT_INTERACTIONS]
    store: FeedbackStore = app[STORE]
    ids: list[str | None] = [
        item.interaction_id
        or (recent.interaction_for(item.response_id) if item.response_id else grant)
        for item, grant in zip(items, grants, strict=True)
    ]
    unresolved = [i.response_id for i, id_ in zip(items, ids, strict=True) if id_ is None]
    if unresolved:
        found = await store.interactions_for_responses([r for r in unresolved if r])
        ids = [
            id_ or found.get(item.response_id or "") for item, id_ in zip(items, ids, strict=True)
        ]
    for item, id_, grant in zip(items, ids, grants, strict=True):
        if grant is not None and id_ is not None and id_ != grant:
            raise PermissionDenied(
                # Not naming the other id: a response id must not reveal its interaction.
                f"This feedback token is for interaction {grant}, not the one named here.",
                param=_link_param(item),
                code="token_interaction_mismatch",
            )
    vouched = [
        id_ == grant or recent.issued(id_, owner) for id_, grant in zip(ids, grants, strict=True)
    ]
    to_check = [id_ for id_, ok in zip(ids, vouched, strict=True) if id_ and not ok]
    stored = await _stored(store, list(dict.fromkeys(to_check)), owner)
    unknown = [
        item
        for item, id_, ok in zip(items, ids, vouched, strict=True)
        if id_ is None or not (ok or id_ in stored)
    ]
    if unknown:
        listed = ", ".join(
            f"{_link_param(i)} {i.interaction_id or i.response_id}" for i in unknown[:20]
        )
        raise NotFound(f"No such interaction: {listed}.", param=_link_param(unknown[0]))
    return [id_ for id_ in ids if id_ is not None], stored


async def _stored(store: FeedbackStore, ids: list[str], owner: str | None) -> dict[str, Labels]:
    """Those of `ids` whose row is stored (and made by `owner`, if given): id -> labels."""
    if not ids:
        return {}
    return await store.interaction_models(ids, made_by=owner)


def _link_param(item: FeedbackItem) -> str:
    name = "response_id" if item.response_id else "interaction_id"
    return f"{item.label}.{name}" if item.label else name


def _events(
    items: Sequence[FeedbackItem], interaction_ids: Sequence[str], key_name: str | None
) -> list[Feedback]:
    now = datetime.now(UTC)
    # An array lists events in the order they happened: a microsecond apart, `ORDER BY
    # created_at` keeps that order, and so does "the latest value of each field".
    return [
        Feedback(
            id=uuid7(),
            interaction_id=interaction_id,
            created_at=now + timedelta(microseconds=n),
            api_key_name=key_name,
            **item.values,
        )
        for n, (item, interaction_id) in enumerate(zip(items, interaction_ids, strict=True))
    ]


def _observe(app: web.Application, rows: Sequence[Feedback], stored: dict[str, Labels]) -> None:
    """Feedback metrics for the rows stored now (an idempotent retry is not counted twice).
    Labels come from this process's recent ids, else from the store lookup; an interaction
    vouched for by a token from another worker, row not yet written, counts as model `other`."""
    recent, metrics = app[RECENT_INTERACTIONS], app[METRICS]
    for row in rows:
        labels = recent.labels(row.interaction_id) or stored.get(row.interaction_id)
        model, variant = labels or (None, None)
        for kind, value, rating in feedback_events(row):
            metrics.observe_feedback(model, variant, kind, value, rating)


async def _measure_corrections(app: web.Application, rows: Sequence[Feedback]) -> None:
    """Fill edit_distance and correction_type of the rows that carry a correction."""
    wanted = {row.interaction_id for row in rows if row.correction is not None}
    if not wanted:
        return
    responses = await _responses(app, wanted)
    threshold = app[CONFIG].feedback.major_edit_threshold
    # On a thread: a long correction takes milliseconds of CPU the event loop should not wait.
    await asyncio.to_thread(_measure, rows, responses, threshold)


async def _responses(app: web.Application, ids: set[str]) -> dict[str, object]:
    """Stored responses of `ids`, waiting a little for rows the recorder has not written yet."""
    store: FeedbackStore = app[STORE]
    capture = app[CONFIG].capture
    found = await store.responses(list(ids))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + capture.flush_interval + _ANSWER_WAIT_SECONDS
    while capture.enabled and len(found) < len(ids) and loop.time() < deadline:
        await asyncio.sleep(_ANSWER_POLL_SECONDS)
        found.update(await store.responses([i for i in ids if i not in found]))
    return found


def _measure(rows: Sequence[Feedback], responses: dict[str, object], threshold: float) -> None:
    budget = EditBudget()
    for row in rows:
        answer = answer_text(responses.get(row.interaction_id))
        if row.correction is None or answer is None:
            continue
        distance = levenshtein(answer, row.correction, budget)
        if distance is not None:
            row.edit_distance = distance
            row.correction_type = classify(answer, row.correction, distance, threshold)
