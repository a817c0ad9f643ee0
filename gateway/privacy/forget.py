"""Forgetting a person: `flywheel forget --user ID` and `DELETE /admin/users/{id}` (or a session).

In this order: the person's salted hash goes on the forget list (so every recorder drops their
rows that are still queued, spooled or on their way from another replica), their interactions
and the feedback on them are deleted in batches, their lines are purged from the spool and its
dead letters, and the export runs whose manifest lists them are named, so those datasets can be
rebuilt. A later export cannot include them: their rows are gone and late ones are dropped.

Only the hash is kept (the forget list, the audit trail); the id itself is never stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.privacy.forgotten import ForgottenSubjects
from gateway.privacy.subjects import KINDS, subject_hash
from gateway.spool import Spool
from gateway.store.base import PrivacyStore

# Interactions per delete transaction: short enough that the recorder barely waits on SQLite.
BATCH_SIZE = 1000


async def forget(
    store: PrivacyStore,
    spool: Spool,
    salt: str,
    kind: str,
    value: str,
    *,
    forgotten: ForgottenSubjects | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Forget the user (or session) `value`; what was removed, and the runs that held it."""
    if kind not in KINDS:
        raise ValueError(f"cannot forget a {kind!r}; one of {KINDS}")
    at = datetime.now(UTC)
    hashed = subject_hash(salt, value)
    await store.add_forgotten(kind, hashed, at)
    if forgotten is not None:
        forgotten.add(kind, hashed, at)  # this process's recorder, without waiting a refresh
    interactions = feedback = 0
    while True:
        gone, feedback_gone = await store.delete_subject_batch(kind, value, batch_size)
        interactions += gone
        feedback += feedback_gone
        if gone < batch_size:
            break
    purged = await asyncio.to_thread(spool.purge, lines_of(kind, value))
    runs = await store.runs_containing(kind, hashed)
    return {
        "object": "forget",
        "kind": kind,
        "subject_hash": hashed,
        "forgotten_at": at.isoformat(),
        "deleted": {"interactions": interactions, "feedback": feedback},
        "spool": {
            "rows_removed": purged.rows_removed,
            "files_rewritten": purged.files_rewritten,
            "segments_in_use": purged.in_use,
        },
        "export_runs": runs,
    }


def lines_of(kind: str, value: str) -> Callable[[bytes], bool]:
    """Picks the spool lines whose `kind` field is `value`. A line that cannot be read but
    holds the id anywhere goes too: better a lost unreadable line than a kept person."""
    needle = orjson.dumps(value)

    def unwanted(line: bytes) -> bool:
        if needle not in line:  # most lines: one substring search, no parsing
            return False
        try:
            fields = orjson.loads(line)
        except orjson.JSONDecodeError:
            return True
        return isinstance(fields, dict) and fields.get(kind) == value

    return unwanted
