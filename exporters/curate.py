"""Dedup, the train/validation split, and sampling: deterministic, so a rerun gives the same files.

The split is by group (the user, else the session), never by example: one user's examples are
all in train or all in validation, so validation measures how the model does for people it has
not seen. Sampling ranks examples by a seeded hash and keeps the lowest, which does not depend
on the order rows arrive in, and mostly keeps the same sample as more data arrives.
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Any

import orjson


def content_key(record: dict[str, Any]) -> int:
    """Exact-duplicate identity: the record without its metadata, whitespace and case
    normalized, hashed to 64 bits (exporters.keyset holds a million of them in 16 MB)."""
    if "metadata" in record:
        record = {k: v for k, v in record.items() if k != "metadata"}
    normalized = _normalize(record)
    digest = hashlib.blake2b(orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) < NORMALIZED_FROM_CHARS:
            return " ".join(value.split()).casefold()
        return _NORMALIZED.get(value)
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    return value


# Texts this long are normalized once per process and looked up after: an export's system
# prompts and long user messages repeat row after row, and a 1 KB one with a few non-ASCII
# letters took ~25 µs to split, join and casefold, the hash and lookup ~2 (issue 21). Shorter
# ones cost about what a lookup does.
NORMALIZED_FROM_CHARS = 256
# What the normalized texts may hold, in characters of the texts and their normal forms: ~8 MB
# at two bytes a character (4,000 prompts of 1 KB), cleared when full and refilled by the
# texts that recur, so an export of distinct texts keeps its memory flat.
NORMALIZED_CHARS = 4_000_000


class Normalized:
    """Each long text's normal form, kept while `budget` characters last."""

    def __init__(self, budget: int = NORMALIZED_CHARS):
        self.budget = budget
        self.chars = 0
        self._forms: dict[str, str] = {}

    def get(self, text: str) -> str:
        form = self._forms.get(text)
        if form is None:
            form = " ".join(text.split()).casefold()
            cost = len(text) + len(form)
            if cost > self.budget // 100:
                return form  # a text this long would push out a hundred others
            if self.chars + cost > self.budget:
                self._forms.clear()
                self.chars = 0
            self._forms[text] = form
            self.chars += cost
        return form


# One per process, as `re` keeps its compiled patterns: the keys of every export and every
# `dataset merge` in it are the same function of the records, whoever computes them.
_NORMALIZED = Normalized()


def split_of(group: str, seed: int, validation_fraction: float) -> str:
    return "validation" if _unit(f"split:{seed}:{group}") < validation_fraction else "train"


def _unit(text: str) -> float:
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Sample:
    """The `size` records with the lowest seeded rank, given back in arrival order."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self._heap: list[tuple[float, int, str, Any]] = []  # (-rank, order, split, record)
        self._order = 0
        self.passed_over = 0

    def offer(self, key: int, split: str, record: Any) -> None:
        rank = _unit(f"sample:{self.seed}:{key}")
        entry = (-rank, self._order, split, record)
        self._order += 1
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, entry)
        elif -self._heap[0][0] > rank:
            heapq.heapreplace(self._heap, entry)
            self.passed_over += 1
        else:
            self.passed_over += 1

    def drain(self) -> list[tuple[str, Any]]:
        kept = sorted(self._heap, key=lambda entry: entry[1])
        self._heap = []
        return [(split, record) for _, _, split, record in kept]
