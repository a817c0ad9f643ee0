"""Flywheel's whole benchmark: `make bench`, or

    python -m bench [--scenario latency,throughput,apis,recorder,memory,streaming] [--seconds 5]
                    [--soak-seconds 60] [--outage-seconds 20] [--no-litellm]
                    [--no-search-index] [...]

Measures the issue's targets (measured and reported, not asserted) against the same peers:
`direct` (the fake upstream itself), a bare aiohttp forwarder (the floor any Python proxy pays),
Flywheel with SQLite and with PostgreSQL (pgserver), and the LiteLLM proxy as shipped (its own
venv in bench/.venv-litellm, installed on first use). Each scenario prints its own table; the
run ends with one summary line per target of the issue, PASS or MISS, and writes everything to
bench/results/suite.json. `python -m bench.latency` still runs the latency table on its own.

Pinning as in bench.latency: the driver (load generator) on CPU 0, every server on CPU 1.
The default run (all scenarios, --seconds 5, --soak-seconds 60) takes about 8 minutes, plus a
one-time install of litellm[proxy]. Scenario durations: see bench/scenarios.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.latency import choose_pinning, loop_factory, machine_info, on_sigterm
from bench.litellm_peer import ensure_venv
from bench.outcome import SuiteResults
from bench.procs import BenchError
from bench.report import finite
from bench.scenarios import ORDER, Context, run_scenarios, start_pinned
from bench.summary import format_summary, verdicts
from bench.targets import READY_TIMEOUT, Fleet, FleetOptions, remove_workdir

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "suite.json"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--scenario", default=",".join(ORDER), help="comma-separated subset of: " + ", ".join(ORDER)
    )
    add("--seconds", type=float, default=5.0, help="base measured seconds (scales every scenario)")
    add("--soak-seconds", type=float, default=60.0, help="memory soak per Flywheel (issue: 600)")
    add("--outage-seconds", type=float, default=0.0, help="load with PostgreSQL down (default 4S)")
    add("--no-litellm", action="store_true", help="do not install or run the LiteLLM proxy")
    add("--no-postgres", action="store_true", help="do not run Flywheel with PostgreSQL")
    add("--no-pin", action="store_true", help="do not pin client and servers to CPUs")
    add("--no-search-index", action="store_true", help="Flywheels without the search indexer")
    add("--client-cpu", type=int, default=0)
    add("--server-cpu", type=int, default=1)
    add("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(ORDER)
    if unknown or not args.scenarios:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {', '.join(ORDER)}")
    if args.seconds <= 0 or args.soak_seconds <= 0 or args.outage_seconds < 0:
        parser.error("--seconds and --soak-seconds must be > 0, --outage-seconds >= 0")
    return args


def time_budget(args: argparse.Namespace) -> float:
    """Twice the planned time of the selected scenarios, plus startup: a hang cannot run on."""
    s = args.seconds
    planned = {
        "latency": 5 * 2 * (2 * s + 1) * 1.3,
        "throughput": 5 * 2 * (s + 1),
        "apis": 2 * 2 * 3 * (s + 0.5),
        "recorder": 2 * (2 * s + 30) + 2 * max(1.0, 0.6 * s) + 10,
        "memory": 2 * args.soak_seconds + (args.outage_seconds or 4 * s) + 130,
        "streaming": READY_TIMEOUT + 4 * (2 * s + 4 * 1.3) + 30,
    }
    return 2 * sum(planned[n] for n in args.scenarios) + 3 * READY_TIMEOUT


def _wants_litellm(args: argparse.Namespace) -> bool:
    return not args.no_litellm and bool({"latency", "throughput"} & set(args.scenarios))


async def run(
    args: argparse.Namespace, workdir: Path, results: SuiteResults
) -> tuple[dict[str, float], list[str]]:
    """The main fleet serves every scenario but streaming, and is stopped before it: its idle
    PostgreSQL (autovacuum, checkpoints after ~10^5 inserts) must not share the server CPU with
    the streaming fleet, whose upstream paces chunks differently and so needs fleet of its own."""
    pinning = choose_pinning(args)
    print(f"pinning: {pinning.note}", flush=True)
    options = FleetOptions(
        latency_ms=0.0,
        chunks=20,
        chunk_spacing_ms=1.0,
        forwarder=True,
        postgres=not args.no_postgres,
        server_cpus=pinning.servers,
        litellm=_wants_litellm(args),
        search_index=not args.no_search_index,
    )
    main_scenarios = [s for s in args.scenarios if s != "streaming"]
    elapsed: dict[str, float] = {}
    notes: list[str] = []
    if main_scenarios:
        with contextlib.ExitStack() as stack:  # stops the main fleet, whatever happens
            fleet = await start_pinned(stack, workdir, options, pinning)
            notes += fleet.notes
            for note in fleet.notes:
                print(f"note: {note}", flush=True)
            print("targets: " + ", ".join(t.name for t in fleet.targets), flush=True)
            ctx = Context(args, fleet, pinning, workdir, results)
            elapsed |= await run_scenarios(ctx, main_scenarios)
    if "streaming" in args.scenarios:
        ctx = Context(args, Fleet([], 0), pinning, workdir, results)
        elapsed |= await run_scenarios(ctx, ["streaming"])
    return elapsed, notes


def _document(
    command: str,
    args: argparse.Namespace,
    results: SuiteResults,
    elapsed: dict[str, float],
    notes: list[str],
    total: float,
) -> dict[str, Any]:
    return finite(
        {
            "command": command,
            "machine": machine_info(),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "notes": notes,
            "scenario_seconds": elapsed,
            "elapsed_s": round(total, 1),
            "summary": [asdict(v) for v in verdicts(results)],
            "results": asdict(results),
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    command = shlex.join([sys.executable, "-m", "bench", *raw_argv])
    machine = machine_info()
    print(f"command: {command}")
    print(
        f"machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), Python "
        f"{machine['python']}, aiohttp {machine['aiohttp']}",
        flush=True,
    )
    if _wants_litellm(args):
        problem = ensure_venv()  # before the time budget starts: the first install takes minutes
        if problem:
            print(f"note: {problem}", flush=True)
    started = time.monotonic()
    budget = time_budget(args)
    results = SuiteResults()
    workdir = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(remove_workdir, workdir)  # registered first: runs after every stop
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                elapsed, notes = runner.run(asyncio.wait_for(run(args, workdir, results), budget))
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the servers", file=sys.stderr)
            return 130
        except TimeoutError:
            print(f"error: the run exceeded its {budget:.0f}s budget", file=sys.stderr)
            return 1
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    total = time.monotonic() - started
    print("\n== summary: the issue's targets ==")
    print(format_summary(verdicts(results)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = _document(command, args, results, elapsed, notes, total)
    args.json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    print(f"\nwrote {args.json} ({total:.0f}s total)")
    return 0
