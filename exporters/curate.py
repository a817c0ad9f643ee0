"""Dedup, the train/validation split, and sampling: deterministic, so a rerun gives the same files.

The split is by group (the user, else the session), never by example: one user's examples are
all in train or all in validation, so validation measures how the model does for people it has
not seen. Sampling ranks examples by a seeded hash and keeps the lowest, which does not depend
on the order rows arrive in, and mostly keeps the same sample as more data arrives.
"""

from __future__ import annotations

import hashlib
import heapq
import sys
from typing import Any

import orjson


def content_key(record: dict[str, Any]) -> int:
    """Exact-duplicate identity: the record without its metadata, whitespace and case
    normalized, hashed to 64 bits (exporters.keyset holds a million of them in 16 MB). A
    normal form of `LONG_FORM_CHARS` or more counts by its digest (`stand_in`)."""
    if "metadata" in record:
        record = {k: v for k, v in record.items() if k != "metadata"}
    normalized = _normalize(record)
    digest = hashlib.blake2b(orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) < LONG_FORM_CHARS:
            return stand_in(" ".join(value.split()).casefold())
        return _STAND_INS.get(value)
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    return value


def stand_in(form: str) -> str:
    """What a text whose normal form is `form` puts in the key: a short form itself, a long
    one its digest after a space. No normal form begins with a space (split and join leave
    none), so no form stands for another."""
    if len(form) < LONG_FORM_CHARS:
        return form
    data = form.encode("utf-8", "surrogatepass")
    return " " + hashlib.blake2b(data, digest_size=16).hexdigest()


# Normal forms this long count by their digest, and texts this long are normalized once per
# process, their stand-ins kept under the text's hash: an export's system prompts and long
# user messages repeat row after row. Normalizing a 10 KB prompt takes ~160 µs (split, join,
# casefold); a stand-in takes ~230 bytes where the normal form kept with its text took ~20,000
# characters, so 4 million of them held ~200 of the export bench's 2,000 10 KB prompts, and as
# they came in turn none was ever found again (issue 21).
LONG_FORM_CHARS = 256
# Which way keys are made, in each manifest: 2 since 2026-12-01, when long forms began to
# count by their digest (1 hashed every normal form whole). Within a version keys are one
# function of the records, which is what dedup and `dataset merge` need; shards merge only
# with the same version (exporters.shards); a seeded sample (`--max-examples`) is drawn afresh.
CONTENT_KEY_VERSION = 2
# What the stand-ins may hold, in bytes as tracemalloc counts them: ~35,000 texts, cleared when
# full and refilled by the texts that recur, so an export of distinct texts keeps its memory
# flat. An entry costs its stand-in (a digest, or a form under LONG_FORM_CHARS of a text
# padded past it) and STAND_IN_ENTRY_BYTES for its key and the dict's slot.
STAND_IN_BYTES = 8_000_000
STAND_IN_ENTRY_BYTES = 160
# A string's own hash is the stand-ins' key where it has 64 bits (see StandIns.get).
_WIDE_HASH = sys.hash_info.width >= 64


class StandIns:
    """Each long text's stand-in, kept while `budget` bytes last."""

    def __init__(self, budget: int = STAND_IN_BYTES):
        self.budget = budget
        self.bytes = 0
        self._kept: dict[object, str] = {}

    def get(self, text: str) -> str:
        # The text's own hash, which a string keeps once made: a prompt the anonymizer gives
        # back from its results is the same string row after row. Two texts share it and their
        # length with odds of 2^-64, as two records share a content_key, and those two would
        # then share a key. A 32-bit hash would make that likely among 35,000 texts.
        key: object = (hash(text), len(text))
        if not _WIDE_HASH:
            key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        found = self._kept.get(key)
        if found is None:
            found = stand_in(" ".join(text.split()).casefold())
            cost = STAND_IN_ENTRY_BYTES + sys.getsizeof(found)
            if self.bytes + cost > self.budget:
                self._kept.clear()
                self.bytes = 0
            self._kept[key] = found
            self.bytes += cost
        return found


# One per process, as `re` keeps its compiled patterns: the keys of every export and every
# `dataset merge` in it are the same function of the records, whoever computes them.
_STAND_INS = StandIns()


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
