"""PostgreSQL engine (asyncpg): the store for several workers and replicas on one database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from gateway.errors import RowsRejected, StoreError
from gateway.interaction import COLUMNS, Interaction
from gateway.store.base import load_migrations
from gateway.store.postgres_review import PostgresExportRuns, PostgresReview, interaction_record
from gateway.store.queries import TimeWindow

# Any constant works; it only has to be the same in every replica so that replicas starting
# together apply migrations one at a time.
_MIGRATION_LOCK = 0x466C7977
_QUOTED = ", ".join(f'"{name}"' for name in COLUMNS)  # "user" is a reserved word
_PLACEHOLDERS = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
_INSERT = (
    f"INSERT INTO interactions ({_QUOTED}) VALUES ({_PLACEHOLDERS}) ON CONFLICT (id) DO NOTHING"
)


def _without_nul(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold U+0000, which model output can contain; one such
    row would fail its whole batch. It becomes U+FFFD, the replacement character."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


# The server is fine but these values are not: out of range or not encodable server-side
# (SQLSTATE 22xxx, 23xxx), or refused by asyncpg's encoders and orjson before sending (asyncpg's
# client-side DataError is a ValueError, orjson's error a TypeError).
_REFUSED_VALUES = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
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


class PostgresStore(PostgresReview, PostgresExportRuns):
    engine = "postgres"

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

    async def migrate(self) -> list[str]:
        try:
            return await self._migrate()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgres migration failed: {exc}") from exc

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
        try:
            async with self._pool.acquire() as conn:
                # executemany pipelines the batch in one round trip; COPY would be faster
                # still but cannot skip ids that a spool replay already wrote.
                await conn.executemany(_INSERT, [_row(row) for row in rows])
        except _REFUSED_VALUES as exc:
            raise RowsRejected(f"postgres refused the rows: {exc}") from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgres insert failed: {exc}") from exc

    async def get_interaction(self, interaction_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow("SELECT * FROM interactions WHERE id = $1", interaction_id)
        return None if row is None else interaction_record(row)

    async def experiment_rows(
        self, model: str, window: TimeWindow
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        where = "i.requested_model = $1"
        params: list[Any] = [model]
        for bound, op in ((window.since, ">="), (window.until, "<")):
            if bound is not None:
                params.append(bound)
                where += f" AND i.created_at {op} ${len(params)}"
        async with self._pool.acquire() as conn:
            interactions = await conn.fetch(
                "SELECT i.id::text AS id, variant, status, latency_ms, ttft_ms, cost_usd,"
                f" prompt_tokens, completion_tokens FROM interactions i WHERE {where}",
                *params,
            )
            events = await conn.fetch(
                "SELECT f.interaction_id::text AS interaction_id, f.rating, f.thumbs, f.outcome"
                f" FROM feedback f JOIN interactions i ON i.id = f.interaction_id WHERE {where}"
                " ORDER BY f.created_at",
                *params,
            )
        return [dict(r) for r in interactions], [dict(r) for r in events]

    async def ping(self) -> None:
        try:
            await self._pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgres unreachable: {exc}") from exc

    async def close(self) -> None:
        await self._pool.close()


def _row(interaction: Interaction) -> tuple[Any, ...]:
    return tuple(
        _without_nul(value) if isinstance(value, str) else value for value in interaction.as_row()
    )
