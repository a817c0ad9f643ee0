"""Exports started from the admin API run in a separate process, never on a gateway worker's
event loop: anonymizing and formatting a large selection is CPU work that would stall every
request the worker is serving.

One spawned process per gateway worker, started on first use and reused (spawn, not fork: the
worker has threads and open connections that must not be copied). Each call opens its own store
connection in that process.

One job, not a pool (`--jobs`): the process shares the machine with the gateway serving traffic,
so it takes at most one core, and at a lower priority (`EXPORT_NICENESS`). A large export that
should use every core runs from the CLI or as a scheduled job with `jobs:`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from gateway import collector
from gateway.config import Config


class ExportProcess:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._running: set[asyncio.Future[Any]] = set()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=context, initializer=_yield_to_serving
            )
        return self._pool

    async def call(self, config: Config, action: str, spec: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor(), _in_child, config, action, spec)
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return await future

    def start(self, config: Config, action: str, spec: dict[str, Any]) -> None:
        """Run without waiting; the run row in the store is how its progress is seen."""
        task = asyncio.ensure_future(self.call(config, action, spec))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def close(self) -> None:
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


# How much lower than the gateway's an ad-hoc export's CPU priority is (os.nice): on a busy
# machine the requests being served come first, on an idle one the export still takes a core.
EXPORT_NICENESS = 10


def _yield_to_serving() -> None:
    os.nice(EXPORT_NICENESS)
    collector.settle()


def _in_child(config: Config, action: str, spec: dict[str, Any]) -> Any:
    return asyncio.run(_act(config, action, spec))


async def _act(config: Config, action: str, spec: dict[str, Any]) -> Any:
    from exporters.jobs import run_job, run_recorded
    from exporters.run import run_export
    from gateway.store import open_store

    async with open_store(config.storage.url, pool_size=2) as store:
        if action == "preview":
            return await run_export(store, config.anonymize, spec["request"], None)
        if action == "job":
            return await run_job(store, config, spec["job"], full=spec["all"], run_id=spec["id"])
        out = Path(config.storage.exports_dir)
        return await run_recorded(store, config, spec["request"], out, run_id=spec["id"])
