"""Several workers: prometheus-client's multiprocess mode.

Before forking, the supervisor enters `multiprocess_metrics()`, which points
PROMETHEUS_MULTIPROC_DIR at a fresh folder; every worker's values then live in per-process mmap
files there, and a scrape, whichever worker answers it, adds up all of them with
`MultiProcessCollector`. A scrape reaches one worker only, so in that mode each worker also copies
its recorder and in-flight counts into its files once a second (`sync_forever`).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, multiprocess, values

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds between copies of the recorder's and the cap's counts into the shared files.
SYNC_INTERVAL = 1.0


def shared_folder() -> str | None:
    """The folder every worker's values live in, when this process is one of several workers."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder and getattr(values.ValueClass, "_multiprocess", False):
        return folder
    return None


def summed(folder: str) -> CollectorRegistry:
    """A registry whose scrape adds up every worker's files, not only this worker's share."""
    registry = CollectorRegistry(auto_describe=True)
    multiprocess.MultiProcessCollector(registry, folder)
    return registry


async def sync_forever(sync: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(SYNC_INTERVAL)
        sync()


@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[str]:
    """Multiprocess mode for the workers about to be forked, in a fresh folder removed at exit.

    An operator's own PROMETHEUS_MULTIPROC_DIR is used instead, emptied first: values left by an
    earlier run would otherwise be added to this one's.
    """
    preset = os.environ.get(MULTIPROC_ENV)
    if preset:
        os.makedirs(preset, exist_ok=True)
        for path in glob.glob(os.path.join(preset, "*.db")):
            os.remove(path)
        folder = preset
    else:
        folder = tempfile.mkdtemp(prefix="flywheel-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    # prometheus-client picks its value class once, when first imported, from the environment;
    # the gateway imported it before the config said how many workers to run, so pick again
    # now, before any metric exists (metrics are made in the workers, after the fork).
    values.ValueClass = values.get_value_class()
    log.info("metrics: the workers' values are kept in %s", folder)
    try:
        yield folder
    finally:
        if not preset:
            shutil.rmtree(folder, ignore_errors=True)


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (in flight, queue depth); its counters stay in the sums."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        multiprocess.mark_process_dead(pid, folder)
