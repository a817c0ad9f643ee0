"""Applies the store's migrations at start or, when the database is down then, once it answers.

A worker must start and serve while the database is unavailable (its rows wait in the spool):
a replacement worker that exits because the database is locked shrinks capacity during exactly
the outage it should ride out. Until the schema is in place `/readyz` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.errors import StoreError
from gateway.store.base import Migratable

log = logging.getLogger(__name__)


class Migrations:
    def __init__(
        self, store: Migratable, *, retry_interval: float = 2.0, ping_timeout: float = 10.0
    ):
        self.store = store
        self.retry_interval = retry_interval
        self.ping_timeout = ping_timeout
        self.pending = True
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Try once now; if the database does not answer, keep trying in the background."""
        if not await self._attempt():
            log.warning(
                "store: unavailable at start (%s); serving anyway, interactions wait in the "
                "spool and migrations are retried every %.0f s",
                self.last_error,
                self.retry_interval,
            )
            self._task = asyncio.create_task(self._retry(), name="flywheel-migrations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)
            if await self._attempt():
                log.info("store: available again; schema is up to date")
                return

    async def _attempt(self) -> bool:
        try:
            # Only reaching the database is timed: a migration that rewrites a large table
            # takes as long as it takes, and cutting it short would start it over forever.
            await asyncio.wait_for(self.store.ping(), self.ping_timeout)
            applied = await self.store.migrate()
        except (StoreError, TimeoutError) as exc:
            self.last_error = str(exc) or type(exc).__name__
            return False
        if applied:
            log.info("store: applied migrations %s", ", ".join(applied))
        self.pending, self.last_error = False, None
        return True
