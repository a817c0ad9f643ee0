"""Retention on SQLite and PostgreSQL: exactly what is older than its days goes, in batches;
run folders and old spool files go with it; the gateway's own task enforces it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.appkeys import STORE
from gateway.config import RetentionConfig
from gateway.ids import uuid7
from gateway.privacy.retention import retention_pass
from gateway.records.feedback import Feedback
from gateway.records.interaction import Interaction
from gateway.spool import DEAD_LETTER_DIR, Spool
from gateway.store import Store
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD, NEW = NOW - timedelta(days=100), NOW - timedelta(days=1)


def _interaction(created_at: datetime) -> Interaction:
    return Interaction(id=uuid7(), created_at=created_at, endpoint="chat/completions")


def _feedback(interaction_id: str, created_at: datetime) -> Feedback:
    return Feedback(id=uuid7(), interaction_id=interaction_id, created_at=created_at, rating=3)


async def _run(store: Store, started: datetime, folder: Path) -> str:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    run_id = uuid7()
    await store.save_export_run(
        {
            "id": run_id,
            "format": "jsonl",
            "status": "succeeded",
            "started_at": started,
            "out_dir": str(folder),
            "files": ["manifest.json"],
        }
    )
    return run_id


async def test_a_pass_deletes_exactly_what_is_older_than_its_days(
    store: Store, tmp_path: Path
) -> None:
    old = [_interaction(OLD + timedelta(seconds=n)) for n in range(23)]
    new = [_interaction(NEW + timedelta(seconds=n)) for n in range(5)]
    await store.insert_interactions(old + new)
    # Feedback: on an old interaction (goes with it), old on a new one (its own days), new.
    await store.insert_feedback(
        [
            _feedback(old[0].id, OLD),
            _feedback(new[0].id, OLD),
            _feedback(new[1].id, NEW),
        ]
    )
    old_run = await _run(store, OLD, tmp_path / "old-run")
    new_run = await _run(store, NEW, tmp_path / "new-run")
    for created_at in (OLD, NEW):
        await store.insert_audit({"id": uuid7(), "created_at": created_at, "action": "x"})
    policy = RetentionConfig(
        interactions=30, feedback=30, export_runs=30, audit_log=30, batch_size=7, pause=0
    )

    deleted = await retention_pass(store, policy, now=NOW)

    assert deleted == {
        "interactions": 23,
        "feedback": 2,
        "export_runs": 1,
        "audit_log": 1,
    }
    for row in old:
        assert await store.get_interaction(row.id) is None
    for row in new:
        assert await store.get_interaction(row.id) is not None
    assert [f["rating"] for f in await store.get_feedback(new[1].id)] == [3]
    assert await store.get_feedback(new[0].id) == []
    assert await store.get_export_run(old_run) is None
    assert await store.get_export_run(new_run) is not None
    assert not (tmp_path / "old-run").exists() and (tmp_path / "new-run").exists()
    assert len(await store.audit_entries("x")) == 1
    assert await retention_pass(store, policy, now=NOW) == {}  # nothing left to do


async def test_nothing_is_deleted_without_a_retention(store: Store) -> None:
    await store.insert_interactions([_interaction(OLD)])
    assert await retention_pass(store, RetentionConfig(), now=NOW) == {}
    assert await store.expire_interactions(NOW, 10) == (1, 0)  # it was there


def test_old_spool_files_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([_interaction(OLD)])
    spool.seal()
    spool.append([_interaction(NEW)])
    spool.seal()
    dead = spool.dead_letter([_interaction(OLD)])
    old_segment = sorted((tmp_path / "spool").glob("*.jsonl"))[0]
    long_ago = time.time() - 100 * 86_400
    for path in (old_segment, dead):
        os.utime(path, (long_ago, long_ago))

    assert spool.expire(30 * 86_400) == 2
    assert not old_segment.exists() and not dead.exists()
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 1
    assert list((tmp_path / "spool" / DEAD_LETTER_DIR).iterdir()) == []


async def test_the_gateway_enforces_retention_in_the_background(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    config = base_config(upstream, database_url, spool_dir=str(tmp_path / "spool"))
    config["retention"] = {"interactions": 30, "interval": 0.1, "batch_size": 2, "pause": 0}
    gateway = await make_gateway(config)
    store = gateway.app[STORE]
    now = datetime.now(UTC)
    stale = [_interaction(now - timedelta(days=31, seconds=n)) for n in range(5)]
    fresh = _interaction(now - timedelta(days=29))
    await store.insert_interactions([*stale, fresh])
    for _ in range(600):  # up to 30 s: the first pass waits for the migrations on a busy machine
        if all([await store.get_interaction(row.id) is None for row in stale]):
            break
        await asyncio.sleep(0.05)
    assert [await store.get_interaction(row.id) for row in stale] == [None] * 5
    assert await store.get_interaction(fresh.id) is not None
    entries = await store.audit_entries("retention.pass")
    assert sum(entry["detail"]["interactions"] for entry in entries) == 5
    assert {entry["actor"] for entry in entries} == {"retention"}
