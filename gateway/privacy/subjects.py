"""Who a row is about, as the salted hash that exports and the forget list carry.

`subject_hash` is the same function the exporters use for `user` and `session` in a dataset
(exporters/privacy.py, `Privacy.pseudonym`), so a hash in a run's manifest, in a dataset and in
the `forgotten` table name the same person. It depends on `anonymize.salt`: runs made under
another salt are not found by a forget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

KINDS = ("user", "session")


def subject_hash(salt: str, value: object) -> str:
    return f"{_subject_number(salt, value):016x}"


def _subject_number(salt: str, value: object) -> int:
    """The hash as the 64-bit number its 16 hex digits spell."""
    return int.from_bytes(hashlib.sha256(f"{salt}\x00{value}".encode()).digest()[:8], "big")


class Subjects:
    """The users and sessions an export run contains, for its manifest (`user_hashes`,
    `session_hashes`): what a later forget reads to name the runs to rebuild."""

    def __init__(self, salt: str) -> None:
        self.salt = salt
        # Each hash as its number, written out for the manifest only: a set of them takes ~78
        # bytes a subject, of the strings ~107 (a run over a million sessions keeps them all),
        # and the numbers sort as their fixed-width hex does.
        self._seen: dict[str, set[int]] = {kind: set() for kind in KINDS}

    def add(self, record: Mapping[str, Any]) -> None:
        """Before the record is anonymized: its raw user and session."""
        for kind in KINDS:
            value = record.get(kind)
            if value is not None:
                self._seen[kind].add(_subject_number(self.salt, value))

    def manifest(self) -> dict[str, list[str]]:
        return {
            f"{kind}_hashes": [f"{number:016x}" for number in sorted(numbers)]
            for kind, numbers in self._seen.items()
        }
