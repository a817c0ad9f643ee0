"""SQLite engine: the zero-setup default for one host.

sqlite3 blocks, so every call runs on one dedicated thread that owns the connection; the event
loop only awaits the result. WAL lets readers (admin API, exporters) work while the recorder writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import orjson

from gateway.errors import RowsRejected, StoreError
from gateway.interaction import COLUMNS, JSON_COLUMNS, Interaction
from gateway.store.base import load_migrations
from gateway.store.queries import TimeWindow
from gateway.store.sqlite_review import SQLiteExportRuns, SQLiteReview, interaction_record

T = TypeVar("T")
_JSON_INDEXES = [i for i, name in enumerate(COLUMNS) if name in JSON_COLUMNS]
_INSERT = (
    f"INSERT INTO interactions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    " ON CONFLICT (id) DO NOTHING"
)


# The database is fine but these values are not: text that is not UTF-8 (UnicodeEncodeError is a
# ValueError), an integer beyond 64 bits, a type sqlite3 cannot bind, a constraint.
_REFUSED_VALUES = (
    ValueError,
    OverflowError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
)


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` -> `relative.db`; `sqlite:////abs/x.db` -> `/abs/x.db`."""
    path = urlparse(url).path
    return path[1:] if path.startswith("/") else path


class SQLiteStore(SQLiteReview, SQLiteExportRuns):
    engine = "sqlite"

    def __init__(self, path: str):
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, connect: bool = True) -> SQLiteStore:
        store = cls(sqlite_path(url))
        if connect:
            try:
                await store._run(lambda: store.conn)
            except StoreError:
                store._executor.shutdown(wait=False)
                raise
        return store

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode; only a power loss can
            # drop the last transactions, which FULL would guard at a large write cost.
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()  # locked meanwhile: the next call tries again
            raise
        self._conn = conn
        return conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError(f"sqlite {self.path}: store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"sqlite {self.path}: {exc}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, opened on first use (only ever on the store's own thread)."""
        if self._closed:
            raise StoreError("sqlite store is closed")
        return self._conn if self._conn is not None else self._connect()

    async def migrate(self) -> list[str]:
        return await self._run(self._migrate)

    def _migrate(self) -> list[str]:
        conn = self.conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        # BEGIN IMMEDIATE takes the write lock first, so two processes starting at once
        # cannot both apply the same migration.
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            applied = []
            for migration in load_migrations(self.engine):
                if migration.version in done:
                    continue
                for statement in migration.sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, datetime.now(UTC).isoformat()),
                )
                applied.append(f"{migration.version:04d}_{migration.name}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return applied

    async def insert_interactions(self, rows: Sequence[Interaction]) -> None:
        await self._run(self._insert, [row.as_row() for row in rows])

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            # JSON encoding happens here, on the store's thread, not on the event loop.
            params = [_to_sqlite(row) for row in rows]
        except TypeError as exc:  # orjson: a lone surrogate, a 65-bit number, too deep
            raise RowsRejected(f"sqlite {self.path}: {exc}") from exc
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.executemany(_INSERT, params)
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, _REFUSED_VALUES):
                raise RowsRejected(f"sqlite {self.path}: {exc}") from exc
            raise

    async def get_interaction(self, interaction_id: str) -> dict[str, Any] | None:
        return await self._run(self._get, interaction_id)

    def _get(self, interaction_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM interactions WHERE id = ?", (interaction_id,)
        ).fetchone()
        return None if row is None else interaction_record(row)

    async def experiment_rows(
        self, model: str, window: TimeWindow
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await self._run(self._experiment_rows, model, window)

    def _experiment_rows(
        self, model: str, window: TimeWindow
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        where, params = "requested_model = ?", [model]
        for bound, op in ((window.since, ">="), (window.until, "<")):
            if bound is not None:
                where += f" AND created_at {op} ?"
                params.append(bound.astimezone(UTC).isoformat())
        interactions = self.conn.execute(
            "SELECT id, variant, status, latency_ms, ttft_ms, cost_usd, prompt_tokens,"
            f" completion_tokens FROM interactions WHERE {where}",
            params,
        ).fetchall()
        events = self.conn.execute(
            "SELECT f.interaction_id, f.rating, f.thumbs, f.outcome FROM feedback f"
            f" JOIN interactions ON interactions.id = f.interaction_id WHERE {where}"
            " ORDER BY f.created_at",
            params,
        ).fetchall()
        return [dict(r) for r in interactions], [dict(r) for r in events]

    async def ping(self) -> None:
        await self._run(lambda: self.conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        if self._closed:
            return
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._closed = True
        self._executor.shutdown(wait=True)


def _to_sqlite(values: tuple[Any, ...]) -> tuple[Any, ...]:
    out = list(values)
    out[1] = out[1].astimezone(UTC).isoformat()  # created_at, in UTC so text order is time order
    for i in _JSON_INDEXES:
        if out[i] is not None:
            out[i] = orjson.dumps(out[i]).decode()
    return tuple(out)
