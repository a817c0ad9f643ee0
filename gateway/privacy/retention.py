"""Retention (`retention:` in config.yaml): records older than their number of days are deleted.

A pass deletes, oldest first and `batch_size` rows per transaction with `pause` seconds between
transactions: interactions (with the feedback on them), feedback, export runs (the row and its
folder of files) and audit entries. Each worker runs a pass every `interval` seconds, under the
store's job lock, so across workers and replicas one pass runs at a time; the deletes are short
transactions that never hold the recorder up for more than one batch (SQLite has one writer;
PostgreSQL deletes old rows without touching the ones being inserted). Each worker also removes
spool files older than the interactions' retention from its own host's spool folder.

Why not time partitions in PostgreSQL: replays rely on `ON CONFLICT (id)`, and a partitioned
table can only have a unique key that includes the partition column; batched deletes on the
`created_at` index measured fast enough (see the README's Privacy section) to keep one table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from gateway.config import RetentionConfig
from gateway.errors import StoreError
from gateway.spool import Spool
from gateway.store.base import PrivacyStore

log = logging.getLogger(__name__)
LOCK = "flywheel-retention"
DAY = 86_400.0


async def retention_pass(
    store: PrivacyStore, policy: RetentionConfig, now: datetime | None = None
) -> Counter[str]:
    """One pass over the store; what was deleted, by kind."""
    now = now or datetime.now(UTC)
    deleted: Counter[str] = Counter()
    limit = policy.batch_size

    async def until_done(
        kind: str, days: float | None, step: Callable[[datetime], Awaitable[int]]
    ) -> None:
        if days is None:
            return
        before = now - timedelta(days=days)
        while (count := await step(before)) > 0:
            deleted[kind] += count
            if count < limit:
                return
            await asyncio.sleep(policy.pause)  # the recorder's writes go in between

    async def interactions(before: datetime) -> int:
        gone, feedback = await store.expire_interactions(before, limit)
        deleted["feedback"] += feedback
        return gone

    async def runs(before: datetime) -> int:
        expired = await store.expire_export_runs(before, limit)
        for run in expired:
            if run["out_dir"]:
                await asyncio.to_thread(_remove_run_folder, Path(run["out_dir"]))
        return len(expired)

    await until_done("interactions", policy.interactions, interactions)
    await until_done("feedback", policy.feedback, lambda b: store.expire_feedback(b, limit))
    await until_done("export_runs", policy.export_runs, runs)
    await until_done("audit_log", policy.audit_log, lambda b: store.expire_audit(b, limit))
    return +deleted  # without the kinds that had nothing to delete


def _remove_run_folder(folder: Path) -> None:
    # Only a run's own folder (it holds the run's manifest), never whatever a row names.
    if (folder / "manifest.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)


async def run_retention(store: PrivacyStore, policy: RetentionConfig, spool: Spool | None) -> None:
    """Pass after pass, every `policy.interval` seconds, until cancelled."""
    from gateway.privacy.audit import record_action

    while True:
        if spool is not None and policy.interactions is not None:
            await asyncio.to_thread(spool.expire, policy.interactions * DAY)
        try:
            async with store.job_lock(LOCK) as acquired:
                deleted = await retention_pass(store, policy) if acquired else Counter()
            if deleted:
                log.info("retention: deleted %s", dict(deleted))
                await record_action(store, "retention", "retention.pass", detail=dict(deleted))
        except StoreError as exc:
            log.warning("retention: pass cut short (next in %.0f s): %s", policy.interval, exc)
        await asyncio.sleep(policy.interval)


async def retention_context(app: web.Application) -> AsyncIterator[None]:
    """The retention task of one worker, if `retention` asks for anything."""
    from gateway.appkeys import CONFIG, RECORDER, STORE

    policy = app[CONFIG].retention
    if all(
        days is None
        for days in (policy.interactions, policy.feedback, policy.export_runs, policy.audit_log)
    ):
        yield
        return
    task = asyncio.create_task(
        run_retention(app[STORE], policy, app[RECORDER].spool), name="flywheel-retention"
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
