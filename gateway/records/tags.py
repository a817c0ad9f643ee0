"""Tags (`key=value,key=value`) and the bounds on every client-given label of a row.

Requests carry tags in `Flywheel-Tags` or the body's `flywheel.tags`; feedback carries them in
its `tags` field. Both are parsed and bounded here, the same way.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest

# Bounds keep one client from writing unbounded metadata into every row.
MAX_ID_LENGTH = 256
MAX_TAGS = 32


def parse_tags(raw: str, param: str) -> dict[str, str]:
    """`team=search,env=prod` -> {"team": "search", "env": "prod"}; a bare word maps to ""."""
    tags = {}
    for item in raw.split(","):
        key, _, value = item.partition("=")
        if key.strip():
            tags[key.strip()] = value.strip()
    return check_tags(tags, param)


def check_tags(tags: dict[str, Any], param: str) -> dict[str, str]:
    """At most `MAX_TAGS` tags with scalar values, as strings cut to `MAX_ID_LENGTH`;
    InvalidRequest naming `param` otherwise."""
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"At most {MAX_TAGS} tags are allowed.", param=param)
    for key, value in tags.items():
        if not isinstance(value, str | int | float | bool):
            raise InvalidRequest(f"Tag {key!r} must have a string value.", param=param)
    return {str(k)[:MAX_ID_LENGTH]: str(v)[:MAX_ID_LENGTH] for k, v in tags.items()}
