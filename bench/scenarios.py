"""The suite's scenarios, each a function of one shared context, run in a fixed order.

Durations scale with `--seconds S` (default 5):
  latency     2S per target and mode (0.5 s interleaved blocks, 1 s warm-up); LiteLLM in
              non-stream only (its stream path is not the comparison the issue asks for)
  throughput  S per target and concurrency (32, 128), in 2 interleaved blocks, 1 s warm-up
  apis        S per Flywheel, mode (whole, stream) and API (chat, Responses, Messages) at
              concurrency 32, in 2 interleaved blocks, 0.5 s warm-up each (~1 minute at S=5)
  recorder    2S of load at concurrency 128 per Flywheel, then its drain; 0.6S (>= 1 s) of
              store inserts per engine
  memory      --soak-seconds per Flywheel (default 60) at half its max; --outage-seconds
              (default 4S) with PostgreSQL stopped
  streaming   2S per target in 2 blocks, each plus a ~1.3 s ramp and drain; a fleet of its own
After each scenario: the loss check for every Flywheel, and an RSS snapshot.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench.apis import format_apis, measure_apis
from bench.closed_loop import closed_loop, pool
from bench.latency import Pinning
from bench.load import open_session, request_body
from bench.memory import db_down, format_memory, snapshot, soak
from bench.outcome import SuiteResults
from bench.procs import pin
from bench.recorder_bench import end_to_end, format_recorder, micro
from bench.report import LEGEND, build_rows, format_table
from bench.rows import check_loss, format_checks
from bench.runner import Schedule, Tally, measure
from bench.streaming import CHUNKS, SPACING_MS, format_streaming, measure_streaming
from bench.summary import PEER
from bench.targets import Fleet, FleetOptions, Target, start_fleet
from bench.throughput import format_throughput, measure_throughput

ORDER = ("latency", "throughput", "apis", "recorder", "memory", "streaming")


@dataclass
class Context:
    args: argparse.Namespace
    fleet: Fleet
    pinning: Pinning
    workdir: Path
    results: SuiteResults


async def start_pinned(
    stack: contextlib.ExitStack, workdir: Path, options: FleetOptions, pinning: Pinning
) -> Fleet:
    """Start a fleet with the driver on the server CPU (children inherit it), then move the
    driver back to the client CPU."""
    if pinning.servers:
        os.sched_setaffinity(0, pinning.servers)
    try:
        return await start_fleet(stack, workdir, options)
    finally:
        if pinning.client:
            pin(os.getpid(), pinning.client)


async def run_latency(ctx: Context) -> None:
    s = ctx.args.seconds
    schedule = Schedule(2 * s, 0.5, 1.0)
    results: dict[str, dict[str, Tally]] = {}
    async with open_session() as session:
        for stream in (False, True):
            targets = [t for t in ctx.fleet.targets if not (stream and t.name == PEER)]
            view = Fleet(targets, ctx.fleet.upstream_pid)
            mode = "stream" if stream else "nonstream"
            print(f"  {mode}: {schedule.rounds} rounds of 0.5 s blocks per target", flush=True)
            results[mode] = await measure(session, view, stream, schedule)
    rows = build_rows(results)
    ctx.results.latency = rows
    print(format_table(rows) + "\n" + LEGEND)


async def run_throughput(ctx: Context) -> None:
    rows = await measure_throughput(ctx.fleet, ctx.args.seconds)
    ctx.results.throughput = rows
    print(format_throughput(rows))


async def run_apis(ctx: Context) -> None:
    rows = await measure_apis(ctx.fleet, ctx.args.seconds)
    ctx.results.apis = rows
    print(format_apis(rows))


async def run_recorder(ctx: Context) -> None:
    for target in ctx.fleet.flywheels():
        print(f"  end to end: {target.name}", flush=True)
        ctx.results.e2e.append(await end_to_end(target, 2 * ctx.args.seconds))
    micro_s = max(1.0, 0.6 * ctx.args.seconds)
    for target in ctx.fleet.flywheels():
        assert target.db_url is not None
        print(f"  store inserts: {target.name}", flush=True)
        path = str(ctx.workdir / f"micro-{target.name}.db")
        ctx.results.micro.append(await micro(target.db_url, path, micro_s))
    print(format_recorder(ctx.results.e2e, ctx.results.micro))


async def _max_rate(ctx: Context, target: Target) -> float:
    """The target's best measured req/s, or a quick 3 s closed loop at 32 if none."""
    rates = [r.rps for r in ctx.results.throughput if r.target == target.name]
    if rates:
        return max(rates)
    session = pool(32)
    try:
        return (await closed_loop(session, target.url, request_body(False), 32, 3.0)).rate
    finally:
        await session.close()


async def run_memory(ctx: Context) -> None:
    for target in ctx.fleet.flywheels():
        rate = await _max_rate(ctx, target) / 2
        print(f"  soak {target.name}: {ctx.args.soak_seconds:.0f}s at {rate:.0f} req/s", flush=True)
        ctx.results.soaks.append(await soak(target, rate, ctx.args.soak_seconds))
    pg = ctx.fleet.get("flywheel-postgres")
    if pg is not None and ctx.fleet.postgres is not None:
        rate = await _max_rate(ctx, pg) / 2
        seconds = ctx.args.outage_seconds or 4 * ctx.args.seconds
        print(f"  database down: {pg.name}, {seconds:.0f}s at {rate:.0f} req/s", flush=True)
        ctx.results.db_down = await db_down(ctx.fleet, pg, rate, seconds, ctx.pinning.servers)
    ctx.results.rss["after memory"] = snapshot(ctx.fleet)
    print(format_memory(ctx.results.rss, ctx.results.soaks, ctx.results.db_down))


async def run_streaming(ctx: Context) -> None:
    options = FleetOptions(
        latency_ms=0.0,
        chunks=CHUNKS,
        chunk_spacing_ms=SPACING_MS,
        forwarder=True,
        postgres=not ctx.args.no_postgres,
        server_cpus=ctx.pinning.servers,
        search_index=not ctx.args.no_search_index,
    )
    workdir = ctx.workdir / "streaming"
    workdir.mkdir()
    with contextlib.ExitStack() as stack:
        fleet = await start_pinned(stack, workdir, options, ctx.pinning)
        print("  targets: " + ", ".join(t.name for t in fleet.targets), flush=True)
        rows = await measure_streaming(fleet, 2 * ctx.args.seconds)
        ctx.results.streaming = rows
        print(format_streaming(rows))
        checks = await check_loss("streaming", fleet.flywheels())
        ctx.results.loss += checks
        print(format_checks(checks))


RUNNERS: dict[str, Callable[[Context], Awaitable[None]]] = {
    "latency": run_latency,
    "throughput": run_throughput,
    "apis": run_apis,
    "recorder": run_recorder,
    "memory": run_memory,
    "streaming": run_streaming,
}


async def run_scenarios(ctx: Context, selected: list[str]) -> dict[str, float]:
    """Run the selected scenarios in ORDER; returns each one's wall seconds."""
    elapsed: dict[str, float] = {}
    if ctx.fleet.targets:
        ctx.results.rss["idle"] = snapshot(ctx.fleet)
    for name in ORDER:
        if name not in selected:
            continue
        print(f"\n== {name} ==", flush=True)
        started = time.monotonic()
        await RUNNERS[name](ctx)
        if name != "streaming":  # streaming checks its own fleet
            checks = await check_loss(name, ctx.fleet.flywheels())
            ctx.results.loss += checks
            print(format_checks(checks))
            ctx.results.rss[f"after {name}"] = snapshot(ctx.fleet)
        elapsed[name] = round(time.monotonic() - started, 1)
        print(f"({name}: {elapsed[name]:.0f}s)", flush=True)
    return elapsed
