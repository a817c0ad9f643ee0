"""Throughput: closed-loop load at concurrency 32 and 128 against every target.

Every server (fake upstream included) is pinned to the server CPU, so a proxy under test shares
one core with the upstream it calls: "1 worker on 1 core" for the proxy, and the same upstream
cost for every proxy. The load generator is one asyncio process on the client CPU; its CPU use is
printed, and a run where it neared a full core is flagged (the client, not the server, may then
have set the pace).

Per concurrency: a warm-up per target (connections opened, caches filled), then `rounds`
interleaved blocks per target, so slow drifts of the machine spread over all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.closed_loop import CLIENT_SATURATED, LoadResult, closed_loop, pool
from bench.load import request_body
from bench.procs import cpu_seconds
from bench.targets import Fleet, Target

CONCURRENCIES = (32, 128)
FORWARDER = "forwarder"
LITELLM = "litellm-proxy"


@dataclass(frozen=True)
class Row:
    """One line of the throughput table (and of the JSON)."""

    target: str
    concurrency: int
    requests: int
    errors: int
    error_examples: list[str]
    rps: float
    p50_ms: float
    p99_ms: float
    x_forwarder: float | None
    x_litellm: float | None
    cpu_ms_per_request: float
    db_cpu_ms_per_request: float | None
    upstream_cpu_ms_per_request: float
    client_cpu_util: float


@dataclass
class Cell:
    """One target at one concurrency, summed over its blocks."""

    target: str
    concurrency: int
    load: LoadResult = field(default_factory=LoadResult)
    cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    upstream_cpu_s: float = 0.0
    max_client_util: float = 0.0

    def per_request_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.load.ok if self.load.ok else math.nan

    def row(self, cells: dict[tuple[str, int], Cell]) -> Row:
        s = self.load.summary()
        fwd = cells.get((FORWARDER, self.concurrency))
        peer = cells.get((LITELLM, self.concurrency))
        return Row(
            target=self.target,
            concurrency=self.concurrency,
            requests=self.load.ok,
            errors=self.load.errors,
            error_examples=self.load.error_examples,
            rps=self.load.rate,
            p50_ms=s.p50,
            p99_ms=s.p99,
            x_forwarder=self.load.rate / fwd.load.rate if fwd and fwd.load.rate else None,
            x_litellm=self.load.rate / peer.load.rate if peer and peer.load.rate else None,
            cpu_ms_per_request=self.per_request_ms(self.cpu_s),
            db_cpu_ms_per_request=self.per_request_ms(self.db_cpu_s) if self.db_cpu_s else None,
            upstream_cpu_ms_per_request=self.per_request_ms(self.upstream_cpu_s),
            client_cpu_util=self.max_client_util,
        )


def _cpu(target: Target, upstream_pid: int) -> tuple[float, float, float]:
    db = cpu_seconds(target.db_pid, tree=True) if target.db_pid else 0.0
    # tree: the LiteLLM proxy may run helpers of its own; the others have no children.
    return cpu_seconds(target.pid, tree=True), db, cpu_seconds(upstream_pid)


async def measure_throughput(
    fleet: Fleet, seconds: float, warmup: float = 1.0, rounds: int = 2
) -> list[Row]:
    """`seconds` of measured closed-loop load per target and concurrency, in `rounds` blocks."""
    body = request_body(stream=False)
    cells: dict[tuple[str, int], Cell] = {}
    for concurrency in CONCURRENCIES:
        sessions = {t.name: pool(concurrency) for t in fleet.targets}
        try:
            for target in fleet.targets:
                await closed_loop(sessions[target.name], target.url, body, concurrency, warmup)
            for _ in range(rounds):
                for target in fleet.targets:
                    cell = cells.setdefault(
                        (target.name, concurrency), Cell(target.name, concurrency)
                    )
                    before = _cpu(target, fleet.upstream_pid)
                    block = await closed_loop(
                        sessions[target.name], target.url, body, concurrency, seconds / rounds
                    )
                    after = _cpu(target, fleet.upstream_pid)
                    cell.load.add(block)
                    cell.cpu_s += after[0] - before[0]
                    cell.db_cpu_s += after[1] - before[1]
                    cell.upstream_cpu_s += after[2] - before[2]
                    cell.max_client_util = max(cell.max_client_util, block.client_util)
                print(f"  concurrency {concurrency}: round done", flush=True)
        finally:
            for session in sessions.values():
                await session.close()
    return [cell.row(cells) for cell in cells.values()]


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def format_throughput(rows: list[Row]) -> str:
    header = (
        f"{'target':<18}{'conc':>5}{'req/s':>9}{'err':>5}{'p50':>8}{'p99':>8}{'x fwd':>7}"
        f"{'x litellm':>10}{'cpu/req':>9}{'db/req':>8}{'up/req':>8}{'client':>8}"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"{r.target:<18}{r.concurrency:>5}{_num(r.rps, 0):>9}{r.errors:>5}"
            f"{_num(r.p50_ms):>8}{_num(r.p99_ms):>8}{_num(r.x_forwarder):>7}"
            f"{_num(r.x_litellm):>10}{_num(r.cpu_ms_per_request, 3):>9}"
            f"{_num(r.db_cpu_ms_per_request, 3):>8}{_num(r.upstream_cpu_ms_per_request, 3):>8}"
            f"{_num(100 * r.client_cpu_util, 0) + '%':>8}"
        )
        for example in r.error_examples[:2]:
            lines.append(f"    error example: {example}")
    saturated = [r for r in rows if r.client_cpu_util >= CLIENT_SATURATED]
    if saturated:
        names = ", ".join(f"{r.target}@{r.concurrency}" for r in saturated)
        lines.append(
            f"note: the single client process used >= {CLIENT_SATURATED:.0%} of its CPU for "
            f"{names}: there the client may have set the pace, not the server."
        )
    lines.append(
        "req/s = answered 200s / wall time; p50/p99 = per-request ms; x fwd / x litellm = "
        "req/s over the forwarder's / LiteLLM proxy's; cpu/req, db/req, up/req = CPU ms per "
        "request of the target process, its PostgreSQL, the fake upstream (all on the server "
        "CPU); client = peak CPU share of the load generator."
    )
    return "\n".join(lines)
