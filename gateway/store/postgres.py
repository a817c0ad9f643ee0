"""PostgreSQL engine (asyncpg): the store for several workers and replicas on one database.

Queries come from `SQLQueries` (sql.py); this module runs them on a pool, converts values
(uuids and timestamps to strings; JSON through the jsonb codec; U+0000 out of text) and turns
every driver error into `StoreError` with `_errors`, around each driver call; the recorder's
insert first tells rows the server refuses (`RowsRejected`) from an outage.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from gateway.errors import RowsRejected, StoreError
from gateway.records.interaction import COLUMNS, JSON_COLUMNS, Interaction
from gateway.store.base import load_migrations
from gateway.store.dialect import POSTGRES
from gateway.store.privacy_sql import PrivacyQueries
from gateway.store.search import postgres_backlog, postgres_index_batch
from gateway.store.sql import PLAIN, Decode, SQLQueries
from gateway.store.stats_sql import StatsQueries
from gateway.store.tuning_sql import TuningQueries

# Any constant works; it only has to be the same in every replica so that replicas starting
# together apply migrations one at a time.
_MIGRATION_LOCK = 0x466C7977
# The column types of `interactions` (migrations 0001, 0003, 0005) that are not text or JSON.
_TYPES = {
    "id": "uuid",
    "created_at": "timestamptz",
    "stream": "boolean",
    "usage_estimated": "boolean",
    "http_status": "integer",
    "prompt_tokens": "bigint",
    "completion_tokens": "bigint",
    "cached_tokens": "bigint",
    "reasoning_tokens": "bigint",
    "cost_usd": "float8",
    "latency_ms": "float8",
    "ttft_ms": "float8",
}


def _batch_insert() -> str:
    """A whole batch in one statement: one round trip, and the statement triggers (rollups,
    search queue: migration 0010) run once per batch, not once per row.

    The batch travels as one jsonb array of rows, each an array in `COLUMNS` order, so one
    orjson call encodes it. One array per column had asyncpg encode every value on the event
    loop (issue 20): per 50-row batch the loop was blocked 0.83 ms for short rows (0.36 now)
    and 2.6 ms with 16 KB prompts (2.0, most of it the socket); the server's CPU per row is
    the same. A JSON column's value is taken as the jsonb it already is; JSON null is SQL
    NULL, as None was."""
    names = ", ".join(POSTGRES.quote(column) for column in COLUMNS)
    values = ", ".join(_batch_value(n, column) for n, column in enumerate(COLUMNS))
    return (
        f"INSERT INTO interactions ({names}) SELECT {values}"
        " FROM jsonb_array_elements($1::jsonb) AS batch(r)"
        " ON CONFLICT (id) DO NOTHING"
    )


def _batch_value(n: int, column: str) -> str:
    if column in JSON_COLUMNS:
        return f"nullif(r->{n}, 'null')"
    return f"(r->>{n})::{_TYPES.get(column, 'text')}"


_INSERT_BATCH = _batch_insert()
# What asyncpg raises when the server or the connection fails, or refuses what it was sent.
_DRIVER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _without_nul(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold U+0000, which model output can contain; one such
    row would fail its whole batch. It becomes U+FFFD, the replacement character."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


# The server is fine but these values are not: out of range or not encodable server-side
# (SQLSTATE 22xxx, 23xxx), or refused by asyncpg's encoders and orjson before sending (asyncpg's
# client-side DataError is a ValueError, orjson's error a TypeError).
_REFUSED_VALUES = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,  # 54000: e.g. a value too long for a btree index entry
    ValueError,
    TypeError,
    OverflowError,
)


# jsonb travels in PostgreSQL's binary format: a version byte, then the JSON text. Handing
# orjson's bytes over as they are skips a decode to str and back, on the event loop.
_JSONB_VERSION = b"\x01"


def _encode_jsonb(value: Any) -> bytes:
    data = orjson.dumps(value)
    if b"\\u0000" in data:
        data = orjson.dumps(_without_nul(value))
    return _JSONB_VERSION + data


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
    )


class PostgresStore(SQLQueries, StatsQueries, PrivacyQueries, TuningQueries):
    engine = "postgres"
    dialect = POSTGRES
    indexes_in_process = False  # the search index's batches are the server's work

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 10, connect: bool = True) -> PostgresStore:
        try:
            # min_size 0: the pool connects on first use, so a gateway starts with the database
            # down (and connects later); 1: a CLI command finds out at once.
            pool = await asyncpg.create_pool(
                url, min_size=1 if connect else 0, max_size=pool_size, init=_init_connection
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for a block; failing to get one is a `StoreError` (errors
        raised by the block itself pass through as they are)."""
        with _errors("unreachable"):
            conn = await self._pool.acquire()
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    # -- the primitives `SQLQueries` runs on ------------------------------------------------
    async def _fetch(
        self, sql: str, params: Sequence[Any] = (), decode: Decode = PLAIN
    ) -> list[dict[str, Any]]:
        # JSON is decoded by the jsonb codec and booleans are booleans: `decode` is for SQLite.
        with _errors("query failed"):
            rows = await self._pool.fetch(sql, *_to_postgres(params))
        return _from_postgres_rows(rows)

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _errors("write failed"):
            await self._pool.execute(sql, *_to_postgres(params))

    async def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._connection() as conn:
            with _errors("write failed"):
                async with conn.transaction():
                    await conn.executemany(sql, [_to_postgres(row) for row in rows])

    async def _execute_counted(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        counts = []
        async with self._connection() as conn:
            with _errors("write failed"):
                async with conn.transaction():
                    for sql, params in statements:
                        status = await conn.execute(sql, *_to_postgres(params))
                        counts.append(int(status.rsplit(" ", 1)[-1]))  # "DELETE 42"
        return counts

    # -- what only this engine does ---------------------------------------------------------
    async def migrate(self) -> list[str]:
        with _errors("migration failed"):
            return await self._migrate()

    async def _migrate(self) -> list[str]:
        applied = []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for migration in load_migrations(self.engine):
                if migration.version in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
                applied.append(f"{migration.version:04d}_{migration.name}")
        return applied

    async def insert_interactions(self, rows: Sequence[Interaction]) -> None:
        # Getting a connection is outside the `RowsRejected` mapping: a connection that cannot
        # be made (asyncpg's configuration errors are ValueErrors too) is an outage.
        async with self._connection() as conn:
            try:
                # Not COPY: it cannot skip the ids a spool replay already wrote.
                if rows:
                    await conn.execute(_INSERT_BATCH, [row.as_row() for row in rows])
            except _REFUSED_VALUES as exc:
                raise RowsRejected(f"postgres refused the rows: {exc}") from exc
            except _DRIVER_ERRORS as exc:
                raise StoreError(f"postgres insert failed: {exc}") from exc

    @contextlib.asynccontextmanager
    async def job_lock(self, name: str) -> AsyncIterator[bool]:
        # A session-level advisory lock lives as long as its connection: holding the
        # connection for the run means a crashed runner releases it by disconnecting.
        key = int.from_bytes(hashlib.sha256(f"flywheel-job:{name}".encode()).digest()[:8], "big")
        key -= 1 << 63 if key >= 1 << 63 else 0
        async with self._connection() as conn:
            with _errors("job lock failed"):
                acquired = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
            try:
                yield bool(acquired)
            finally:
                if acquired:
                    with _errors("job unlock failed"):
                        await conn.execute("SELECT pg_advisory_unlock($1)", key)

    async def index_search(self, limit: int) -> int:
        p = self.dialect.params()
        return int((await self._fetch(postgres_index_batch(p, limit), p.values))[0]["n"])

    async def search_backlog(self, up_to: int | None = None) -> int:
        p = self.dialect.params()
        return int((await self._fetch(postgres_backlog(p, up_to), p.values))[0]["n"])

    async def ping(self) -> None:
        with _errors("unreachable"):
            await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """The engine's error boundary: a driver error leaves as `StoreError`."""
    try:
        yield
    except _DRIVER_ERRORS as exc:
        raise StoreError(f"postgres {what}: {exc}") from exc


def _to_postgres(values: Sequence[Any]) -> list[Any]:
    # Text cannot hold U+0000 (see `_without_nul`); JSON values go through the jsonb codec,
    # which already replaces it.
    return [v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in values]


def _from_postgres(value: Any) -> Any:
    """Ids and timestamps as the other engines give them: strings, times in UTC ISO 8601."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def _from_postgres_rows(rows: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    """Rows as dicts, converted by `_from_postgres` in the columns that need it: a column has
    one type, so its first value that is not NULL tells. A value at a time cost half the time
    of a 20,000-row read (the experiments page)."""
    found = [dict(row) for row in rows]
    if not found:
        return found
    for name in found[0]:
        sample = next((row[name] for row in found if row[name] is not None), None)
        if isinstance(sample, uuid.UUID | datetime):
            for row in found:
                if row[name] is not None:
                    row[name] = _from_postgres(row[name])
    return found
