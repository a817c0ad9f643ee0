"""The recorder on a real SQLite store: drains on close, batches, retries, and never blocks."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import recorder as recorder_module
from gateway.errors import StoreError
from gateway.ids import uuid7
from gateway.interaction import Interaction
from gateway.recorder import Recorder
from gateway.store import Store, open_store


class CountingStore:
    """A real store that remembers the size of every batch it was asked to write."""

    def __init__(self, inner: Store):
        self.inner = inner
        self.engine = inner.engine
        self.batches: list[int] = []

    async def migrate(self) -> list[str]:
        return await self.inner.migrate()

    async def insert_interactions(self, rows: Sequence[Interaction]) -> None:
        self.batches.append(len(rows))
        await self.inner.insert_interactions(rows)

    async def get_interaction(self, interaction_id: str) -> dict[str, Any] | None:
        return await self.inner.get_interaction(interaction_id)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


class FlakyStore(CountingStore):
    """A real store whose first `failures` writes fail as a database outage would."""

    def __init__(self, inner: Store, failures: int):
        super().__init__(inner)
        self.failures = failures
        self.calls = 0

    async def insert_interactions(self, rows: Sequence[Interaction]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError(f"database unavailable (call {self.calls})")
        await super().insert_interactions(rows)


def _interaction(n: int = 0) -> Interaction:
    return Interaction(
        id=str(uuid7()),
        created_at=datetime.now(UTC),
        endpoint="chat/completions",
        requested_model="demo",
        request={"messages": [{"role": "user", "content": f"message {n}"}]},
        tags={"n": str(n)},
    )


def _sqlite_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM interactions")]
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "recorder.db"


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{db_path}")
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same number of attempts as in production, without waiting seconds between them."""
    monkeypatch.setattr(recorder_module, "_RETRY_BACKOFF", (0.01,) * 5)


async def test_close_drains_every_queued_row(sqlite_store: Store, db_path: Path) -> None:
    recorder = Recorder(sqlite_store, queue_size=2_000, batch_size=100)
    recorder.start()
    interactions = [_interaction(n) for n in range(1_000)]
    for interaction in interactions:
        recorder.record(interaction)
    await recorder.close(drain_seconds=10)

    assert sorted(_sqlite_ids(db_path)) == sorted(i.id for i in interactions)
    assert (recorder.written, recorder.dropped, recorder.write_errors) == (1_000, 0, 0)
    assert recorder.depth == 0


async def test_rows_recorded_while_running_are_written(sqlite_store: Store, db_path: Path) -> None:
    recorder = Recorder(sqlite_store, batch_size=10)
    recorder.start()
    first = _interaction(1)
    recorder.record(first)
    for _ in range(500):  # an idle gateway writes a row at once, not at shutdown
        if _sqlite_ids(db_path):
            break
        await asyncio.sleep(0.01)
    assert _sqlite_ids(db_path) == [first.id]
    await recorder.close(drain_seconds=10)


async def test_batches_are_bounded_by_batch_size(sqlite_store: Store, db_path: Path) -> None:
    counting = CountingStore(sqlite_store)
    recorder = Recorder(counting, queue_size=1_000, batch_size=64)
    for n in range(1_000):
        recorder.record(_interaction(n))
    recorder.start()  # everything already queued: batches fill up to the bound
    await recorder.close(drain_seconds=10)

    assert sum(counting.batches) == 1_000
    assert max(counting.batches) == 64
    assert all(0 < size <= 64 for size in counting.batches)
    assert len(counting.batches) == 16  # ceil(1000 / 64)
    assert len(_sqlite_ids(db_path)) == 1_000


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize("failures", [1, 3, 5])
async def test_failed_writes_are_retried(sqlite_store: Store, db_path: Path, failures: int) -> None:
    flaky = FlakyStore(sqlite_store, failures=failures)
    recorder = Recorder(flaky, batch_size=50)
    interactions = [_interaction(n) for n in range(20)]
    for interaction in interactions:
        recorder.record(interaction)
    recorder.start()
    await recorder.close(drain_seconds=10)

    assert sorted(_sqlite_ids(db_path)) == sorted(i.id for i in interactions)
    assert recorder.write_errors == failures
    assert flaky.calls == failures + 1
    assert (recorder.written, recorder.dropped) == (20, 0)


@pytest.mark.usefixtures("fast_retries")
async def test_a_batch_is_given_up_after_the_last_retry(sqlite_store: Store, db_path: Path) -> None:
    """Six failed attempts: the batch is counted as dropped, and the writer keeps going."""
    flaky = FlakyStore(sqlite_store, failures=6)
    recorder = Recorder(flaky, batch_size=50)
    lost = [_interaction(n) for n in range(3)]
    for interaction in lost:
        recorder.record(interaction)
    recorder.start()
    for _ in range(500):
        if recorder.dropped:
            break
        await asyncio.sleep(0.01)
    later = _interaction(99)
    recorder.record(later)
    await recorder.close(drain_seconds=10)

    assert recorder.write_errors == 6
    assert recorder.dropped == 3
    assert recorder.written == 1
    assert _sqlite_ids(db_path) == [later.id]


async def test_full_queue_drops_without_blocking(sqlite_store: Store, db_path: Path) -> None:
    recorder = Recorder(sqlite_store, queue_size=5, batch_size=10)  # writer never started
    interactions = [_interaction(n) for n in range(12)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for interaction in interactions:
        assert recorder.record(interaction) is None  # returns at once, never raises
    assert loop.time() - started < 1.0

    assert recorder.depth == 5
    assert recorder.dropped == 7
    assert recorder.written == 0
    await recorder.close(drain_seconds=1)  # not started: returns at once
    assert _sqlite_ids(db_path) == []

    # The first five were kept: starting the writer stores exactly those.
    recorder.start()
    await recorder.close(drain_seconds=10)
    assert sorted(_sqlite_ids(db_path)) == sorted(i.id for i in interactions[:5])
    assert recorder.dropped == 7
