"""The forget list as the recorder sees it: rows of a forgotten person that were not in the
database when the forget ran (queued in a worker, spooled, dead-lettered, on another replica)
are dropped when the recorder writes or replays them, instead of bringing the person back.

The list is the `forgotten` table: salted hashes with the moment of each forget, never the ids.
A row is dropped when its user or session hashes to a listed one and it was created at or
before that moment; a person who comes back afterwards is recorded again. Each recorder reloads
the list every `refresh_interval` seconds (and at once after a forget in its own process), so
another worker's queue is covered within that interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from gateway.errors import StoreError
from gateway.privacy.subjects import subject_hash
from gateway.records.interaction import Interaction
from gateway.store.base import PrivacyStore

log = logging.getLogger(__name__)


class ForgottenSubjects:
    def __init__(self, store: PrivacyStore, salt: str, refresh_interval: float = 30.0):
        self.store = store
        self.salt = salt
        self.refresh_interval = refresh_interval
        self._at: dict[tuple[str, str], datetime] = {}
        self._next_refresh = 0.0
        self.dropped = 0

    def add(self, kind: str, hashed: str, at: datetime) -> None:
        self._at[(kind, hashed)] = max(at, self._at.get((kind, hashed), at))

    async def refresh(self, wait: float) -> None:
        """Reload the list if it is due; with the database away, keep the one we have."""
        if time.monotonic() < self._next_refresh:
            return
        self._next_refresh = time.monotonic() + self.refresh_interval
        try:
            rows = await asyncio.wait_for(self.store.forgotten(), wait)
        except (StoreError, TimeoutError) as exc:
            log.debug("forget list not refreshed: %s", exc)
            return
        for row in rows:
            self.add(row["kind"], row["subject_hash"], datetime.fromisoformat(row["forgotten_at"]))

    def keep(self, rows: list[Interaction]) -> list[Interaction]:
        if not self._at:
            return rows
        kept = [row for row in rows if not self._forgotten(row)]
        self.dropped += len(rows) - len(kept)
        return kept

    def _forgotten(self, row: Interaction) -> bool:
        for kind, value in (("user", row.user), ("session", row.session)):
            if value is None:
                continue
            at = self._at.get((kind, subject_hash(self.salt, value)))
            if at is not None and row.created_at <= at:
                return True
        return False
