"""Memory of each Flywheel worker: idle, after load, over a soak, and with its database down.

RSS is VmRSS from /proc/<pid>/status (resident set, KiB). A soak runs a paced load at half of
the worker's measured maximum throughput and samples RSS every second; growth is the
least-squares slope in MiB/min, over the whole soak and over its second half (the first half
includes warm-up: caches, allocator arenas, connection pools filling).

Database down (PostgreSQL only): a paced load runs for ~20 s; two seconds in, PostgreSQL is
stopped (`pg_ctl stop -m fast` from pgserver's bundled binaries, on its data dir), so the recorder
must spool to disk. RSS is sampled throughout and every request must still be answered. Then
PostgreSQL is started again (pgserver, same data dir and socket) and the spool must replay until
rows == requests answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.closed_loop import LoadResult, paced, pool
from bench.load import ANSWERED, request_body
from bench.procs import pin
from bench.rows import RowCounter, wait_for_rows
from bench.targets import Fleet, Target

SAMPLE_S = 1.0
MIB = 1024 * 1024


def rss_mib(pid: int) -> float | None:
    """Resident set size in MiB, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / MIB
    except OSError:
        return None
    return None


def snapshot(fleet: Fleet) -> dict[str, float | None]:
    return {t.name: rss_mib(t.pid) for t in fleet.targets if t.name != "direct"}


def slope_mib_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return 60 * cov / var if var else 0.0


@dataclass
class RssTrace:
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds in, MiB)

    @property
    def first(self) -> float:
        return self.samples[0][1] if self.samples else float("nan")

    @property
    def last(self) -> float:
        return self.samples[-1][1] if self.samples else float("nan")

    @property
    def peak(self) -> float:
        return max((m for _, m in self.samples), default=float("nan"))

    def slope(self, second_half: bool = False) -> float:
        cut = len(self.samples) // 2 if second_half else 0
        return slope_mib_per_min(self.samples[cut:])


async def _sample(pid: int, trace: RssTrace, stop: asyncio.Event) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        value = rss_mib(pid)
        if value is not None:
            trace.samples.append((time.monotonic() - t0, value))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_S)


async def load_with_rss(target: Target, rate: float, seconds: float) -> tuple[LoadResult, RssTrace]:
    """Paced load at `rate` for `seconds`, sampling the target's RSS every second."""
    trace, stop = RssTrace(), asyncio.Event()
    sampler = asyncio.create_task(_sample(target.pid, trace, stop))
    session = pool(256)
    try:
        result = await paced(session, target.url, request_body(False), rate, seconds)
    finally:
        await session.close()
        stop.set()
        await sampler
    return result, trace


@dataclass(frozen=True)
class Soak:
    target: str
    rate_asked: float
    rate_achieved: float
    requests: int
    errors: int
    seconds: float
    rss_start_mib: float
    rss_end_mib: float
    rss_peak_mib: float
    growth_mib_per_min: float
    growth_second_half_mib_per_min: float


async def soak(target: Target, rate: float, seconds: float) -> Soak:
    result, trace = await load_with_rss(target, rate, seconds)
    return Soak(
        target.name,
        rate,
        result.rate,
        result.ok,
        result.errors,
        result.seconds,
        trace.first,
        trace.last,
        trace.peak,
        trace.slope(),
        trace.slope(second_half=True),
    )


@dataclass(frozen=True)
class DbDown:
    target: str
    requests: int
    errors: int
    down_seconds: float
    rss_before_mib: float
    rss_peak_mib: float
    rss_after_mib: float
    spool_bytes_at_end: int
    rows_after_replay: int
    answered: int
    replay_seconds: float
    spool_files_left: int
    notes: list[str]


def _spool_files(target: Target) -> list[Path]:
    return sorted(Path(target.spool_dir).glob("*.jsonl")) if target.spool_dir else []


def _stop_postgres(server: Any) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


async def db_down(
    fleet: Fleet, target: Target, rate: float, seconds: float, server_cpus: frozenset[int] | None
) -> DbDown:
    """Stop PostgreSQL under load, then restart it and wait for the spool to replay."""
    server, notes = fleet.postgres, []
    rss_before = rss_mib(target.pid) or float("nan")
    load = asyncio.create_task(load_with_rss(target, rate, seconds))
    await asyncio.sleep(min(2.0, seconds / 4))
    down_at = time.monotonic()
    await asyncio.to_thread(_stop_postgres, server)
    result, trace = await load
    spool_bytes = sum(p.stat().st_size for p in _spool_files(target))
    rss_after = rss_mib(target.pid) or float("nan")
    await asyncio.to_thread(server.ensure_postgres_running)
    down_seconds = time.monotonic() - down_at
    new_pid = server.get_pid()
    if server_cpus and new_pid:
        pin(new_pid, server_cpus, tree=True)  # pg_ctl ran from the client CPU
    fleet.replace(
        Target(target.name, target.url, target.pid, new_pid, target.db_url, target.spool_dir)
    )
    counter = RowCounter(target.db_url or "")
    try:
        started = time.monotonic()
        rows, waited = await wait_for_rows(counter, ANSWERED[target.url], within_s=120)
    finally:
        await counter.close()
    if rows != ANSWERED[target.url]:
        notes.append(f"after {waited:.0f}s rows={rows}, answered={ANSWERED[target.url]}")
    return DbDown(
        target.name,
        result.ok,
        result.errors,
        down_seconds,
        rss_before,
        trace.peak,
        rss_after,
        spool_bytes,
        rows,
        ANSWERED[target.url],
        time.monotonic() - started,
        len(_spool_files(target)),
        notes,
    )


def format_memory(
    snapshots: dict[str, dict[str, float | None]], soaks: list[Soak], down: DbDown | None
) -> str:
    names = sorted({n for snap in snapshots.values() for n in snap})
    lines = [f"{'RSS (MiB)':<18}" + "".join(f"{n:>19}" for n in names)]
    for when, snap in snapshots.items():
        cells = "".join(
            f"{snap[n]:>19.1f}" if snap.get(n) is not None else f"{'-':>19}" for n in names
        )
        lines.append(f"{when:<18}{cells}")
    for s in soaks:
        lines.append(
            f"soak {s.target}: {s.seconds:.0f}s at {s.rate_achieved:.0f}/{s.rate_asked:.0f} "
            f"req/s, {s.requests} ok, {s.errors} errors; RSS {s.rss_start_mib:.1f} -> "
            f"{s.rss_end_mib:.1f} MiB (peak {s.rss_peak_mib:.1f}); growth "
            f"{s.growth_mib_per_min:+.2f} MiB/min, second half "
            f"{s.growth_second_half_mib_per_min:+.2f}"
        )
    if down is not None:
        lines.append(
            f"database down ({down.target}): {down.requests} ok, {down.errors} errors while "
            f"PostgreSQL was down {down.down_seconds:.1f}s; RSS {down.rss_before_mib:.1f} -> peak "
            f"{down.rss_peak_mib:.1f} -> {down.rss_after_mib:.1f} MiB; spool "
            f"{down.spool_bytes_at_end / MIB:.1f} MiB; after restart rows {down.rows_after_replay}"
            f" / answered {down.answered} in {down.replay_seconds:.1f}s, spool files left "
            f"{down.spool_files_left}"
        )
        lines += [f"  note: {n}" for n in down.notes]
    return "\n".join(lines)
