"""The console and the store: the query behind its charts (`usage_over_time`), which both
engines must answer alike, and the SQLite reader that keeps page queries off the recorder's
thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import timedelta
from typing import Any

import pytest

from gateway.appkeys import STORE
from gateway.console.reader import READER
from gateway.errors import StoreError
from gateway.store import Store, open_store
from gateway.store.queries import TimeWindow
from gateway.store.sqlite import SQLiteStore
from tests.conftest import base_config
from tests.feedback_support import T0, seed_review_data

THREE_HOURS = 3 * 3600


async def test_usage_over_time_buckets_the_window(store: Store) -> None:
    # 12 interactions an hour apart from T0: i2 failed, i0..i4 have feedback.
    await seed_review_data(store)
    buckets = await store.usage_over_time(TimeWindow(), THREE_HOURS)
    start = int(T0.timestamp())
    assert [b["bucket"] for b in buckets] == [start + n * THREE_HOURS for n in range(4)]
    assert [b["interactions"] for b in buckets] == [3, 3, 3, 3]
    assert [b["error"] for b in buckets] == [1, 0, 0, 0]
    assert [b["with_feedback"] for b in buckets] == [3, 2, 0, 0]
    assert [b["tokens"] for b in buckets] == [45, 45, 45, 45]
    assert buckets[0]["cost_usd"] == pytest.approx(0.006)
    # Nearest rank over 100, 200, 300 ms: p50 is the 2nd, p95 the 3rd.
    assert buckets[0]["latency_ms"] == {"p50": 200.0, "p95": 300.0}
    assert buckets[3]["latency_ms"] == {"p50": 1100.0, "p95": 1200.0}


async def test_usage_over_time_keeps_to_the_window(store: Store) -> None:
    await seed_review_data(store)
    window = TimeWindow(since=T0 + timedelta(hours=6), until=T0 + timedelta(hours=8))
    [bucket] = await store.usage_over_time(window, 3600 * 24)
    assert bucket["interactions"] == 2  # i6 and i7
    assert bucket["bucket"] == int(T0.timestamp())  # the day's bucket starts at midnight
    assert await store.usage_over_time(TimeWindow(since=T0 + timedelta(days=9)), 3600) == []


async def test_a_busy_console_reader_never_holds_up_the_recorder(
    sqlite_url: str, upstream: Any, make_gateway: Any
) -> None:
    """SQLite runs each store's calls on one thread: the console reads through a store of its
    own, so while its thread is stuck (a slow page query) the recorder still writes."""
    gateway = await make_gateway(base_config(upstream, sqlite_url))
    console_store = gateway.app[READER]
    assert console_store is not gateway.app[STORE]
    release = threading.Event()
    # Occupy the console store's only thread, as a long query would.
    stuck = asyncio.ensure_future(console_store._run(release.wait, 30))
    try:
        raw = await gateway.client().chat.completions.with_raw_response.create(
            model="fake-chat", messages=[{"role": "user", "content": "Still recorded?"}]
        )
        row = await gateway.row(raw.headers["Flywheel-Interaction-Id"])
        assert row["status"] == "success"
        assert not stuck.done()  # the reader was busy all along
    finally:
        release.set()
        await stuck


async def test_on_postgres_the_console_reads_through_the_app_pool(
    postgres_url: str, upstream: Any, make_gateway: Any
) -> None:
    gateway = await make_gateway(base_config(upstream, postgres_url))
    assert gateway.app[READER] is gateway.app[STORE]


async def test_sqlite_reads_a_window_through_the_created_at_index(sqlite_url: str) -> None:
    """Grouped by model and variant, SQLite preferred walking the (model, variant, created_at)
    index over every row to skip a sort; the overview's queries must read the window's rows
    through the created_at index instead, whatever the planner would like."""
    store = await open_store(sqlite_url)
    try:
        await store.migrate()
        await seed_review_data(store)
        asked: list[tuple[str, list[Any]]] = []
        fetch = store._fetch

        async def spy(sql: str, params: Any = (), *rest: Any) -> Any:
            asked.append((sql, [v.isoformat() if hasattr(v, "isoformat") else v for v in params]))
            return await fetch(sql, params, *rest)

        store._fetch = spy  # type: ignore[method-assign]
        window = TimeWindow(since=T0 + timedelta(hours=2))
        await store.usage_by_variant(window)
        await store.feedback_by_variant(window)
        conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
        try:
            for sql, params in asked:
                plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                # Rows are read at the window's edges only (the rest from the rollups).
                if "FROM interactions i" in sql:
                    assert "interactions_created_at" in plan, plan
                assert "interactions_model_variant" not in plan, plan
            assert any("FROM interactions i" in sql for sql, _ in asked)
        finally:
            conn.close()
    finally:
        await store.close()


async def test_closing_the_reader_waits_for_a_statement_still_running(tmp_path: Any) -> None:
    """The console's reader runs calls on two threads; at shutdown a cancelled task (the search
    indexer) leaves its statement running on one. Closing must wait for it: a connection
    closed under a running statement crashed the process."""
    store = await SQLiteStore.open(f"sqlite:///{tmp_path}/reader.db", threads=2)
    await store.migrate()
    count = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000000)"
        " SELECT count(*) AS c FROM n"
    )
    slow = asyncio.ensure_future(store._fetch(count))
    await store.ping()  # the other thread has its connection too
    await asyncio.sleep(0.05)
    slow.cancel()  # the task ends; its statement does not
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
