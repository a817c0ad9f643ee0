"""Latency Flywheel adds over calling the upstream directly: `make bench`, or

    python -m bench.latency [--seconds 10] [--mode nonstream|stream|both] [...]

Starts, each as its own process on loopback: a fast fake upstream (`bench.fake_upstream`), a
bare aiohttp forwarder (`bench.forwarder`, the floor any Python proxy pays), Flywheel with
SQLite and Flywheel with a throwaway PostgreSQL (`pgserver`; skipped with a note if it cannot
start). Then it calls each of them one request at a time, interleaved in short blocks, and
prints per target: latency percentiles, latency added over `direct`, that added latency as a
multiple of the forwarder's, and CPU milliseconds per request of the server processes. The same
numbers go to bench/results/latest.json.

CPU pinning: on a machine with at least two CPUs, the driver (the load-generating client) runs
on CPU 0 and every server (fake upstream, forwarder, both Flywheels, PostgreSQL) on CPU 1.
With concurrency 1 only one server works at a time, so they do not compete with each other;
keeping the client off their CPU stops it from stealing cycles from them (and vice versa), which
on a 2-core machine is most of the noise. Servers inherit the affinity as they start (the driver
pins itself to the server CPU while spawning them) and are pinned again explicitly afterwards.
`--no-pin` turns this off.

Everything started is stopped in a `finally` (SIGTERM, then SIGKILL after 5 s), on errors, on
Ctrl-C and on SIGTERM; the whole run is bounded by a time budget derived from the options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

from bench.load import open_session
from bench.procs import BenchError, pin
from bench.report import LEGEND, build_rows, format_table, totals, write_json
from bench.runner import Schedule, Tally, measure
from bench.targets import READY_TIMEOUT, Fleet, FleetOptions, remove_workdir, start_fleet

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
MODES = {"nonstream": (False,), "stream": (True,), "both": (False, True)}


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the client and the servers run on; None when not pinned."""

    client: frozenset[int] | None
    servers: frozenset[int] | None
    note: str


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--seconds", type=float, default=10.0, help="measured seconds per target and mode")
    add("--warmup", type=float, default=1.0, help="warm-up seconds per target and mode")
    add("--block", type=float, default=0.5, help="seconds per interleaved block")
    add("--mode", choices=tuple(MODES), default="both")
    add("--latency-ms", type=float, default=0.0, help="fake upstream delay before answering")
    add("--chunks", type=int, default=20, help="SSE content chunks per streamed answer")
    add("--chunk-spacing-ms", type=float, default=1.0, help="delay between SSE chunks")
    add("--no-forwarder", action="store_true", help="do not run the bare forwarder")
    add("--no-postgres", action="store_true", help="do not run Flywheel with PostgreSQL")
    add("--no-pin", action="store_true", help="do not pin client and servers to CPUs")
    add("--client-cpu", type=int, default=0)
    add("--server-cpu", type=int, default=1)
    add("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.block <= 0 or args.warmup < 0 or args.chunks < 1:
        parser.error("--seconds and --block must be > 0, --warmup >= 0, --chunks >= 1")
    return args


def choose_pinning(args: argparse.Namespace) -> Pinning:
    if args.no_pin:
        return Pinning(None, None, "not pinned (--no-pin)")
    available = os.sched_getaffinity(0)
    wanted = {args.client_cpu, args.server_cpu}
    if len(available) < 2 or not wanted <= available or args.client_cpu == args.server_cpu:
        return Pinning(None, None, f"not pinned: need two distinct CPUs of {sorted(available)}")
    return Pinning(
        frozenset({args.client_cpu}),
        frozenset({args.server_cpu}),
        f"client (this driver) on CPU {args.client_cpu}; servers (fake upstream, forwarder, "
        f"flywheels, postgres) on CPU {args.server_cpu}",
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": sorted(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
    }


def time_budget(args: argparse.Namespace) -> float:
    """Upper bound for the whole run: startup, then twice the planned measuring time."""
    targets, modes = 4, len(MODES[args.mode])
    rounds = Schedule(args.seconds, args.block, 0).rounds
    per_target = float(args.warmup) + rounds * float(args.block)
    return 2 * READY_TIMEOUT + 2 * modes * targets * per_target + 30


async def run(
    args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack, pinning: Pinning
) -> tuple[Fleet, dict[str, dict[str, Tally]]]:
    options = FleetOptions(
        latency_ms=args.latency_ms,
        chunks=args.chunks,
        chunk_spacing_ms=args.chunk_spacing_ms,
        forwarder=not args.no_forwarder,
        postgres=not args.no_postgres,
        server_cpus=pinning.servers,
    )
    if pinning.servers:
        os.sched_setaffinity(0, pinning.servers)  # children inherit it from the fork
    fleet = await start_fleet(stack, workdir, options)
    if pinning.client:
        pin(os.getpid(), pinning.client)  # every thread of the driver
    for note in fleet.notes:
        print(f"note: {note}", flush=True)
    print("targets: " + ", ".join(t.name for t in fleet.targets), flush=True)
    schedule = Schedule(args.seconds, args.block, args.warmup)
    results: dict[str, dict[str, Tally]] = {}
    async with open_session() as session:
        for stream in MODES[args.mode]:
            mode = "stream" if stream else "nonstream"
            print(
                f"measuring {mode}: {schedule.rounds} rounds of {args.block}s blocks ...",
                flush=True,
            )
            results[mode] = await measure(session, fleet, stream, schedule)
    return fleet, results


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (from make, CI, `kill`) is handled exactly like Ctrl-C, so the `finally` blocks
    stop the children. While the event loop runs, asyncio.Runner's SIGINT handler cancels the
    main task cleanly; outside it, the default handler raises KeyboardInterrupt."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored (e.g. started in the background by a non-interactive shell)
        raise KeyboardInterrupt


def loop_factory() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _print_header(
    command: str, machine: dict[str, Any], pinning: Pinning, args: argparse.Namespace
) -> None:
    print(f"command: {command}")
    print(
        f"machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), "
        f"Python {machine['python']}, {machine['platform']}, aiohttp {machine['aiohttp']}"
    )
    print(f"pinning: {pinning.note}")
    print(
        f"load: concurrency 1, raw aiohttp keep-alive client; {args.seconds}s per target and "
        f"mode in {args.block}s round-robin blocks after {args.warmup}s warm-up; upstream "
        f"latency {args.latency_ms} ms; streams of {args.chunks} chunks "
        f"{args.chunk_spacing_ms} ms apart",
        flush=True,
    )


def _document(
    command: str,
    machine: dict[str, Any],
    pinning: Pinning,
    args: argparse.Namespace,
    fleet: Fleet,
    results: dict[str, dict[str, Tally]],
) -> dict[str, Any]:
    """Everything needed to read (or redo) the run, next to the rows in the JSON file."""
    return {
        "command": command,
        "machine": machine,
        "pinning": {
            "client": sorted(pinning.client or ()),
            "servers": sorted(pinning.servers or ()),
            "note": pinning.note,
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "notes": fleet.notes,
        "targets": [asdict(t) for t in fleet.targets],
        "totals": totals(results),
    }


def main(argv: Sequence[str] | None = None) -> int:
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    pinning = choose_pinning(args)
    command = shlex.join([sys.executable, "-m", "bench.latency", *raw_argv])
    machine = machine_info()
    _print_header(command, machine, pinning, args)
    started = time.monotonic()
    budget = time_budget(args)
    workdir = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(remove_workdir, workdir)  # registered first: runs after every stop
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                fleet, results = runner.run(
                    asyncio.wait_for(run(args, workdir, stack, pinning), budget)
                )
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the servers", file=sys.stderr)
            return 130
        except TimeoutError:
            print(f"error: the run exceeded its {budget:.0f}s budget", file=sys.stderr)
            return 1
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    rows = build_rows(results)
    print()
    print(format_table(rows))
    print()
    print(LEGEND)
    document = _document(command, machine, pinning, args, fleet, results)
    document["elapsed_s"] = round(time.monotonic() - started, 1)
    write_json(args.json, document, rows)
    print(f"\nwrote {args.json} ({document['elapsed_s']:.0f}s total)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
