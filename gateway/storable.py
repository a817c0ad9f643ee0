"""Makes an interaction storable by every engine and the spool, whatever a client or upstream sent.

The recorder calls `make_storable` only on rows that a store or the spool refused (a good row
costs nothing here), so it must always succeed: after it, every string is valid UTF-8, every
integer fits a signed 64-bit column, every JSON value serializes with orjson (nesting bounded,
no lone surrogates, no integer beyond 64 bits), and the row says what was replaced.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from gateway.records.interaction import JSON_COLUMNS, Interaction

# orjson refuses to serialize deeper than 255 levels; the spool wraps a row in one more object.
MAX_JSON_DEPTH = 200
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
DEPTH_MARKER = "[flywheel: nested deeper than 200 levels]"
# Added to quality_flags when anything had to change, so a reader knows the row is not verbatim.
REPLACED_FLAG = "unstorable_values_replaced"

# Read off the record's own annotations, so a field added to Interaction is repaired too. The
# id (a UUID we made) and http_status (checked on its own) are left out.
_ANNOTATIONS = {f.name: f.type for f in fields(Interaction) if f.name != "id"}
_TEXT_FIELDS = tuple(name for name, kind in _ANNOTATIONS.items() if kind in ("str", "str | None"))
_INT_FIELDS = tuple(name for name, kind in _ANNOTATIONS.items() if kind == "int | None")
_FLOAT_FIELDS = tuple(name for name, kind in _ANNOTATIONS.items() if kind == "float | None")


def clean_text(value: str) -> str:
    """Valid UTF-8 text: bytes that arrived undecodable (surrogate-escaped, as aiohttp leaves
    them in headers) become `\\xe9`-style escapes, and lone surrogates `\\udXXX` ones."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that are not escaped bytes: from JSON `\ud800`
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def make_storable(interaction: Interaction) -> bool:
    """Repair `interaction` in place; True when anything changed (then it is also flagged)."""
    repair = _Repair()
    for name in _TEXT_FIELDS:
        value = getattr(interaction, name)
        if value is not None:
            setattr(interaction, name, repair.text(value))
    for name in _INT_FIELDS:
        value = getattr(interaction, name)
        if value is not None and not (type(value) is int and 0 <= value <= INT64_MAX):
            setattr(interaction, name, repair.replaced(None))
    for name in _FLOAT_FIELDS:
        value = getattr(interaction, name)
        if value is not None and not (type(value) in (int, float) and math.isfinite(value)):
            setattr(interaction, name, repair.replaced(None))
    if type(interaction.http_status) is not int or not 0 <= interaction.http_status < 1000:
        interaction.http_status = repair.replaced(0)
    for name in JSON_COLUMNS:
        value = getattr(interaction, name)
        if value is not None:
            setattr(interaction, name, repair.json(value, 0))
    if repair.changed and REPLACED_FLAG not in interaction.quality_flags:
        interaction.quality_flags = [*interaction.quality_flags, REPLACED_FLAG]
    return repair.changed


class _Repair:
    """Builds storable copies and remembers whether anything had to change."""

    def __init__(self) -> None:
        self.changed = False

    def replaced(self, value: Any) -> Any:
        self.changed = True
        return value

    def text(self, value: Any) -> str:
        cleaned = clean_text(value if isinstance(value, str) else str(value))
        if cleaned is not value:
            self.changed = True
        return cleaned

    def json(self, value: Any, depth: int) -> Any:
        """A copy that orjson can always serialize."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or type(value) is bool:
            return value
        if type(value) is int:
            # Beyond 64 bits orjson refuses the number: keep its digits as text, not lose it.
            return value if INT64_MIN <= value <= INT64_MAX else self.replaced(str(value))
        if type(value) is float:
            return value if math.isfinite(value) else self.replaced(None)
        if depth >= MAX_JSON_DEPTH:
            return self.replaced(DEPTH_MARKER)
        if type(value) is dict:
            return {self.text(k): self.json(v, depth + 1) for k, v in value.items()}
        if type(value) is list:
            return [self.json(v, depth + 1) for v in value]
        return self.text(value)  # any other type: its text
