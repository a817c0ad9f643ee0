"""Filters from plain values: a job's `filters:` in config.yaml and the admin API's query string.

Both give names the CLI's options use (`models`, `min_rating`...), as YAML values or as strings
(a list may be given comma-separated or repeated), so one parser serves both and an unknown or
malformed key fails the same way: a `ConfigError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from exporters.selection import Filters
from gateway.errors import ConfigError

_LISTS = ("models", "variants", "users", "outcomes", "exclude_flags")
_INTS = ("min_rating", "max_examples", "seed")
_FLOATS = ("min_score", "validation_fraction")
_TIMES = ("since", "until")
FILTER_KEYS = (*_LISTS, *_INTS, *_FLOATS, *_TIMES, "tags", "thumbs", "include_failed")


def parse_filters(values: Mapping[str, Any], where: str) -> Filters:
    unknown = sorted(set(values) - set(FILTER_KEYS))
    if unknown:
        known = ", ".join(FILTER_KEYS)
        raise ConfigError(f"{where}: unknown filter {unknown[0]!r} (known: {known})")
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        try:
            parsed[key] = _coerce(key, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
    if parsed.get("thumbs") not in (None, "up", "down"):
        raise ConfigError(f"{where}.thumbs: must be up or down")
    fraction = parsed.get("validation_fraction", 0.1)
    if not 0 <= fraction < 1:
        raise ConfigError(f"{where}.validation_fraction: must be in [0, 1)")
    return Filters(**parsed)


def _coerce(key: str, value: Any) -> Any:
    if key in _LISTS:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        return tuple(str(item).strip() for item in items if str(item).strip())
    if key in _INTS:
        return int(value)
    if key in _FLOATS:
        return float(value)
    if key in _TIMES:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if key == "include_failed":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise ValueError("must be true or false")
    if key == "tags":
        if isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
        pairs = [item.partition("=") for item in str(value).split(",") if item]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError("must be KEY=VALUE pairs")
        return {k: v for k, _, v in pairs}
    return str(value)
