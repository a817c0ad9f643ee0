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
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()[:16]


class Subjects:
    """The users and sessions an export run contains, for its manifest (`user_hashes`,
    `session_hashes`): what a later forget reads to name the runs to rebuild."""

    def __init__(self, salt: str) -> None:
        self.salt = salt
        self._seen: dict[str, set[str]] = {kind: set() for kind in KINDS}

    def add(self, record: Mapping[str, Any]) -> None:
        """Before the record is anonymized: its raw user and session."""
        for kind in KINDS:
            value = record.get(kind)
            if value is not None:
                self._seen[kind].add(subject_hash(self.salt, value))

    def manifest(self) -> dict[str, list[str]]:
        return {f"{kind}_hashes": sorted(hashes) for kind, hashes in self._seen.items()}
