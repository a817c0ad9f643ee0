"""SQLite engine: the zero-setup default for one host.

sqlite3 blocks, so every call runs on one dedicated thread that owns the connection; the event
loop only awaits the result. WAL lets readers (admin API, exporters) work while the recorder writes.
Queries come from `SQLQueries` (sql.py); this module runs them, converts values (datetimes to
UTC ISO text, JSON to text and back, integers to booleans) and turns sqlite3's errors into
`StoreError` in one place, `_run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import math
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import orjson

from gateway.errors import RowsRejected, StoreError
from gateway.records.interaction import COLUMNS, JSON_COLUMNS, Interaction
from gateway.store.base import load_migrations
from gateway.store.dialect import SQLITE
from gateway.store.privacy_sql import PrivacyQueries
from gateway.store.queries import (
    PERCENTILES,
    interpolated_percentile,
    percentile_rank,
    slice_of,
)
from gateway.store.search import sqlite_backlog, sqlite_index_batch
from gateway.store.sql import PLAIN, Decode, SQLQueries
from gateway.store.sqlite_rollups import AFTER_BATCH, BATCH_START, histogram_add
from gateway.store.stats_sql import READOUT_PERCENTILES, StatsQueries
from gateway.store.tuning_sql import TuningQueries

T = TypeVar("T")
_JSON_INDEXES = [i for i, name in enumerate(COLUMNS) if name in JSON_COLUMNS]
_INSERT = SQLITE.insert_ignoring("interactions", COLUMNS, key="id")


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


class SQLiteStore(SQLQueries, StatsQueries, PrivacyQueries, TuningQueries):
    engine = "sqlite"
    dialect = SQLITE
    indexes_in_process = True  # the search index's batches run on a store thread

    def __init__(self, path: str, *, threads: int = 1):
        self.path = path
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="flywheel-sqlite"
        )
        self._local = threading.local()  # each thread's own connection
        self._conns: list[sqlite3.Connection] = []
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, connect: bool = True, threads: int = 1) -> SQLiteStore:
        """For the console's reader, `threads` > 1: calls run side by side, each thread with its
        own connection (WAL readers do not block each other). The app's store keeps one thread:
        the recorder's batches are written in order."""
        store = cls(sqlite_path(url), threads=threads)
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
        # check_same_thread off only so that `close` can close every thread's connection.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode; only a power loss can
            # drop the last transactions, which FULL would guard at a large write cost.
            conn.execute("PRAGMA synchronous=NORMAL")
            _ensure_math_functions(conn)
            conn.create_function("flywheel_histogram_add", 2, histogram_add, deterministic=True)
            conn.create_function("flywheel_slice", 2, slice_of, deterministic=True)
        except BaseException:
            conn.close()  # locked meanwhile: the next call tries again
            raise
        self._local.conn = conn
        self._conns.append(conn)
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
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        return conn if conn is not None else self._connect()

    # -- the primitives `SQLQueries` runs on (each on the store's thread) -------------------
    async def _fetch(
        self, sql: str, params: Sequence[Any] = (), decode: Decode = PLAIN
    ) -> list[dict[str, Any]]:
        return await self._run(self._fetch_now, sql, params, decode)

    def _fetch_now(self, sql: str, params: Sequence[Any], decode: Decode) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, _to_sqlite(params))
        rows = cursor.fetchall()
        # dict(zip(...)) over the column names, not dict(row): sqlite3.Row looks each column up
        # by name, 7-8 us for an interaction's 30 columns against 2 (issue 21: an export reads
        # every row this way).
        names = [column[0] for column in cursor.description]
        return [_from_sqlite(dict(zip(names, row, strict=True)), decode) for row in rows]

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._run(lambda: self.conn.execute(sql, _to_sqlite(params)))

    async def _percentiles(
        self, column: str, source: str, groups: Mapping[str, str], params: Sequence[Any]
    ) -> list[dict[str, Any]]:
        # SQLite has no percentile function; the window functions that rank rows by hand
        # took 300 ms for a day at 1M rows (three times per overview). Reading the values
        # and sorting them here, on the store's thread, takes a third of that: same rule,
        # same answer (nearest rank: the ceil(p * n)-th smallest).
        keys = "".join(f"{expression}, " for expression in groups.values())
        sql = f"SELECT {keys}{column} FROM {source}"
        return await self._run(self._percentiles_now, sql, params, tuple(groups))

    def _percentiles_now(
        self, sql: str, params: Sequence[Any], aliases: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        values: dict[tuple[Any, ...], list[Any]] = {}
        width = len(aliases)
        for row in self.conn.execute(sql, _to_sqlite(params)):
            values.setdefault(tuple(row[:width]), []).append(row[width])
        if not values and not aliases:
            values[()] = []  # no groups: one row, of None, like an aggregate over nothing
        found = []
        for key, column in values.items():
            column.sort()
            picks = {
                name: column[percentile_rank(len(column), percent) - 1] if column else None
                for name, percent in PERCENTILES.items()
            }
            found.append({**dict(zip(aliases, key, strict=True)), **picks})
        return found

    async def _interpolated_percentiles(
        self, sql: str, params: Sequence[Any]
    ) -> dict[Any, dict[str, float | None]]:
        # Plain tuples on the store's thread: dicts for a day's rows cost more than the sort.
        return await self._run(self._interpolated_now, sql, params)

    def _interpolated_now(
        self, sql: str, params: Sequence[Any]
    ) -> dict[Any, dict[str, float | None]]:
        columns: dict[Any, tuple[list[float], list[float]]] = {}
        for variant, latency, ttft in self.conn.execute(sql, _to_sqlite(params)):
            latencies, ttfts = columns.setdefault(variant, ([], []))
            if latency is not None:
                latencies.append(latency)
            if ttft is not None:
                ttfts.append(ttft)
        found: dict[Any, dict[str, float | None]] = {}
        for variant, values in columns.items():
            by_column = dict(zip(("latency_ms", "ttft_ms"), values, strict=True))
            found[variant] = {
                name: interpolated_percentile(by_column[column], round(fraction * 100))
                for name, (column, fraction) in READOUT_PERCENTILES.items()
            }
        return found

    async def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._run(self._execute_many_now, sql, rows)

    def _execute_many_now(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._in_transaction(sql, [_to_sqlite(row) for row in rows])

    async def _execute_counted(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        return await self._run(self._execute_counted_now, statements)

    def _execute_counted_now(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")  # the write lock first: no upgrade deadlock midway
        try:
            counts = [conn.execute(sql, _to_sqlite(params)).rowcount for sql, params in statements]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return counts

    def _in_transaction(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.executemany(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- what only this engine does ---------------------------------------------------------
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
                for statement in _statements(migration.sql):
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
            params = [_interaction_params(row) for row in rows]
        except TypeError as exc:  # orjson: a lone surrogate, a 65-bit number, too deep
            raise RowsRejected(f"sqlite {self.path}: {exc}") from exc
        try:
            self._insert_batch(params)
        except _REFUSED_VALUES as exc:
            raise RowsRejected(f"sqlite {self.path}: {exc}") from exc
        except sqlite3.ProgrammingError as exc:
            if str(exc).startswith("Error binding parameter"):  # a type sqlite3 cannot bind
                raise RowsRejected(f"sqlite {self.path}: {exc}") from exc
            raise

    def _insert_batch(self, params: list[tuple[Any, ...]]) -> None:
        """The rows, and what they add to the rollups (sqlite_rollups.py), in one transaction.
        IMMEDIATE takes the write lock first, so no other process's rows can land between
        reading where this batch starts and adding it up."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            [(start,)] = conn.execute(BATCH_START).fetchall()
            conn.executemany(_INSERT, params)
            for statement in AFTER_BATCH:
                conn.execute(statement, (start,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.asynccontextmanager
    async def job_lock(self, name: str) -> AsyncIterator[bool]:
        # SQLite serves one host, so a file lock is enough, taken without waiting (LOCK_NB).
        # Opened on the loop, not on a thread: a task cancelled while a thread opened the file
        # (a shutdown) left the handle open, and opening a local file takes microseconds.
        lock_path = f"{self.path}.{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
        try:
            handle = open(lock_path, "a")  # noqa: ASYNC230, SIM115 (closed below)
        except OSError as exc:
            raise StoreError(f"sqlite {self.path}: job lock: {exc}") from exc
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    async def index_search(self, limit: int) -> int:
        p = self.dialect.params()
        [added] = await self._execute_counted([(sqlite_index_batch(p, limit), p.values)])
        return added

    async def search_backlog(self, up_to: int | None = None) -> int:
        p = self.dialect.params()
        return int((await self._fetch(sqlite_backlog(p, up_to), p.values))[0]["n"])

    async def ping(self) -> None:
        await self._run(lambda: self.conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # calls still queued find the store closed
        # Every call under way ends first (a task cancelled meanwhile, like the search indexer
        # at shutdown, leaves its statement running): closing a connection that another thread
        # is using crashes the process. Waited for on a thread, not on the loop.
        await asyncio.to_thread(self._executor.shutdown, True)
        for conn in self._conns:
            conn.close()
        self._conns.clear()


def _ensure_math_functions(conn: sqlite3.Connection) -> None:
    """The rollups' triggers (migration 0010) bucket latencies with ln() and floor(), which a
    SQLite built without its math functions (SQLITE_ENABLE_MATH_FUNCTIONS, on by default since
    3.35, off in some bundled builds) lacks: Python's stand in, the same libm underneath."""
    try:
        conn.execute("SELECT ln(2.0), floor(2.5)")
    except sqlite3.OperationalError:
        conn.create_function("ln", 1, math.log, deterministic=True)
        conn.create_function("floor", 1, math.floor, deterministic=True)


def _statements(script: str) -> list[str]:
    """A migration's statements, one at a time (sqlite3 runs one per call, and executescript
    would commit the migration's transaction). A `;` inside a trigger's body does not end it:
    a statement ends where SQLite says one is complete."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                statements.append(pending)
            pending = ""
    if pending.strip(" \t\n;"):
        statements.append(pending)
    return statements


def _to_sqlite(values: Sequence[Any]) -> list[Any]:
    """Parameters as SQLite stores them: times as UTC ISO text (text order is time order),
    lists and dicts as JSON text."""
    out = []
    for value in values:
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat()
        elif isinstance(value, dict | list):
            value = orjson.dumps(value).decode()
        out.append(value)
    return out


def _interaction_params(values: tuple[Any, ...]) -> tuple[Any, ...]:
    # The recorder's hot path: the JSON columns by index, rather than `_to_sqlite`'s type tests.
    out = list(values)
    out[1] = out[1].astimezone(UTC).isoformat()  # created_at
    for i in _JSON_INDEXES:
        if out[i] is not None:
            out[i] = orjson.dumps(out[i]).decode()
    return tuple(out)


def _from_sqlite(record: dict[str, Any], decode: Decode) -> dict[str, Any]:
    for name in decode.json:
        if record.get(name) is not None:
            record[name] = orjson.loads(record[name])
    for name in decode.bools:
        if name in record:
            record[name] = bool(record[name])
    return record
