"""The recorder on a real SQLite store: drains on close, batches, spools through outages and
replays exactly once, and never blocks the caller."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import StoreError
from gateway.ids import uuid7
from gateway.recorder import Recorder
from gateway.records.interaction import Interaction
from gateway.spool import Spool
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


class OutageStore(CountingStore):
    """A real store behind a switch: while `down`, writes and pings fail as in an outage."""

    def __init__(self, inner: Store, down: bool = True):
        super().__init__(inner)
        self.down = down
        self.failed_writes = 0

    async def insert_interactions(self, rows: Sequence[Interaction]) -> None:
        if self.down:
            self.failed_writes += 1
            raise StoreError("database unavailable")
        await super().insert_interactions(rows)

    async def ping(self) -> None:
        if self.down:
            raise StoreError("database unavailable")
        await super().ping()


def _interaction(n: int = 0) -> Interaction:
    return Interaction(
        id=uuid7(),
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
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def _recorder(store: Store, spool_dir: Path, **options: Any) -> Recorder:
    return Recorder(store, Spool(spool_dir), probe_interval=0.02, **options)


async def _wait_for_rows(db_path: Path, count: int) -> list[str]:
    for _ in range(1_000):
        ids = _sqlite_ids(db_path)
        if len(ids) >= count:
            return ids
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} rows, found {len(_sqlite_ids(db_path))}")


def _spooled_lines(spool_dir: Path) -> int:
    return sum(len(path.read_bytes().splitlines()) for path in spool_dir.glob("*.jsonl"))


async def test_close_drains_every_queued_row(
    sqlite_store: Store, db_path: Path, spool_dir: Path
) -> None:
    recorder = _recorder(sqlite_store, spool_dir, queue_size=2_000, batch_size=100)
    recorder.start()
    interactions = [_interaction(n) for n in range(1_000)]
    for interaction in interactions:
        recorder.record(interaction)
    await recorder.close(drain_seconds=10)

    assert sorted(_sqlite_ids(db_path)) == sorted(i.id for i in interactions)
    assert (recorder.written, recorder.spooled, recorder.write_errors) == (1_000, 0, 0)
    assert recorder.depth == 0
    assert _spooled_lines(spool_dir) == 0


async def test_rows_recorded_while_running_are_written_at_once(
    sqlite_store: Store, db_path: Path, spool_dir: Path
) -> None:
    recorder = _recorder(sqlite_store, spool_dir, batch_size=10)
    recorder.start()
    first = _interaction(1)
    recorder.record(first)
    assert await _wait_for_rows(db_path, 1) == [first.id]
    await recorder.close(drain_seconds=10)


async def test_batches_are_bounded_by_batch_size(
    sqlite_store: Store, db_path: Path, spool_dir: Path
) -> None:
    counting = CountingStore(sqlite_store)
    recorder = _recorder(counting, spool_dir, queue_size=1_000, batch_size=64)
    for n in range(1_000):
        recorder.record(_interaction(n))
    recorder.start()  # everything already queued: batches fill up to the bound
    await recorder.close(drain_seconds=10)

    assert sum(counting.batches) == 1_000
    assert max(counting.batches) == 64
    assert len(counting.batches) == 16  # ceil(1000 / 64)
    assert len(_sqlite_ids(db_path)) == 1_000


async def test_outage_spools_then_replays_exactly_once(
    sqlite_store: Store, db_path: Path, spool_dir: Path
) -> None:
    store = OutageStore(sqlite_store, down=False)
    recorder = _recorder(store, spool_dir, batch_size=7)
    recorder.start()
    before = [_interaction(n) for n in range(5)]
    for interaction in before:
        recorder.record(interaction)
    await _wait_for_rows(db_path, 5)

    store.down = True
    during = [_interaction(n) for n in range(100)]
    for interaction in during:
        recorder.record(interaction)
        await asyncio.sleep(0)  # requests keep coming while the database is down
    for _ in range(1_000):
        if recorder.spooled == len(during):
            break
        await asyncio.sleep(0.01)
    assert recorder.spooled == len(during)
    assert _spooled_lines(spool_dir) == len(during)
    assert len(_sqlite_ids(db_path)) == 5

    store.down = False
    ids = await _wait_for_rows(db_path, 105)
    # The last row is stored a moment before its segment is deleted; closing in between would
    # cancel the replay there (safe: a restart replays it again, skipping stored ids).
    for _ in range(1_000):
        if not recorder.spooling:
            break
        await asyncio.sleep(0.01)
    await recorder.close(drain_seconds=10)
    assert sorted(ids) == sorted(i.id for i in before + during)
    assert len(_sqlite_ids(db_path)) == 105  # exactly once
    assert recorder.replayed == len(during)
    assert list(spool_dir.glob("*.jsonl")) == []  # replayed segments are deleted


async def test_full_queue_spills_to_the_spool_without_blocking(
    sqlite_store: Store, db_path: Path, spool_dir: Path
) -> None:
    recorder = _recorder(sqlite_store, spool_dir, queue_size=5, batch_size=10)  # not started
    interactions = [_interaction(n) for n in range(12)]
    for interaction in interactions:
        assert recorder.record(interaction) is None  # returns at once, never raises
    assert (recorder.depth, recorder.spooled) == (5, 7)
    assert _spooled_lines(spool_dir) == 7

    recorder.start()
    ids = await _wait_for_rows(db_path, 12)
    await recorder.close(drain_seconds=10)
    assert sorted(ids) == sorted(i.id for i in interactions)


async def test_shutdown_during_an_outage_spools_and_a_restart_replays(
    sqlite_store: Store, db_path: Path, spool_dir: Path
) -> None:
    """The spool outlives the process: a new recorder on the same folder stores its rows."""
    down = OutageStore(sqlite_store, down=True)
    first = _recorder(down, spool_dir, batch_size=10)
    first.start()
    interactions = [_interaction(n) for n in range(30)]
    for interaction in interactions:
        first.record(interaction)
    await first.close(drain_seconds=0.5)
    assert _sqlite_ids(db_path) == []
    assert _spooled_lines(spool_dir) == 30

    second = _recorder(sqlite_store, spool_dir)
    assert second.spooling  # it found rows to replay before anything new came in
    second.start()
    ids = await _wait_for_rows(db_path, 30)
    await second.close(drain_seconds=10)
    assert sorted(ids) == sorted(i.id for i in interactions)


async def test_a_torn_last_line_is_skipped_and_the_rest_replayed(
    sqlite_store: Store, db_path: Path, spool_dir: Path
) -> None:
    """`kill -9` mid-write leaves half a line: every whole line before it is kept."""
    spool = Spool(spool_dir)
    whole = [_interaction(n) for n in range(3)]
    spool.append(whole)
    spool.seal()
    segment = next(spool_dir.glob("*.jsonl"))
    with segment.open("ab") as handle:
        handle.write(b'{"id": "torn')

    recorder = _recorder(sqlite_store, spool_dir)
    recorder.start()
    ids = await _wait_for_rows(db_path, 3)
    await recorder.close(drain_seconds=10)
    assert sorted(ids) == sorted(i.id for i in whole)
