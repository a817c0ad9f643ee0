"""Who asked and in what context: user, session and tags, from headers or the body's `flywheel`.

The body field is removed before forwarding (providers reject unknown fields). The body wins
over headers for a single call; headers are what SDK clients usually set once as defaults.
The user falls back to OpenAI's own `user` field, which is left in the body for the provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDictProxy

from gateway.errors import InvalidRequest
from gateway.records.tags import MAX_ID_LENGTH, check_tags, parse_tags
from gateway.storable import clean_text


@dataclass(frozen=True)
class RequestMetadata:
    user: str | None = None
    session: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


_HEADERS = ("Flywheel-Tags", "Flywheel-User", "Flywheel-Session")


def _identifier(value: Any, param: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param}' must be a string.", param=param)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"'{param}' is longer than {MAX_ID_LENGTH} characters.", param=param)
    return value


def header_text(value: str | None) -> str | None:
    """A header as the client meant it. aiohttp decodes header bytes as UTF-8 and keeps the
    bytes that are not as lone surrogates, which no store can hold; those headers were sent in
    ISO-8859-1, HTTP's historical charset (Python's http.client sends "José" so)."""
    if value is None or value.isascii():
        return value
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # not from a header's bytes; still make it storable
        return clean_text(value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_metadata(headers: CIMultiDictProxy[str], body: dict[str, Any]) -> RequestMetadata:
    """Collect metadata and strip the `flywheel` field from `body` (in place)."""
    extra = body.pop("flywheel", None)
    if extra is None:
        if not any(name in headers for name in _HEADERS):
            # Most requests say nothing: only OpenAI's own `user`, if anything.
            user = body.get("user")
            return RequestMetadata(
                user=_identifier(user, "user") if isinstance(user, str) else None
            )
        extra = {}
    if not isinstance(extra, dict):
        raise InvalidRequest("'flywheel' must be an object.", param="flywheel")
    tags = parse_tags(header_text(headers.get("Flywheel-Tags")) or "", "Flywheel-Tags")
    body_tags = extra.get("tags")
    if isinstance(body_tags, str):
        tags.update(parse_tags(body_tags, "flywheel.tags"))
    elif isinstance(body_tags, dict):
        tags.update(check_tags(body_tags, "flywheel.tags"))
    elif body_tags is not None:
        raise InvalidRequest(
            "'flywheel.tags' must be an object or 'k=v,...'.", param="flywheel.tags"
        )
    user = _identifier(extra.get("user"), "flywheel.user") or _identifier(
        header_text(headers.get("Flywheel-User")), "Flywheel-User"
    )
    if user is None and isinstance(body.get("user"), str):
        user = _identifier(body["user"], "user")
    session = _identifier(extra.get("session"), "flywheel.session") or _identifier(
        header_text(headers.get("Flywheel-Session")), "Flywheel-Session"
    )
    return RequestMetadata(user=user, session=session, tags=check_tags(tags, "flywheel.tags"))
