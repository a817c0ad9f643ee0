"""Bounded previews of stored rows, for the admin listings.

A page of up to 500 rows must not answer with 500 whole conversations (a few rows with large
bodies took a worker from 59 to 888 MB). Each value of a listed row is cut to about
`PREVIEW_CHARS` characters of text, keeping its JSON shape, so a reader still sees the roles,
the model and how each message starts; `GET /admin/interactions/{id}` returns the row whole.

What this cannot bound: the stores still read and decode whole rows before this runs. Bounding
that peak too takes SQL that reads only a prefix of each body, in the store engines.
"""

from __future__ import annotations

from typing import Any

PREVIEW_CHARS = 2_000  # per value: a request's opening messages, an answer's first paragraphs
MAX_DEPTH = 16  # real request bodies nest a few levels; deeper is cut, not walked


def preview(value: Any, budget: int = PREVIEW_CHARS) -> Any:
    """A copy of `value` with at most ~`budget` characters of text and as many items; what is
    left out is counted in a marker: `"...[+N chars]"`, `"...[+N items]"`, key `"..."`."""
    return _Preview(budget).cut(value, depth=0)


class _Preview:
    def __init__(self, budget: int):
        self.left = budget

    def cut(self, value: Any, depth: int) -> Any:
        # Every value costs at least 1, so a million empty lists are bounded as well.
        self.left -= 1
        if isinstance(value, str):
            return self._text(value)
        if not isinstance(value, dict | list):
            return value  # numbers, booleans, null, times
        if depth >= MAX_DEPTH:
            return f"...[nested deeper than {MAX_DEPTH} levels]"
        if isinstance(value, list):
            items: list[Any] = []
            for n, item in enumerate(value):
                if self.left <= 0:
                    items.append(f"...[+{len(value) - n} items]")
                    break
                items.append(self.cut(item, depth + 1))
            return items
        fields: dict[str, Any] = {}
        for n, (key, item) in enumerate(value.items()):
            if self.left <= 0:
                fields["..."] = f"+{len(value) - n} keys"
                break
            name = self._text(str(key))  # before its value, which may spend what is left
            fields[name] = self.cut(item, depth + 1)
        return fields

    def _text(self, text: str) -> str:
        keep = max(self.left, 0)
        self.left -= len(text)
        if len(text) <= keep:
            return text
        return f"{text[:keep]}...[+{len(text) - keep} chars]"
