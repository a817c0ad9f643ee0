"""One contract, two engines: every test here runs on SQLite and on PostgreSQL.

Stores are opened with `open_store(url)` like the gateway does; what landed in the tables is
checked with plain sqlite3 / asyncpg queries where it matters, not through the store itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest

from gateway.errors import StoreError
from gateway.ids import uuid7
from gateway.records.feedback import FEEDBACK_COLUMNS
from gateway.records.interaction import COLUMNS, ERROR, Interaction
from gateway.store import Store, open_store
from gateway.store.base import load_migrations

# Every migration file, in order: a fresh database gets all of them, once.
MIGRATIONS = [f"{m.version:04d}_{m.name}" for m in load_migrations("sqlite")]


# -- helpers: read the database directly ---------------------------------------------------
def _sqlite_file(url: str) -> str:
    return urlparse(url).path[1:]


async def _query(url: str, sql_sqlite: str, sql_postgres: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(_sqlite_file(url))
        try:
            return [tuple(r) for r in conn.execute(sql_sqlite).fetchall()]
        finally:
            conn.close()
    pg = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await pg.fetch(sql_postgres)]
    finally:
        await pg.close()


async def _count(url: str, interaction_id: str | None = None) -> int:
    if interaction_id is None:
        sql = "SELECT count(*) FROM interactions"
        rows = await _query(url, sql, sql)
    else:
        rows = await _query(
            url,
            f"SELECT count(*) FROM interactions WHERE id = '{interaction_id}'",
            f"SELECT count(*) FROM interactions WHERE id = '{interaction_id}'::uuid",
        )
    return int(rows[0][0])


def _full_interaction(**overrides: Any) -> Interaction:
    """An interaction with every field set to a non-default value."""
    values: dict[str, Any] = {
        "id": uuid7(),
        "created_at": datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC),
        "endpoint": "chat/completions",
        "requested_model": "gpt-4o-mini",
        "variant": "b",
        "provider": "openai",
        "upstream_model": "gpt-4o-mini-2024-07-18",
        "user": "usér-42 ✓",
        "session": "sess-1",
        "tags": {"team": "search", "env": "prod", "emoji": "🚀", "empty": ""},
        "api_key_name": "my-app",
        "request": {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Réponds en français, s'il te plaît. 日本語も"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": 'quote " backslash \\ newline \n tab \t'},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                    ],
                },
            ],
            "temperature": 0.7,
            "max_tokens": 256,
            "stream": True,
            "logit_bias": {"50256": -100},
            "stop": None,
            "nested": {"a": [1, 2.5, [True, False, None], {"b": {"c": []}}]},
        },
        "response": {
            "id": "chatcmpl-123",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Bonjour 👋 — ça va ?",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"x": 1}'},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        },
        "response_id": "chatcmpl-123",
        "stream": True,
        "status": ERROR,
        "http_status": 502,
        "error_type": "upstream_error",
        "error_message": "Upstream provider 'openai' failed: boom",
        "finish_reason": "tool_calls",
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "cached_tokens": 3,
        "reasoning_tokens": 2,
        "usage_estimated": True,
        "cost_usd": 0.000123456789,
        "latency_ms": 1234.5678,
        "ttft_ms": 98.765,
        "quality_flags": ["unrendered_template", "truncated"],
    }
    values.update(overrides)
    return Interaction(**values)


def _expected(interaction: Interaction) -> dict[str, Any]:
    expected = {name: getattr(interaction, name) for name in COLUMNS}
    expected["created_at"] = interaction.created_at.astimezone(UTC).isoformat()
    return expected


# -- migrations ---------------------------------------------------------------------------
async def test_migrate_applies_once(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        assert await store.migrate() == MIGRATIONS
        assert await store.migrate() == []
    finally:
        await store.close()
    # A fresh store on the same database (a restart) has nothing left to apply either.
    again = await open_store(database_url)
    try:
        assert await again.migrate() == []
    finally:
        await again.close()
    sql = "SELECT version, name FROM schema_migrations ORDER BY version"
    expected = [(m.version, m.name) for m in load_migrations("sqlite")]
    assert await _query(database_url, sql, sql) == expected


async def test_concurrent_migrations_apply_once(database_url: str) -> None:
    """Replicas starting together: both succeed, exactly one applies the migration."""
    first, second = await open_store(database_url), await open_store(database_url)
    try:
        results = await asyncio.gather(first.migrate(), second.migrate())
    finally:
        await first.close()
        await second.close()
    assert sorted(results) == [[], MIGRATIONS]
    sql = "SELECT count(*) FROM schema_migrations"
    assert await _query(database_url, sql, sql) == [(len(MIGRATIONS),)]


@pytest.mark.parametrize(
    ("table", "columns"), [("interactions", COLUMNS), ("feedback", FEEDBACK_COLUMNS)]
)
async def test_table_columns_match_the_dataclass(
    store: Store, database_url: str, table: str, columns: tuple[str, ...]
) -> None:
    """Migrations and `Interaction` / `Feedback` cannot drift apart."""
    rows = await _query(
        database_url,
        f"SELECT name FROM pragma_table_info('{table}')",
        "SELECT column_name FROM information_schema.columns"
        f" WHERE table_schema = current_schema() AND table_name = '{table}'",
    )
    assert {r[0] for r in rows} == set(columns)
    assert len(rows) == len(columns)


# -- round trip ---------------------------------------------------------------------------
async def test_every_field_round_trips(store: Store) -> None:
    interaction = _full_interaction()
    await store.insert_interactions([interaction])
    assert await store.get_interaction(interaction.id) == _expected(interaction)


async def test_defaults_and_nulls_round_trip(store: Store) -> None:
    interaction = Interaction(
        id=uuid7(), created_at=datetime(2025, 1, 1, tzinfo=UTC), endpoint="embeddings"
    )
    await store.insert_interactions([interaction])
    got = await store.get_interaction(interaction.id)
    assert got == _expected(interaction)
    assert got is not None
    assert got["stream"] is False and got["usage_estimated"] is False
    assert got["tags"] == {} and got["quality_flags"] == []
    assert got["request"] is None and got["cost_usd"] is None


async def test_booleans_come_back_as_bool(store: Store) -> None:
    interaction = _full_interaction(stream=True, usage_estimated=False)
    await store.insert_interactions([interaction])
    got = await store.get_interaction(interaction.id)
    assert got is not None
    assert got["stream"] is True
    assert got["usage_estimated"] is False


async def test_created_at_is_returned_in_utc(store: Store) -> None:
    """A timestamp with another offset is the same instant, and comes back as UTC."""
    paris = timezone(timedelta(hours=2))
    interaction = _full_interaction(created_at=datetime(2025, 6, 1, 14, 30, 0, 1, tzinfo=paris))
    await store.insert_interactions([interaction])
    got = await store.get_interaction(interaction.id)
    assert got is not None
    assert got["created_at"] == "2025-06-01T12:30:00.000001+00:00"
    assert datetime.fromisoformat(got["created_at"]) == interaction.created_at


async def test_unknown_id_is_none(store: Store) -> None:
    assert await store.get_interaction(uuid7()) is None


async def test_nul_characters_do_not_lose_the_batch(store: Store) -> None:
    """Model output can contain U+0000; such a row, and the rows batched with it, are stored."""
    good = _full_interaction()
    nul = _full_interaction(
        id=uuid7(),
        request={"messages": [{"role": "user", "content": "a\x00b"}]},
        error_message="bad\x00byte",
    )
    await store.insert_interactions([good, nul])
    assert await store.get_interaction(good.id) == _expected(good)
    got = await store.get_interaction(nul.id)
    assert got is not None
    content = got["request"]["messages"][0]["content"]
    assert content.replace("\x00", "").replace("\ufffd", "") == "ab"


# -- replays ------------------------------------------------------------------------------
async def test_duplicate_ids_in_one_batch_keep_one_row(store: Store, database_url: str) -> None:
    first = _full_interaction(user="first")
    duplicate = replace(first, user="second")
    other = _full_interaction(id=uuid7())
    await store.insert_interactions([first, duplicate, other])
    assert await _count(database_url, first.id) == 1
    assert await _count(database_url) == 2
    assert await store.get_interaction(first.id) == _expected(first)
    assert await store.get_interaction(other.id) == _expected(other)


async def test_replayed_batch_is_skipped(store: Store, database_url: str) -> None:
    batch = [_full_interaction(id=uuid7()) for _ in range(3)]
    await store.insert_interactions(batch)
    changed = replace(batch[1], user="replayed", http_status=500)
    new = _full_interaction(id=uuid7())
    await store.insert_interactions([batch[0], changed, new])  # must not raise
    await store.insert_interactions(batch)
    assert await _count(database_url) == 4
    for interaction in batch:
        assert await _count(database_url, interaction.id) == 1
        assert await store.get_interaction(interaction.id) == _expected(interaction)
    assert await store.get_interaction(new.id) == _expected(new)


async def test_empty_batch_is_a_no_op(store: Store, database_url: str) -> None:
    await store.insert_interactions([])
    assert await _count(database_url) == 0


async def test_ping(store: Store) -> None:
    assert await store.ping() is None


async def test_closed_store_raises_store_error(database_url: str) -> None:
    """Callers (readiness probe, recorder) only handle StoreError."""
    store = await open_store(database_url)
    await store.migrate()
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
    with pytest.raises(StoreError):
        await store.insert_interactions([_full_interaction()])


# -- engine specifics ---------------------------------------------------------------------
async def test_sqlite_creates_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "flywheel.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        assert await store.migrate() == MIGRATIONS
        interaction = _full_interaction()
        await store.insert_interactions([interaction])
        assert await store.get_interaction(interaction.id) == _expected(interaction)
    finally:
        await store.close()
    assert path.is_file()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id FROM interactions").fetchall() == [(interaction.id,)]
    finally:
        conn.close()


async def test_sqlite_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    """A bad storage.url is reported as `flywheel: ...` by the CLI, not as a traceback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(StoreError, match="not-a-folder"):
        await open_store(f"sqlite:///{blocker}/flywheel.db")


async def test_postgres_unreachable_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        await open_store("postgresql://flywheel@127.0.0.1:1/flywheel")


async def test_postgres_concurrent_migrations_use_the_lock(postgres_url: str) -> None:
    stores = [await open_store(postgres_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(results) == [[], [], [], MIGRATIONS]
        interaction = _full_interaction()
        await stores[0].insert_interactions([interaction])
        assert await stores[3].get_interaction(interaction.id) == _expected(interaction)
    finally:
        for s in stores:
            await s.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [tuple(r) for r in rows] == [
            (m.version, m.name) for m in load_migrations("postgres")
        ]
    finally:
        await conn.close()


def test_sqlite_migrations_split_where_statements_end_not_at_every_semicolon() -> None:
    from gateway.store.sqlite import _statements

    script = (
        "-- a comment; with a semicolon\nCREATE TABLE t (x TEXT DEFAULT ';');\n"
        "CREATE TRIGGER d AFTER DELETE ON t BEGIN\n  DELETE FROM t WHERE x = old.x;\nEND;\n"
        "SELECT 1"
    )
    statements = [s.strip() for s in _statements(script)]
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    conn = sqlite3.connect(":memory:")
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()
