"""The scheduler loop with a controlled clock: a job fires at its time in its timezone, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from exporters.scheduler import run_scheduler
from gateway.config import parse_config
from gateway.store.base import Store


class Clock:
    """Starts just before 02:00 in Melbourne (15:00 UTC in summer time) and moves by steps."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 9, 14, 59, 59, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=0.5)
        return self.now


async def test_a_nightly_job_runs_once_at_its_local_time(
    store: Store, seeded: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    config = parse_config(
        {
            "storage": {"url": database_url},
            "exports": {
                "nightly": {
                    "format": "openai",
                    "out": str(tmp_path / "nightly"),
                    "schedule": "0 2 * * *",
                    "timezone": "Australia/Melbourne",
                }
            },
        }
    )
    stop = asyncio.Event()
    clock = Clock()
    task = asyncio.create_task(run_scheduler(config, stop, clock=clock))
    for _ in range(200):
        if await store.export_runs(job="nightly"):
            break
        await asyncio.sleep(0.02)
    for _ in range(20):  # give a second firing every chance to (wrongly) happen
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 10)
    (run,) = await store.export_runs(job="nightly")
    assert run["status"] == "succeeded" and run["rows"] == 8
    assert clock.now < datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # the next night never came
