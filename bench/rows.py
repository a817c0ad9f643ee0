"""Count the rows a Flywheel has stored, from the benchmark's side, and check nothing was lost.

The loss check: after a scenario, each Flywheel's store must hold exactly as many interactions as
the load generators got answers from it (`bench.load.ANSWERED`, warm-ups included), once the
recorder has drained. It waits for the count to reach that number, up to a timeout; more rows
than answers would be a duplicate, fewer a loss.

SQLite is read through its own connection (WAL lets it read while the gateway writes), on a
thread; PostgreSQL through one asyncpg connection, reopened if the server went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from dataclasses import dataclass

import asyncpg

from bench.load import ANSWERED
from bench.targets import Target

COUNT_SQL = "SELECT count(*) FROM interactions"


def sqlite_file(url: str) -> str:
    return url.removeprefix("sqlite:///")


class RowCounter:
    """`await count()` -> rows in `interactions`; raises OSError/asyncpg errors when the
    database cannot be read (the caller decides whether to retry)."""

    def __init__(self, db_url: str):
        self.db_url = db_url
        self._sqlite: sqlite3.Connection | None = None
        self._pg: asyncpg.Connection | None = None

    async def count(self) -> int:
        if self.db_url.startswith("sqlite:"):
            return await asyncio.to_thread(self._count_sqlite)
        if self._pg is None or self._pg.is_closed():
            self._pg = await asyncpg.connect(self.db_url, timeout=5)
        try:
            return int(await self._pg.fetchval(COUNT_SQL))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._drop_pg()
            raise

    def _count_sqlite(self) -> int:
        if self._sqlite is None:
            self._sqlite = sqlite3.connect(sqlite_file(self.db_url), check_same_thread=False)
        return int(self._sqlite.execute(COUNT_SQL).fetchone()[0])

    async def _drop_pg(self) -> None:
        if self._pg is not None:
            pg, self._pg = self._pg, None
            pg.terminate()

    async def close(self) -> None:
        await self._drop_pg()
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None


@dataclass(frozen=True)
class LossCheck:
    """One comparison of answered requests with stored rows, for one Flywheel after one scenario."""

    scenario: str
    target: str
    answered: int
    rows: int
    waited_s: float

    @property
    def ok(self) -> bool:
        return self.rows == self.answered


async def wait_for_rows(
    counter: RowCounter, expected: int, within_s: float, interval: float = 0.1
) -> tuple[int, float]:
    """Poll until the count reaches `expected` (or `within_s`); returns (last count, seconds)."""
    started = time.monotonic()
    rows = -1
    while True:
        # A failed count: the database is restarting; try again.
        with contextlib.suppress(
            OSError, asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error
        ):
            rows = await counter.count()
        waited = time.monotonic() - started
        if rows >= expected or waited > within_s:
            return rows, waited
        await asyncio.sleep(interval)


async def check_loss(
    scenario: str, targets: list[Target], within_s: float = 30.0
) -> list[LossCheck]:
    """Wait for every Flywheel's recorder to drain, then compare rows with answers."""
    checks = []
    for target in targets:
        if target.db_url is None:
            continue
        counter = RowCounter(target.db_url)
        try:
            expected = ANSWERED[target.url]
            rows, waited = await wait_for_rows(counter, expected, within_s)
            if rows == expected:  # settle: a duplicate would show up a moment later
                await asyncio.sleep(0.2)
                rows = await counter.count()
        finally:
            await counter.close()
        checks.append(LossCheck(scenario, target.name, expected, rows, round(waited, 2)))
    return checks


def format_checks(checks: list[LossCheck]) -> str:
    return "\n".join(
        f"loss check [{c.scenario}] {c.target}: answered {c.answered}, rows {c.rows} -> "
        + ("OK" if c.ok else f"MISMATCH ({c.rows - c.answered:+d})")
        + f" (waited {c.waited_s:.1f}s for the recorder)"
        for c in checks
    )
