"""Where each microsecond of a request goes: one Flywheel sampled by py-spy under load (issue 20).

    make profile
    .venv/bin/python -m bench.profile [--api chat|responses|messages] [--stream]
        [--target sqlite|postgres|forwarder] [--concurrency 32] [--seconds 18] [--raw FILE]

Starts the fake upstream and one Flywheel as `make bench` does (bench/targets.py, PostgreSQL
from pgserver), or the bare forwarder, the floor (`--target forwarder`, chat only), pinned the
same way (this driver on CPU 0, the servers on CPU 1), warms it up,
then drives it with the benchmark's closed loop while py-spy samples every busy thread of the
worker at `RATE_HZ`. Printed, in microseconds per request answered:

- `own`: each Flywheel function, charged with every sample whose innermost Flywheel frame it is,
  so the aiohttp, driver and C work a function asks for counts as its own. That is what a change
  to the function can save. Samples with no Flywheel frame are listed by their innermost frame.
- `inclusive`: the largest frames with everything below them, Flywheel's or not.

The fake upstream runs on the driver's CPU, not the worker's (`--upstream-on-server-cpu` puts
it back, as `make bench` has it): py-spy counts a thread that is runnable but not running as
busy, and a worker preempted inside its send() by the upstream it had just woken sampled as
~130 µs a request of writing to the upstream, against ~30 µs of system CPU measured in all (16 µs
sampled with the upstream moved).

Samples of a thread waiting for work are left out. The event loop's own line still holds its
waits in epoll, which py-spy cannot tell from its socket I/O, and py-spy pauses the worker for
each sample: the sampled total runs above the worker's CPU per request, which is printed beside
it (read from /proc over the same window). Compare rows, and runs taken the same way. py-spy
must be allowed to ptrace the worker (root, or `--cap-add SYS_PTRACE` in a container). `--raw`
keeps the samples (`py-spy record -f raw`) for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.apis import APIS
from bench.closed_loop import closed_loop, pool
from bench.latency import choose_pinning
from bench.procs import BenchError, cpu_seconds, pin
from bench.scenarios import start_pinned
from bench.targets import CHAT_PATH, FleetOptions, remove_workdir

ENGINES = ("sqlite", "postgres")
FORWARDER = "forwarder"
RATE_HZ = 200
WARMUP_S = 3.0
OWN_CODE = ("gateway/", "exporters/", "bench/forwarder.py")
# Innermost frames of a thread waiting, not working: py-spy's idle detection misses a thread
# blocked in C on its queue (the store's and the recorder's threads between jobs).
WAITING = frozenset({"_worker (concurrent/futures/thread.py)"})
# Where the event loop itself runs (uvloop is C): its socket I/O, and its waits in epoll.
LOOP = "run_worker (gateway/server.py)"
_LINE = re.compile(r":\d+\)$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    add = parser.add_argument
    add("--api", choices=[api.name for api in APIS], default="chat")
    add("--stream", action="store_true", help="streamed answers (default: whole ones)")
    add("--target", choices=(*ENGINES, FORWARDER), default="sqlite", help="a Flywheel's store")
    add("--concurrency", type=int, default=32)
    add("--seconds", type=int, default=18, help="sampled seconds under load")
    add("--top", type=int, default=40, help="rows per table")
    add("--raw", type=Path, help="keep py-spy's raw samples in this file")
    add("--no-pin", action="store_true")
    add("--client-cpu", type=int, default=0)
    add("--server-cpu", type=int, default=1)
    add("--upstream-on-server-cpu", action="store_true", help="as make bench pins it")
    args = parser.parse_args(argv)
    if args.target == FORWARDER and args.api != "chat":
        parser.error("the forwarder relays chat completions only")
    return args


def py_spy() -> str:
    found = Path(sys.executable).parent / "py-spy"
    if not found.exists():
        raise BenchError("py-spy is not installed: `make profile` installs it (uv group profile)")
    return str(found)


async def profile(args: argparse.Namespace, workdir: Path) -> tuple[Path, int, float, str]:
    """Sample the worker under load; the samples' file, requests answered, the worker's CPU
    seconds over the sampled window, and what was measured."""
    pinning = choose_pinning(args)
    options = FleetOptions(
        latency_ms=0.0,
        chunks=20,
        chunk_spacing_ms=1.0,
        forwarder=args.target == FORWARDER,
        postgres=args.target == "postgres",
        server_cpus=pinning.servers,
    )
    api = next(api for api in APIS if api.name == args.api)
    with contextlib.ExitStack() as stack:
        fleet = await start_pinned(stack, workdir, options, pinning)
        if pinning.client and not args.upstream_on_server_cpu:
            pin(fleet.upstream_pid, pinning.client)
        name = FORWARDER if args.target == FORWARDER else f"flywheel-{args.target}"
        target = fleet.get(name)
        if target is None:
            raise BenchError(f"{name} did not start: {'; '.join(fleet.notes)}")
        url = target.url.removesuffix(CHAT_PATH) + api.path
        call = api.call(args.stream, url)
        body = api.body(args.stream)
        raw = args.raw or workdir / "samples.txt"
        async with pool(args.concurrency) as session:
            await closed_loop(session, url, body, args.concurrency, WARMUP_S, call=call)
            command = [py_spy(), "record", "-r", str(RATE_HZ), "-f", "raw", "-o", str(raw)]
            command += ["-d", str(args.seconds), "-p", str(target.pid)]
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            await asyncio.sleep(0.5)  # attached before the first request counts
            cpu_before = cpu_seconds(target.pid)
            load = await closed_loop(session, url, body, args.concurrency, args.seconds, call=call)
            cpu = cpu_seconds(target.pid) - cpu_before
        _, errors = spy.communicate(timeout=args.seconds + 30)
        if spy.returncode != 0 or not raw.exists():
            raise BenchError(f"py-spy failed ({spy.returncode}): {errors.decode()[-500:]}")
        if load.errors:
            raise BenchError(f"{load.errors} requests failed, e.g. {load.error_examples[:2]}")
    mode = "stream" if args.stream else "whole answers"
    what = f"{args.api}, {mode}, {args.target}, c={args.concurrency}, {load.rate:.0f} req/s"
    return raw, load.ok, cpu, what


def tables(raw: Path, requests: int, top: int) -> tuple[list[str], list[str], float]:
    """The `own` and `inclusive` rows, and the sampled µs per request in all."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if frames[-1] in WAITING:
            continue
        total += samples
        mine = [frame for frame in frames if _in_own_code(frame)]
        if mine and mine[-1] == LOOP:
            own["[the event loop: uvloop's socket I/O, and its waits in epoll]"] += samples
        else:
            own[mine[-1] if mine else f"[not Flywheel] {frames[-1]}"] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    per_request = 1e6 / RATE_HZ / requests

    def rows(counts: Counter[str]) -> list[str]:
        return [f"{n * per_request:9.1f}  {name[:130]}" for name, n in counts.most_common(top)]

    return rows(own), rows(inclusive), total * per_request


def _in_own_code(frame: str) -> bool:
    where = frame.rpartition(" (")[2]
    return where.startswith(OWN_CODE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="flywheel-profile-"))
    try:
        raw, requests, cpu, what = asyncio.run(profile(args, workdir))
        own, inclusive, sampled = tables(raw, requests, args.top)
    except BenchError as exc:
        print(f"profile failed: {exc}", file=sys.stderr)
        return 1
    finally:
        remove_workdir(workdir)
    print(f"{what}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"worker CPU per request: {cpu * 1e6 / requests:.1f} µs measured, {sampled:.1f} sampled")
    print("\nµs/request  own: Flywheel's function and what it calls outside Flywheel")
    print("\n".join(own))
    print("\nµs/request  inclusive")
    print("\n".join(inclusive))
    return 0


if __name__ == "__main__":
    sys.exit(main())
