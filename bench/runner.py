"""The measurement schedule: warm up, then interleave the targets in short blocks.

Round-robin blocks (~0.5 s each: direct, forwarder, flywheel-sqlite, flywheel-postgres, direct,
...) spread slow drifts of the machine (other tenants, CPU frequency, hypervisor steal) evenly
over every target instead of penalising whichever happened to run during a bad second.

Around each block the CPU time of every server process is read, so the CPU a target used is
charged to the requests of its own blocks. The driver's garbage collector is off inside a block
(collected between blocks) so client-side GC pauses do not land on a random target's samples.
"""

from __future__ import annotations

import asyncio
import gc
import math
from dataclasses import dataclass, field

import aiohttp

from bench.load import request_body, run_block
from bench.procs import cpu_seconds
from bench.targets import Fleet, Target

# Lets the gateway's recorder write the block's last row before its CPU time is read.
_SETTLE_SECONDS = 0.02


@dataclass
class Tally:
    """Everything measured for one target in one mode, summed over its blocks."""

    total_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    blocks: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    upstream_cpu_s: float = 0.0
    has_db: bool = False  # the target has a database server of its own (PostgreSQL)

    @property
    def requests(self) -> int:
        return len(self.total_ms)


@dataclass(frozen=True)
class Schedule:
    seconds: float
    block_seconds: float
    warmup_seconds: float

    @property
    def rounds(self) -> int:
        return max(1, math.ceil(self.seconds / self.block_seconds))


@dataclass(frozen=True)
class _CpuSnapshot:
    target: float
    db: float
    upstream: float


def _snapshot(target: Target, upstream_pid: int) -> _CpuSnapshot:
    db = cpu_seconds(target.db_pid, tree=True) if target.db_pid else 0.0
    return _CpuSnapshot(cpu_seconds(target.pid), db, cpu_seconds(upstream_pid))


async def _measured_block(
    session: aiohttp.ClientSession,
    fleet: Fleet,
    target: Target,
    body: bytes,
    stream: bool,
    seconds: float,
    tally: Tally,
) -> None:
    gc.collect()
    before = _snapshot(target, fleet.upstream_pid)
    loop = asyncio.get_running_loop()
    started = loop.time()
    gc.disable()
    try:
        samples = await run_block(session, target.url, body, stream, seconds)
    finally:
        gc.enable()
    tally.seconds += loop.time() - started
    await asyncio.sleep(_SETTLE_SECONDS)
    after = _snapshot(target, fleet.upstream_pid)
    tally.blocks += 1
    tally.cpu_s += after.target - before.target
    tally.db_cpu_s += after.db - before.db
    tally.upstream_cpu_s += after.upstream - before.upstream
    for sample in samples:
        tally.total_ms.append(sample.total_ms)
        if sample.first_ms is not None:
            tally.first_ms.append(sample.first_ms)


async def measure(
    session: aiohttp.ClientSession, fleet: Fleet, stream: bool, schedule: Schedule
) -> dict[str, Tally]:
    """Warm every target up, then run `schedule.rounds` round-robin blocks per target."""
    body = request_body(stream)
    for target in fleet.targets:
        await run_block(session, target.url, body, stream, schedule.warmup_seconds)
    tallies = {t.name: Tally(has_db=t.db_pid is not None) for t in fleet.targets}
    for _ in range(schedule.rounds):
        for target in fleet.targets:
            await _measured_block(
                session, fleet, target, body, stream, schedule.block_seconds, tallies[target.name]
            )
    return tallies
