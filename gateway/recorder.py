"""The recorder: hands interactions from the request path to the store without ever waiting on it.

`record()` is synchronous and O(1): it puts the interaction on a bounded in-memory queue. One
background task takes whatever has queued up (up to `batch_size`) and writes it in one batch, so
under load batches grow by themselves and an idle gateway writes each row at once.

It must never block or raise into a request. When the store fails, the batch is retried with
backoff while new rows wait in the queue; when the queue is full, new rows are dropped and
counted loudly (durable spooling to disk is the next step, see issue 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.errors import StoreError
from gateway.interaction import Interaction
from gateway.store import Store

log = logging.getLogger(__name__)

_RETRY_BACKOFF = (0.1, 0.5, 1.0, 2.0, 5.0)


class Recorder:
    def __init__(self, store: Store, *, queue_size: int = 10_000, batch_size: int = 500):
        self.store = store
        self.batch_size = batch_size
        self._queue: asyncio.Queue[Interaction] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0
        self.write_errors = 0

    def record(self, interaction: Interaction) -> None:
        try:
            self._queue.put_nowait(interaction)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error(
                "recorder queue full (%d rows): dropped interaction %s (%d dropped so far)",
                self._queue.maxsize,
                interaction.id,
                self.dropped,
            )

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flywheel-recorder")

    async def close(self, drain_seconds: float) -> None:
        """Write what is queued, for at most `drain_seconds`, then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), drain_seconds)
        except TimeoutError:
            log.error(
                "recorder: shutdown drain timed out, %d interactions still queued", self.depth
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)
            for _ in batch:
                self._queue.task_done()

    async def _write(self, batch: list[Interaction]) -> None:
        for attempt, delay in enumerate((*_RETRY_BACKOFF, None)):
            try:
                await self.store.insert_interactions(batch)
            except StoreError as exc:
                self.write_errors += 1
                if delay is None:
                    log.error("recorder: gave up on %d interactions: %s", len(batch), exc)
                    self.dropped += len(batch)
                    return
                log.warning("recorder: write failed (attempt %d), retrying: %s", attempt + 1, exc)
                await asyncio.sleep(delay)
            else:
                self.written += len(batch)
                return
