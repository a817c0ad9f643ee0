"""How far an export is, for the person waiting on it: on a terminal (`ProgressLine`), and in
the run's row in the store (`RunProgress`), which the admin API and the console read.

A run reports a `Progress` every `exporters.run.PROGRESS_EVERY` rows; both consumers keep only
what a person can read: the terminal line is redrawn at most a few times a second (and, when
stderr is a file or a pipe, a plain line every `LOG_EVERY` seconds instead of a stream of
carriage returns), the run row is written at most every `SAVE_EVERY` seconds. Neither may slow
the export: writing the row happens in a task of its own, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.errors import StoreError
from gateway.store.base import ExportRuns

log = logging.getLogger(__name__)

# Seconds between two redraws of the terminal line, between two lines when stderr is not a
# terminal, and between two writes of a run's row.
REDRAW_EVERY = 0.25
LOG_EVERY = 10.0
SAVE_EVERY = 2.0


@dataclass(frozen=True)
class Progress:
    """How far a run is: rows read from the store of the `total` it will read (None when
    unknown), records written, and rows or records dropped (filtered, invalid, duplicate, too
    long, unformattable) so far."""

    read: int
    written: int
    seconds: float
    dropped: int = 0
    total: int | None = None

    @property
    def rate(self) -> float:
        """Rows read per second."""
        return self.read / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds until every row is read at the rate so far; None when it cannot be told."""
        if self.total is None or self.rate <= 0:
            return None
        return max(self.total - self.read, 0) / self.rate

    def describe(self) -> dict[str, Any]:
        """The counters as JSON values, for the run's row."""
        eta = self.eta
        return {
            "read": self.read,
            "total": self.total,
            "written": self.written,
            "dropped": self.dropped,
            "rate": round(self.rate, 1),
            "eta_seconds": None if eta is None else round(eta, 1),
            "seconds": round(self.seconds, 1),
            "updated_at": datetime.now(UTC).isoformat(),
        }


def line(progress: Progress) -> str:
    """`12,000 / 1,000,000 rows (1.2%), 11,800 written, 200 dropped, 4,210 rows/s, ETA 3m55s`"""
    if progress.total:
        share = 100 * progress.read / progress.total
        done = f"{progress.read:,} / {progress.total:,} rows ({share:.1f}%)"
    else:
        done = f"{progress.read:,} rows"
    eta = progress.eta
    text = (
        f"{done}, {progress.written:,} written, {progress.dropped:,} dropped,"
        f" {progress.rate:,.0f} rows/s"
    )
    return text if eta is None else f"{text}, ETA {duration(eta)}"


def duration(seconds: float) -> str:
    """`4s`, `3m55s`, `2h05m`."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class ProgressLine:
    """The progress of a CLI export on `stream` (stderr): one line redrawn in place on a
    terminal, a line every `LOG_EVERY` seconds otherwise (a CI log, `2> export.log`)."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.terminal = stream.isatty()
        self.clock = clock
        self._shown: float | None = None
        self._latest: Progress | None = None
        self._written: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        self._latest = progress
        now = self.clock()
        every = REDRAW_EVERY if self.terminal else LOG_EVERY
        if self._shown is not None and now - self._shown < every:
            return
        self._shown = now
        self._write(progress)

    def finish(self) -> None:
        """Show the last counts if the line does not already, and end it on a terminal."""
        if self._latest is not None and self._latest is not self._written:
            self._write(self._latest)
        if self.terminal and self._written is not None:
            self.stream.write("\n")
            self.stream.flush()

    def _write(self, progress: Progress) -> None:
        if self.terminal:
            self.stream.write(f"\r\x1b[K  {line(progress)}")  # \x1b[K: clear the old line's end
        else:
            self.stream.write(f"  {line(progress)}\n")
        self.stream.flush()
        self._written = progress


class RunProgress:
    """Writes a recorded run's progress into its row (`run["progress"]`) every `SAVE_EVERY`
    seconds, in a task, one write at a time, so the export never waits on the store for it.
    `close()` waits for the write in flight: the run's final row must be written after it."""

    def __init__(
        self, store: ExportRuns, run: dict[str, Any], clock: Callable[[], float] = time.monotonic
    ):
        self.store = store
        self.run = run
        self.clock = clock
        self.latest: Progress | None = None
        self._saved: float | None = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self, progress: Progress) -> None:
        self.latest = progress
        now = self.clock()
        if self._task is not None and not self._task.done():
            return  # the last write is still on its way; the next call brings newer counts
        if self._saved is not None and now - self._saved < SAVE_EVERY:
            return
        self._saved = now
        self.run["progress"] = progress.describe()
        self._task = asyncio.get_running_loop().create_task(self._save(dict(self.run)))

    async def _save(self, row: dict[str, Any]) -> None:
        try:
            await self.store.save_export_run(row)
        except StoreError as exc:
            # Counters a person reads, not the run's outcome: the run goes on, and its final
            # write says whether the store is back.
            log.warning("export run %s: progress not saved: %s", row.get("id"), exc)

    async def close(self) -> None:
        """Wait for the write in flight, and put the last counts into `run`."""
        if self._task is not None:
            await self._task
        if self.latest is not None:
            self.run["progress"] = self.latest.describe()
