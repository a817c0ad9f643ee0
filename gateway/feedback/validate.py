"""`POST /v1/feedback` bodies -> checked items, or one 422 that names every bad field.

A body is one object or an array of up to `MAX_BATCH` objects. Every problem of every item is
collected before answering, so a client fixes its payload in one round trip; array items are
named by position (`[3].rating`). A batch is all or nothing: one bad item stores none.
Unknown fields are errors too (a typo like `ratng` must not be silently dropped), and `null`
means "not given", which suits JavaScript clients.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest, ValidationFailed
from gateway.records.feedback import OUTCOMES, THUMBS
from gateway.records.tags import MAX_ID_LENGTH, MAX_TAGS, parse_tags

MAX_BATCH = 1_000
MAX_TEXT_CHARS = 100_000  # a correction or comment; the body limit still applies
MAX_DIMENSIONS = 32
MAX_DECISION_MS = 30 * 24 * 3600 * 1000  # a month: anything longer is a client clock bug
_MAX_LISTED = 20  # problems spelled out in one message

# Fields that carry an opinion: an item needs at least one of them.
SIGNALS = ("rating", "thumbs", "score", "outcome", "correction", "comment", "dimensions")


class _Bad(Exception):
    """One field's problem, worded to follow the field's name."""


@dataclass
class FeedbackItem:
    """One checked item, not yet tied to a stored interaction."""

    index: int | None  # position in the array; None for a single object
    interaction_id: str | None
    response_id: str | None
    token: str | None  # the item's own `feedback_token`, if any
    values: dict[str, Any] = field(default_factory=dict)  # Feedback fields, checked

    @property
    def label(self) -> str:
        return "" if self.index is None else f"[{self.index}]"


def parse_body(body: Any, *, header_token: bool) -> tuple[list[FeedbackItem], bool]:
    """The items of a body, and whether it was an array; raises ValidationFailed.

    `header_token`: a token came in the header, so items may leave the interaction out.
    """
    if isinstance(body, list):
        if not body:
            raise ValidationFailed("The feedback array is empty.")
        if len(body) > MAX_BATCH:
            raise ValidationFailed(
                f"At most {MAX_BATCH} feedback items per request, not {len(body)}."
            )
        raws: list[tuple[int | None, Any]] = list(enumerate(body))
    elif isinstance(body, dict):
        raws = [(None, body)]
    else:
        raise ValidationFailed("The feedback body must be a JSON object or an array of them.")
    items: list[FeedbackItem] = []
    problems: list[tuple[str, str]] = []
    for index, raw in raws:
        item = _checked(raw, index, header_token, problems)
        if item is not None:
            items.append(item)
    if problems:
        listed = [f"{path} {problem}" for path, problem in problems[:_MAX_LISTED]]
        if len(problems) > _MAX_LISTED:
            listed.append(f"and {len(problems) - _MAX_LISTED} more")
        raise ValidationFailed("Invalid feedback: " + "; ".join(listed) + ".", param=problems[0][0])
    return items, isinstance(body, list)


def _checked(
    raw: Any, index: int | None, header_token: bool, problems: list[tuple[str, str]]
) -> FeedbackItem | None:
    """The item, or None after adding its problems (path, what is wrong) to `problems`."""
    prefix = "" if index is None else f"[{index}]."
    if not isinstance(raw, dict):
        problems.append((f"[{index}]", f"must be an object, got {_kind(raw)}"))
        return None
    found = len(problems)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        check = _CHECKS.get(name)
        if check is None:
            problems.append((prefix + name, "is not a feedback field"))
        elif value is not None:
            try:
                values[name] = check(value)
            except _Bad as bad:
                problems.append((prefix + name, str(bad)))
    links = [name for name in ("interaction_id", "response_id") if raw.get(name) is not None]
    if len(links) == 2:
        problems.append((prefix + "response_id", "cannot be given with interaction_id"))
    elif not links and raw.get("feedback_token") is None and not header_token:
        problems.append(
            (prefix + "interaction_id", "is required (or response_id, or a feedback token)")
        )
    if not any(name in values for name in SIGNALS) and len(problems) == found:
        problems.append((prefix.rstrip(".") or "body", f"has none of {', '.join(SIGNALS)}"))
    if len(problems) > found:
        return None
    return FeedbackItem(
        index=index,
        interaction_id=values.pop("interaction_id", None),
        response_id=values.pop("response_id", None),
        token=values.pop("feedback_token", None),
        values=values,
    )


# -- one check per field ------------------------------------------------------------------
def _uuid(value: Any) -> str:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))  # canonical form: the stores compare text (SQLite)
        except ValueError:
            pass
    raise _Bad(f"must be an interaction id (the Flywheel-Interaction-Id UUID), got {_show(value)}")


def _text(limit: int, *, empty: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad(f"must be a string, got {_kind(value)}")
        if not value and not empty:
            raise _Bad("must not be empty")
        if len(value) > limit:
            raise _Bad(f"is longer than {limit} characters")
        return value

    return check


def _choice(allowed: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in allowed:
            raise _Bad(f"must be one of {', '.join(allowed)}, got {_show(value)}")
        return str(value)

    return check


def _rating(value: Any) -> int:
    if not _is_int(value) or not 1 <= value <= 5:
        raise _Bad(f"must be an integer from 1 to 5, got {_show(value)}")
    return int(value)


def _score(value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 1:
        raise _Bad(f"must be a number from 0 to 1, got {_show(value)}")
    return float(value)


def _decision_ms(value: Any) -> int:
    if not _is_number(value) or not 0 <= value <= MAX_DECISION_MS:
        raise _Bad(
            f"must be a number of milliseconds from 0 to {MAX_DECISION_MS}, got {_show(value)}"
        )
    return round(value)


def _dimensions(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Bad(f'must be an object like {{"accuracy": 4}}, got {_kind(value)}')
    if len(value) > MAX_DIMENSIONS:
        raise _Bad(f"has more than {MAX_DIMENSIONS} entries")
    bad = [f"{k!r}" for k, v in value.items() if not _is_int(v) or not 1 <= v <= 5]
    if bad:
        raise _Bad(f"values must be integers from 1 to 5 (not so: {', '.join(bad)})")
    long = [f"{k!r}" for k in value if not 0 < len(k) <= 64]
    if long:
        raise _Bad(f"names must be 1 to 64 characters long (not so: {', '.join(long)})")
    return {str(k): int(v) for k, v in value.items()}


def _tags(value: Any) -> dict[str, str]:
    """Like request tags: an object, or `key=value,key=value`."""
    if isinstance(value, str):
        try:
            value = parse_tags(value, "tags")
        except InvalidRequest as exc:
            raise _Bad(exc.message) from None
    if not isinstance(value, dict):
        raise _Bad(f'must be an object like {{"team": "search"}} or "k=v,k=v", got {_kind(value)}')
    if len(value) > MAX_TAGS:
        raise _Bad(f"has more than {MAX_TAGS} entries")
    if any(not isinstance(v, str | int | float | bool) for v in value.values()):
        raise _Bad("values must be strings")
    return {str(k)[:MAX_ID_LENGTH]: str(v)[:MAX_ID_LENGTH] for k, v in value.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value)


def _show(value: Any) -> str:
    """A bad value as the error quotes it: short, whatever the client sent."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "interaction_id": _uuid,
    "response_id": _text(MAX_ID_LENGTH),
    "feedback_token": _text(1_000),
    "rating": _rating,
    "thumbs": _choice(THUMBS),
    "score": _score,
    "outcome": _choice(OUTCOMES),
    "correction": _text(MAX_TEXT_CHARS, empty=True),
    "comment": _text(MAX_TEXT_CHARS),
    "dimensions": _dimensions,
    "time_to_decision_ms": _decision_ms,
    "source": _text(MAX_ID_LENGTH),
    "tags": _tags,
    "idempotency_key": _text(MAX_ID_LENGTH),
}
