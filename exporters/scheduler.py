"""Scheduled export jobs, run by `flywheel serve` in a process of their own.

The supervisor starts this process next to the gateway workers when any job has a `schedule`,
so exporting never competes with requests on a worker's event loop. It sleeps until the next
firing of any job, runs the due ones one after another, and goes back to sleep. Every replica
runs one; `run_job(..., scheduled_for=firing)` lets exactly one of them run each firing (the
others find the lock taken, or the run already recorded). A firing missed while the process
was down is not caught up: the next one exports everything that changed meanwhile anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime

from exporters.jobs import SUCCEEDED, run_job
from exporters.schedule import Schedule
from gateway.config import Config
from gateway.metrics import Metrics
from gateway.store import open_store

log = logging.getLogger("exporters.scheduler")


def schedules(config: Config) -> dict[str, Schedule]:
    return {
        name: Schedule.parse(job.schedule, job.timezone)
        for name, job in config.exports.items()
        if job.schedule
    }


async def run_scheduler(
    config: Config,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    metrics: Metrics | None = None,
) -> None:
    planned = schedules(config)
    async with open_store(config.storage.url, pool_size=2) as store:
        firings = {name: schedule.next_after(clock()) for name, schedule in planned.items()}
        while not stop.is_set() and firings:
            name = min(firings, key=firings.__getitem__)
            wait = (firings[name] - clock()).total_seconds()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(wait, 60.0))
                continue  # re-check: the clock may have jumped, or we were asked to stop
            try:
                run = await run_job(store, config, name, scheduled_for=firings[name])
            except Exception:
                log.exception("scheduled export %s failed to start", name)
                run = None
            if run is not None:
                log.info("export job %s: %s, %s rows", name, run["status"], run.get("rows"))
                if metrics is not None and run["status"] == SUCCEEDED:
                    metrics.observe_export(name, run["rows"] or 0)
            firings[name] = planned[name].next_after(max(clock(), firings[name]))


def scheduler_main(config: Config) -> None:
    """The scheduler process's entry point (forked by the supervisor)."""
    from prometheus_client import CollectorRegistry

    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await run_scheduler(config, stop, metrics=Metrics(config, CollectorRegistry()))

    asyncio.run(main())
