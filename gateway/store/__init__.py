"""Storage engines behind one contract: SQLite (embedded default) and PostgreSQL.

Layout: `base.py` the contract, one protocol per role (the recorder's sink, feedback, review,
stats, exports, jobs, migrations) and `Store`, their union; `queries.py` what the review API
and exporters ask; `sql.py` every query, written once; `stats_sql.py` the stats, read from the
hourly rollups (migrations 0010-0011, `rollups.py`); `dialect.py` what the engines spell
differently; `sqlite.py` and `postgres.py` connections, value conversion, error boundary and
what only they do (the recorder's batch insert, migrations, the job lock), with
`sqlite_rollups.py` what a SQLite batch adds to the rollups; `migrator.py` migrations at start.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from gateway.store.base import (
    ExportJobs,
    ExportRuns,
    ExportSource,
    FeedbackStore,
    InteractionSink,
    Migratable,
    PrivacyStore,
    Reachable,
    ReviewStore,
    SearchIndex,
    StatsStore,
    Store,
    TuningStore,
)


class OpenStore:
    """What `open_store` returns: await it for a store you close yourself, or use it as
    `async with open_store(url) as store:` to have the store closed when the block ends."""

    def __init__(self, url: str, *, pool_size: int, connect: bool) -> None:
        self._url, self._pool_size, self._connect = url, pool_size, connect
        self._store: Store | None = None

    def __await__(self) -> Generator[Any, None, Store]:
        return self._open().__await__()

    async def __aenter__(self) -> Store:
        self._store = await self._open()
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()

    async def _open(self) -> Store:
        if urlparse(self._url).scheme == "sqlite":
            from gateway.store.sqlite import SQLiteStore

            return await SQLiteStore.open(self._url, connect=self._connect)
        from gateway.store.postgres import PostgresStore

        return await PostgresStore.open(self._url, pool_size=self._pool_size, connect=self._connect)


def open_store(url: str, *, pool_size: int = 10, connect: bool = True) -> OpenStore:
    """Open the database named by `url` (sqlite:///path or postgresql://...): `await` it, or
    `async with` it. With `connect=False` nothing is attempted until the first call, so a
    gateway can start and spool while the database is down."""
    return OpenStore(url, pool_size=pool_size, connect=connect)


__all__ = [
    "ExportJobs",
    "ExportRuns",
    "ExportSource",
    "FeedbackStore",
    "InteractionSink",
    "Migratable",
    "OpenStore",
    "PrivacyStore",
    "Reachable",
    "ReviewStore",
    "SearchIndex",
    "StatsStore",
    "Store",
    "TuningStore",
    "open_store",
]
