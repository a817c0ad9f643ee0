"""The recorder: hands interactions from the request path to the store, losing none of them.

`record()` is synchronous and O(1) and never blocks: it puts the interaction on a bounded
in-memory queue. One background task takes whatever has queued up (up to `batch_size`) and writes
it in one batch, so under load batches grow by themselves and an idle gateway writes each row at
once.

When the store fails or is slower than `capture.write_timeout`, the batch goes to the local spool
(append-only, fsync per batch) and the recorder keeps spooling until the store answers again; it
then replays the spool in order (the store ignores ids it already has, so a replay is
exactly-once) before writing directly again. When the queue is full, `record()` appends the row to
the spool itself. Memory stays bounded by `queue_size` whatever the database does.

A row the store refuses while it is up (text it cannot encode, a number out of range, JSON too
deep) cannot take others with it: the batch is repaired (gateway/storable.py) and written again,
then halved until each refused row stands alone, and that row goes to the spool's dead-letter
folder (counted and logged; replayable once the cause is fixed) while the rest are written.
The writer task is supervised: if it fails anyway, the rows in hand are spooled and it restarts.

Privacy (gateway/privacy/): with `capture.redact`, each batch is anonymized in a process of its
own as it leaves the queue, before anything is written or spooled; rows that must reach disk before
that (a full queue, shutdown, a failed writer) are redacted right there, so raw personal data
never touches disk. Rows of people forgotten meanwhile are dropped, not written (the forget
list, reloaded now and then). Without `capture.redact` and forgets, none of this costs a thing.

What `kill -9` can lose: only rows still in the in-memory queue, i.e. those answered during the
last `flush_interval` and while the current batch was being written: at most
`flush_interval + write_timeout` seconds' worth, and never more than `queue_size` rows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from gateway.errors import RowsRejected, StoreError
from gateway.privacy.capture import CaptureRedactor
from gateway.privacy.forgotten import ForgottenSubjects
from gateway.records.interaction import Interaction
from gateway.spool import Segment, Spool
from gateway.storable import make_storable
from gateway.store import InteractionSink

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        store: InteractionSink,
        spool: Spool,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        write_timeout: float = 5.0,
        flush_interval: float = 0.0,
        probe_interval: float = 1.0,
        stall_timeout: float = 30.0,
        redactor: CaptureRedactor | None = None,
        forgotten: ForgottenSubjects | None = None,
    ):
        self.store = store
        self.redactor = redactor
        self.forgotten = forgotten
        self.spool = spool
        self.batch_size = batch_size
        self.write_timeout = write_timeout
        self.flush_interval = flush_interval
        self.probe_interval = probe_interval
        self.stall_timeout = stall_timeout
        self._queue: asyncio.Queue[Interaction] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[Interaction] = []
        # Start by spooling when an earlier run (or a dead worker) left rows to replay.
        self.spooling = spool.pending()
        self._next_probe = 0.0
        self.written = 0
        self.spooled = 0
        self.replayed = 0
        self.write_errors = 0
        self.dead_lettered = 0
        self.writer_restarts = 0
        self.replay_failures = 0
        self._progress_at = time.monotonic()  # last time a row queued up empty or a batch left

    # -- request path ------------------------------------------------------------------------
    def record(self, interaction: Interaction) -> None:
        if not self._queue.qsize():
            self._progress_at = time.monotonic()  # the stall clock starts with the first waiter
        try:
            self._queue.put_nowait(interaction)
        except asyncio.QueueFull:
            # Straight to disk (one buffered write; fsynced with the next batch): never block
            # the request, never drop the row, never grow memory.
            try:
                # Overload only: the row must reach disk now, so it is redacted now (after
                # the client has its answer, but on the event loop).
                self.spool.write(self._redacted([interaction]))
            except OSError:
                log.exception("recorder: queue full and spool unwritable: lost %s", interaction.id)
                return
            self.spooled += 1
            self.spooling = True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="flywheel-recorder")

    def problem(self) -> str | None:
        """Why the recorder cannot be trusted with new rows right now, or None (for /readyz)."""
        if self._task is None or self._task.done():
            return "the recorder's writer is not running"
        stalled = time.monotonic() - self._progress_at
        if self.depth and stalled > self.stall_timeout:
            return f"the recorder queue ({self.depth} rows) has not moved for {stalled:.0f} s"
        return None

    async def close(self, drain_seconds: float) -> None:
        """Write what is queued for at most `drain_seconds`; spool whatever is left."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), drain_seconds)
        except TimeoutError:
            log.warning("recorder: drain timed out, spooling %d interactions", self.depth)
        task, self._task = self._task, None
        while not task.done():
            # Again if need be: Python 3.11's wait_for swallows a cancel that arrives as its
            # awaitable completes (a batch taken at that instant), and the writer would go on.
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        # A batch cut off mid-write may or may not be stored: spooling it again is safe.
        leftover = self._in_flight + [self._queue.get_nowait() for _ in range(self.depth)]
        leftover = self._redacted(leftover)  # those not yet redacted; nothing else runs now
        if leftover:
            self.spool.append(leftover)  # blocking is fine now: nothing else is running
            self.spooled += len(leftover)
            log.info("recorder: %d interactions spooled at shutdown", len(leftover))
        self.spool.close()
        if self.redactor is not None:
            await self.redactor.close()

    # -- the writer task ---------------------------------------------------------------------
    async def _supervise(self) -> None:
        """Run the writer; should it fail anyway, keep its rows and start it again."""
        while True:
            try:
                await self._run()
            except Exception:
                self.writer_restarts += 1
                log.exception("recorder: the writer failed; restarting it")
                rows, self._in_flight = self._in_flight, []
                taken, rows = len(rows), self._redacted(rows)
                try:
                    await self._spool(rows)
                except Exception:
                    log.exception("recorder: could not spool %d rows; dead-lettering", len(rows))
                    await self._dead_letter(rows, "spool write failed after a writer failure")
                for _ in range(taken):
                    self._queue.task_done()
                await asyncio.sleep(self.probe_interval)  # no hot loop if it fails at once again

    async def _run(self) -> None:
        while True:
            try:
                batch = await asyncio.wait_for(
                    self._take_batch(), self.probe_interval if self.spooling else None
                )
            except TimeoutError:  # idle while spooling: time to see whether the store is back
                await self._maybe_replay()
                continue
            self._in_flight = batch
            taken = len(batch)
            batch = self._in_flight = await self._prepare(batch)
            if self.spooling:
                unwritten = batch
            else:
                stored, unwritten = await self._insert(batch)
                self.written += stored
                self.write_errors += bool(unwritten)
            if unwritten:
                await self._spool(unwritten)
                await self._maybe_replay()
            self._in_flight = []
            self._progress_at = time.monotonic()
            for _ in range(taken):
                self._queue.task_done()

    async def _take_batch(self) -> list[Interaction]:
        batch = [await self._queue.get()]  # cancelling here loses nothing
        if self.flush_interval and self._queue.qsize() < self.batch_size:
            # Let a batch gather: one write per interval instead of one per request halves
            # the CPU the gateway and the database spend per request under load.
            await asyncio.sleep(self.flush_interval)
        while len(batch) < self.batch_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _prepare(self, batch: list[Interaction]) -> list[Interaction]:
        """Drop the rows of forgotten people, and redact the rest as `capture.redact` asks."""
        if self.forgotten is not None:
            await self.forgotten.refresh(self.write_timeout)
            batch = self.forgotten.keep(batch)
        if self.redactor is not None and batch:
            # In a process of its own: the regexes take milliseconds a row and hold the GIL.
            batch = await self.redactor.batch_elsewhere(batch)
        return batch

    def _redacted(self, rows: list[Interaction]) -> list[Interaction]:
        """`rows` made safe for disk at once, blocking: for paths that cannot wait."""
        return rows if self.redactor is None else self.redactor.batch(rows)

    async def _insert(self, batch: list[Interaction]) -> tuple[int, list[Interaction]]:
        """Write a batch: how many rows were stored, and those to spool instead (all of them
        if the store is down)."""
        if not batch:  # every row was a forgotten person's
            return 0, []
        try:
            await self._write(batch)
            return len(batch), []
        except RowsRejected as exc:
            log.warning("recorder: store refused a batch of %d (%s); repairing", len(batch), exc)
            for row in batch:
                make_storable(row)
            stored, unwritten = await self._write_isolating(batch)
        except (StoreError, TimeoutError) as exc:
            log.warning("recorder: store unavailable (%s); spooling to %s", exc, self.spool.folder)
            stored, unwritten = 0, batch
        if unwritten:
            self.spooling = True
            self._next_probe = time.monotonic() + self.probe_interval
        return stored, unwritten

    async def _write(self, rows: list[Interaction]) -> None:
        try:
            await asyncio.wait_for(self.store.insert_interactions(rows), self.write_timeout)
        except (StoreError, TimeoutError):
            raise
        except Exception as exc:
            # Not an outage the engine recognised: treated as the rows' fault, so at worst they
            # end in the dead letters (replayable), never in a spool that replays forever.
            raise RowsRejected(f"{type(exc).__name__}: {exc}") from exc

    async def _write_isolating(self, rows: list[Interaction]) -> tuple[int, list[Interaction]]:
        """Write rows, halving a refused batch until each refused row stands alone; those go
        to the dead letters. Returns the rows stored, and those left unwritten because the
        store went down meanwhile."""
        try:
            await self._write(rows)
            return len(rows), []
        except RowsRejected as exc:
            if len(rows) == 1:
                await self._dead_letter(rows, str(exc))
                return 0, []
        except (StoreError, TimeoutError):
            return 0, rows
        middle = len(rows) // 2
        stored, unwritten = await self._write_isolating(rows[:middle])
        if unwritten:
            return stored, unwritten + rows[middle:]
        more, unwritten = await self._write_isolating(rows[middle:])
        return stored + more, unwritten

    async def _dead_letter(self, rows: list[Interaction], reason: str) -> None:
        for row in rows:
            log.error("recorder: interaction %s refused by the store: %s", row.id, reason)
        try:
            path = await asyncio.to_thread(self.spool.dead_letter, rows)  # it fsyncs
        except OSError:
            log.exception("recorder: dead-letter write failed: lost %d rows", len(rows))
            return
        self.dead_lettered += len(rows)
        log.error("recorder: %d rows kept in %s; requeue them once fixed", len(rows), path)

    async def _spool(self, batch: list[Interaction]) -> None:
        if not batch:
            return
        # The write is cheap (page cache); the fsync, which takes milliseconds, runs on a thread.
        fileno = self.spool.write(batch)
        if fileno is not None:
            await asyncio.to_thread(os.fsync, fileno)
        self.spooled += len(batch)

    async def _maybe_replay(self) -> None:
        """If the store answers, replay the spool in order, then go back to direct writes."""
        if time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + self.probe_interval
        try:
            await asyncio.wait_for(self.store.ping(), self.write_timeout)
        except (StoreError, TimeoutError):
            return
        # Rows recorded meanwhile wait in the queue, or land in a new segment when it is full
        # (replayed on the next pass), so the store receives rows in the order they came.
        while True:
            self.spool.seal()
            replayed_any = False
            # Segments locked by another worker (its open one, or one it is replaying) are
            # skipped: that worker stores them.
            for segment in self.spool.segments():
                if not await self._replay(segment):
                    return
                replayed_any = True
            if not replayed_any:  # and no await since the seal, so no row came in meanwhile
                break
        self.spooling = False
        log.info("recorder: store is back; %d spooled interactions replayed", self.replayed)

    async def _replay(self, segment: Segment) -> bool:
        """Store one segment's rows; rows the store refuses go to the dead letters, so one bad
        row cannot hold up the spool. False: the store went away meanwhile (retried later)."""
        finished = False
        try:
            batches = segment.batches(self.batch_size)
            while batch := await asyncio.to_thread(next, batches, None):
                batch = await self._prepare(batch)  # spooled by a run without redaction, say
                stored, unwritten = await self._insert(batch)
                self.replayed += stored
                self._progress_at = time.monotonic()  # a long replay is not a stalled writer
                if unwritten:
                    self.replay_failures += 1
                    log.warning("recorder: replay of %s interrupted", segment.path.name)
                    return False
            if segment.undecodable:
                self.spool.dead_letter_lines(segment.undecodable)
                self.dead_lettered += len(segment.undecodable)
            finished = True
        finally:  # cancelled at shutdown too: the lock and the file are let go either way
            if finished:
                segment.done()
            else:
                segment.release()
        return True
