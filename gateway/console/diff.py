"""A word-level diff of an answer and its correction, for highlighting what a reviewer changed.

Words and the whitespace between them are the units (what a person reads as a change), cut
to `MAX_TOKENS` a side so a page never spends seconds on two novels; the edit distance shown
beside it is the stored one, computed by gateway/feedback/edits.py.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

MAX_TOKENS = 5_000
_TOKENS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Piece:
    kind: str  # "same", "removed" or "added"
    text: str


def word_diff(before: str, after: str) -> list[Piece]:
    a, b = _TOKENS.findall(before)[:MAX_TOKENS], _TOKENS.findall(after)[:MAX_TOKENS]
    pieces: list[Piece] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(Piece("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(Piece("removed", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(Piece("added", "".join(b[j1:j2])))
    return pieces
