"""Query strings of the review API -> typed queries, or a 422 naming every bad parameter.

Unknown parameters are errors, like unknown config keys: `?modle=x` silently listing everything
would be a wrong answer, not a convenience. The cursor is opaque to clients (base64url of the
last row's created_at and id); only this module reads it. `cursor` pages to older rows and
`before` (the answer's `prev_cursor`) to newer ones; a query takes one of them.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from multidict import MultiMapping

from gateway.errors import ValidationFailed
from gateway.records.feedback import OUTCOMES, THUMBS
from gateway.records.interaction import CLIENT_DISCONNECTED, ERROR, SUCCESS
from gateway.store.queries import Cursor, InteractionQuery, TimeWindow

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
STATUSES = (SUCCESS, ERROR, CLIENT_DISCONNECTED)
WINDOW_PARAMS = ("since", "until")
LIST_PARAMS = (
    *WINDOW_PARAMS,
    "model",
    "variant",
    "status",
    "user",
    "session",
    "tag",
    "has_feedback",
    "outcome",
    "min_rating",
    "thumbs",
    "quality_flag",
    "q",
    "cursor",
    "before",
    "limit",
)


class _Bad(Exception):
    pass


def interaction_query(params: MultiMapping[str]) -> InteractionQuery:
    """`GET /admin/interactions` filters; `tag=k=v` may repeat (all must match)."""
    problems = _unknown(params, LIST_PARAMS)
    values: dict[str, Any] = {}
    checks: dict[str, tuple[str, Callable[[str], Any]]] = {
        "model": ("model", _text),
        "variant": ("variant", _text),
        "status": ("status", _choice(STATUSES)),
        "user": ("user", _text),
        "session": ("session", _text),
        "has_feedback": ("has_feedback", _boolean),
        "outcome": ("outcome", _choice(OUTCOMES)),
        "min_rating": ("min_rating", _int_between(1, 5)),
        "thumbs": ("thumbs", _choice(THUMBS)),
        "quality_flag": ("quality_flag", _text),
        "q": ("text", _text),
        "cursor": ("after", decode_cursor),
        "before": ("before", decode_cursor),
        "limit": ("limit", _int_between(1, MAX_LIMIT)),
    }
    for param, (name, check) in checks.items():
        if param in params:
            _collect(problems, values, param, name, check, params[param])
    tags: dict[str, str] = {}
    for raw in params.getall("tag", []):
        key, sep, value = raw.partition("=")
        if not sep or not key:
            problems.append(("tag", f"must be key=value, got {raw!r}"))
        tags[key] = value
    if "cursor" in params and "before" in params:
        problems.append(("before", "cannot be given with cursor (one direction at a time)"))
    window = _window(params, problems)
    _raise(problems)
    return InteractionQuery(window=window, tags=tags, **values)


def time_window(params: MultiMapping[str]) -> TimeWindow:
    """`since` and `until` only, for `GET /admin/stats`."""
    problems = _unknown(params, WINDOW_PARAMS)
    window = _window(params, problems)
    _raise(problems)
    return window


def listing_limit(params: MultiMapping[str]) -> int:
    """`limit` alone, for listings that take other parameters as they come (export runs)."""
    problems: list[tuple[str, str]] = []
    values = {"limit": DEFAULT_LIMIT}
    if "limit" in params:
        _collect(problems, values, "limit", "limit", _int_between(1, MAX_LIMIT), params["limit"])
    _raise(problems)
    return values["limit"]


def encode_cursor(row: dict[str, Any]) -> str:
    raw = orjson.dumps([row["created_at"], row["id"]])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(value: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        created_at, row_id = orjson.loads(raw)
        return Cursor(_utc(datetime.fromisoformat(created_at)), str(uuid.UUID(row_id)))
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError, OverflowError):
        raise _Bad("is not a cursor this API returned (use next_cursor as is)") from None


# -- checks ----------------------------------------------------------------------------------
def _unknown(params: MultiMapping[str], allowed: tuple[str, ...]) -> list[tuple[str, str]]:
    expected = ", ".join(allowed)
    return [
        (name, f"is not a known parameter ({expected})") for name in params if name not in allowed
    ]


def _window(params: MultiMapping[str], problems: list[tuple[str, str]]) -> TimeWindow:
    values: dict[str, Any] = {}
    for name in WINDOW_PARAMS:
        if name in params:
            _collect(problems, values, name, name, _timestamp, params[name])
    window = TimeWindow(**values)
    if window.since and window.until and window.since >= window.until:
        problems.append(("until", "must be later than since"))
    return window


def _collect(
    problems: list[tuple[str, str]],
    values: dict[str, Any],
    param: str,
    name: str,
    check: Callable[[str], Any],
    raw: str,
) -> None:
    try:
        values[name] = check(raw)
    except _Bad as bad:
        problems.append((param, str(bad)))


def _raise(problems: list[tuple[str, str]]) -> None:
    if problems:
        listed = "; ".join(f"{name} {problem}" for name, problem in problems)
        raise ValidationFailed(f"Invalid query: {listed}.", param=problems[0][0])


def _timestamp(value: str) -> datetime:
    """ISO 8601 (`2025-06-01`, `2025-06-01T12:00:00Z`, with an offset); naive means UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"must be an ISO 8601 time like 2025-06-01T12:00:00Z, got {value!r}") from None
    try:
        return _utc(parsed)
    except OverflowError:
        raise _Bad(f"is outside the years 1 to 9999 in UTC, got {value!r}") from None


def _utc(moment: datetime) -> datetime:
    """In UTC, as the stores compare times; OverflowError when that leaves the years 1-9999
    (`0001-01-01T00:00+01:00`), which the engines' drivers would otherwise raise mid-query."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(value: str) -> str:
    if not value:
        raise _Bad("must not be empty")
    return value


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0"):
        raise _Bad(f"must be true or false, got {value!r}")
    return value.lower() in ("true", "1")


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in allowed:
            raise _Bad(f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    return check


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def check(value: str) -> int:
        # isascii: `isdigit` also holds for "²" and other digits that `int` refuses.
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise _Bad(f"must be an integer from {low} to {high}, got {value!r}")
        return int(value)

    return check
