"""Credentials a client put in the request body never go upstream nor into the store.

Some clients send their key in the body (`api_key`, litellm's `*_api_key` parameters, an
`authorization` field). The provider key comes from the provider's config, so these are never
needed upstream, and a key in the body would otherwise be stored with the request verbatim.
"""

from __future__ import annotations

from typing import Any


def is_secret_field(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return lowered in ("authorization", "api_key", "apikey") or lowered.endswith("_api_key")


def strip_secrets(body: dict[str, Any]) -> list[str]:
    """Remove top-level secret fields from `body` in place; returns their names (not values)."""
    found = [name for name in body if is_secret_field(name)]
    for name in found:
        del body[name]
    return found
