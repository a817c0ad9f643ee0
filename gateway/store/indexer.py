"""Keeps the text-search index (search.py) up to date in the background, off the request path.

Every few seconds a turn indexes what was written since the last one, in batches, pausing
between batches three times as long as the batch took: on SQLite each batch holds the write
lock for tens of milliseconds, so the recorder's next insert never waits long, and the
indexer never takes more than a quarter of a core from the proxy. A first run over a large
store (1M rows: 157 s of indexing on SQLite, 393 s on PostgreSQL) therefore takes ten to
twenty-five minutes, and searches stay complete meanwhile (rows not indexed yet are read
directly, only slower).

It yields to traffic, in two ways:
- While the process has been using more than half a core for anything else (the proxy under
  load), a turn is put off, one batch at most every `MAX_DEFERRAL` seconds, and the rest waits
  for a quieter minute. Indexing costs the worker's CPU on SQLite (~40 us for a small row, more
  for long prompts), which under load would come straight out of the proxy's throughput.
- While the proxy has requests in flight at all, even paced streams that use little CPU, the
  index waits until it is `TRAFFIC_BACKLOG` rows behind, then keeps it there. A PostgreSQL batch
  is the server's CPU (~0.4 ms a row), and a server on the proxy's core delayed every stream's
  chunks behind it (issue 20: +gap p99 2.2-2.6 ms with indexing during 100 paced streams,
  0.5-0.9 ms without). The bound keeps a search fast meanwhile: it reads those rows directly.
A search is complete either way, reading the rows not indexed yet.

One process indexes at a time (the store's job lock); the others skip their turn. A failing
turn is logged and the next one tries again. It must never run on the recorder's SQLite
connection: it works through the store it is given (the console's reader on SQLite).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from gateway.errors import StoreError
from gateway.store.base import SearchIndex

log = logging.getLogger(__name__)

JOB = "search-index"
# Seconds of pause per second of indexing while catching up.
BUSY_TO_IDLE = 3.0
# Share of a core the process may use for everything else before indexing waits.
BUSY_CORE_SHARE = 0.5
# Under sustained load, still one batch this often: the index keeps moving, however slowly.
MAX_DEFERRAL = 30.0
# Rows the index may fall behind while the proxy has traffic. A search reads them directly:
# ~4 ms more on SQLite and ~19 ms on PostgreSQL (0.4 and 1.9 s per million rows read, README's
# *Text search*). At 100 requests a second that is 100 s of traffic.
TRAFFIC_BACKLOG = 10_000


class ProcessLoad:
    """How busy this process has been since the last reading, as a share of one core, not
    counting the time the indexer itself spent here: SQLite's batches run on a thread of this
    process. PostgreSQL's are the server's CPU, and taking their time off made a gateway under
    full load look idle (0.6 of a core less one batch in four: 0.35), so it indexed its whole
    backlog at once, on the core it shared with the database (issue 20)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.clock, self.cpu = clock, cpu
        self._at, self._used, self._own = clock(), cpu(), 0.0

    def spent_indexing(self, seconds: float) -> None:
        self._own += seconds

    def share(self) -> float:
        at, used = self.clock(), self.cpu()
        span, others = at - self._at, used - self._used - self._own
        self._at, self._used, self._own = at, used, 0.0
        return max(0.0, others) / span if span > 0 else 0.0


class Requests(Protocol):
    """The proxy's request counts (gateway/overload.py)."""

    in_flight: int
    admitted: int


class Traffic:
    """Whether the proxy has had a request in flight since the last look."""

    def __init__(self, requests: Requests) -> None:
        self.requests = requests
        self._admitted = requests.admitted

    def seen(self) -> bool:
        admitted, before = self.requests.admitted, self._admitted
        self._admitted = admitted
        return self.requests.in_flight > 0 or admitted != before


class SearchIndexer:
    def __init__(
        self,
        store: SearchIndex,
        *,
        interval: float = 2.0,
        batch: int = 500,
        pause: float = 0.02,
        ready: Callable[[], bool] = lambda: True,
        load: ProcessLoad | None = None,
        traffic: Callable[[], bool] = lambda: False,  # Traffic(...).seen in a gateway
    ) -> None:
        self.store = store
        self.ready = ready  # False while the schema is not in place yet (database down)
        self.interval = interval
        self.batch = batch
        self.pause = pause
        self.load = load or ProcessLoad()
        self.traffic = traffic
        self._task: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        return self.load.share() > BUSY_CORE_SHARE

    async def can_wait(self) -> bool:
        """The proxy has traffic and the index is not `TRAFFIC_BACKLOG` rows behind yet."""
        return self.traffic() and await self.store.search_backlog(TRAFFIC_BACKLOG) < TRAFFIC_BACKLOG

    async def run_once(self, *, yielding: bool = False) -> int:
        """Index until nothing waits (or another process holds the job); rows indexed.
        `yielding`: stop early, after a batch, once the process is busy, or has traffic and
        the backlog is back under its bound."""
        total = 0
        async with self.store.job_lock(JOB) as mine:
            if not mine:
                return 0
            loop = asyncio.get_running_loop()
            while True:
                started = loop.time()
                taken = await self.store.index_search(self.batch)
                if self.store.indexes_in_process:
                    self.load.spent_indexing(loop.time() - started)
                total += taken
                if taken < self.batch:
                    return total
                # At most a quarter of a core, however far behind: the proxy on the same
                # machine comes first (a search meanwhile reads the unindexed rows directly).
                await asyncio.sleep(max(self.pause, (loop.time() - started) * BUSY_TO_IDLE))
                if yielding and (self.busy() or await self.can_wait()):
                    return total

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_turn = float("-inf")  # the first turn is never put off
        while True:
            try:
                if self.ready() and not await self._put_off(loop.time() - last_turn):
                    last_turn = loop.time()
                    indexed = await self.run_once(yielding=True)
                    if indexed:
                        log.debug("search index: %d rows indexed", indexed)
            except StoreError as exc:
                log.warning("search index: %s; trying again in %.0f s", exc, self.interval)
            except Exception:
                # Whatever a driver raises mid-outage (asyncpg's InternalClientError was one),
                # the index must not stop being kept for good: logged, tried again next turn.
                log.exception(
                    "search index: the turn failed; trying again in %.0f s", self.interval
                )
            await asyncio.sleep(self.interval)

    async def _put_off(self, since_last_turn: float) -> bool:
        """Whether this turn waits: busy, for MAX_DEFERRAL at most; with traffic, while the
        backlog is under its bound."""
        if self.busy():
            return since_last_turn < MAX_DEFERRAL
        return await self.can_wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="flywheel-search-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # cancelled mid-statement, a driver may raise its own error
                log.exception("search index: stopped with an error")
            self._task = None
