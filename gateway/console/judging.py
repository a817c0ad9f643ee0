"""A reviewer's judgement or correction, stored exactly as `POST /v1/feedback` would store it.

The form becomes the JSON body a client would send, which goes through the endpoint's own
checks (`parse_body`) and its own steps: the event rows, the edit distance and minor/major
class of a correction, the insert, the feedback metrics. Only the transport differs, so
every export reads a console correction like any other. `source` names the console and the
reviewer's key; `api_key_name` is that key's name, as the API records it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from gateway.console.session import Session
from gateway.errors import ValidationFailed
from gateway.feedback.api import store_feedback
from gateway.feedback.validate import parse_body

SOURCE = "console"
DIMENSIONS = ("accuracy", "helpfulness", "clarity")
_NUMBERS = {"rating": int, "score": float}


def feedback_body(form: MultiMapping[Any], interaction_id: str, session: Session) -> dict[str, Any]:
    """The `POST /v1/feedback` body this form stands for; empty fields are not given."""
    body: dict[str, Any] = {"interaction_id": interaction_id, "source": source(session)}
    for name in ("thumbs", "outcome", "comment", "idempotency_key"):
        value = str(form.get(name, "")).strip()
        if value:
            body[name] = value
    for name, kind in _NUMBERS.items():
        value = str(form.get(name, "")).strip()
        if value:
            try:
                body[name] = kind(value)
            except ValueError:
                raise ValidationFailed(
                    f"{name} must be a number, got {value!r}.", param=name
                ) from None
    dimensions = {
        name: int(str(form[f"dim_{name}"]))
        for name in DIMENSIONS
        if str(form.get(f"dim_{name}", "")).isdigit()
    }
    if dimensions:
        body["dimensions"] = dimensions
    if "correction" in form:
        # Kept as typed, spaces and all: the correction is the training target.
        body["correction"] = str(form["correction"]).replace("\r\n", "\n")
    return body


def source(session: Session) -> str:
    return f"{SOURCE}:{session.name}" if session.name else SOURCE


async def save(
    app: web.Application, body: dict[str, Any], session: Session, labels: tuple[Any, Any]
) -> str:
    """Store the body's feedback event; its id. `labels`: the interaction's (model, variant)."""
    items, _ = parse_body(body, header_token=False)
    interaction_id = body["interaction_id"]
    _, [stored_id] = await store_feedback(
        app, items, [interaction_id], {interaction_id: labels}, session.name
    )
    return stored_id
