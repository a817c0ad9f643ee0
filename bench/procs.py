"""Child processes of the benchmark: start, wait until ready, pin to CPUs, read CPU time, stop.

Children run in their own session, so a Ctrl-C in the terminal reaches only the driver, which
then stops them itself (SIGTERM, then SIGKILL after a timeout): nothing is left behind.

CPU time comes from /proc/<pid>/stat (utime + stime, plus cutime + cstime of reaped children),
summed over the process and its descendants. Unlike wall time it does not grow when the
hypervisor steals the CPU, so it is the steadier measure of what a request costs a server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# A machine using less than this share of its CPUs is quiet.
QUIET_SHARE = 0.05


def machine_busy() -> tuple[float, float]:
    """CPU time (busy, total) of every CPU since boot, in ticks (/proc/stat's first line)."""
    with open("/proc/stat") as stat:
        fields = [int(n) for n in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


async def until_quiet(span: float, limit: float, window: float = 0.25) -> float:
    """Wait until the machine has been quiet for `span` seconds on end (at most `limit`
    seconds); the seconds waited. What a target does once its traffic stops (the search index
    catching up on the backlog it let wait, a database's vacuum) then runs before the next
    target's block, not in it, where it would count against a process it does not belong to."""
    loop = asyncio.get_running_loop()
    started = quiet_since = loop.time()
    busy, total = machine_busy()
    while loop.time() - started < limit:
        await asyncio.sleep(window)
        now_busy, now_total = machine_busy()
        share = (now_busy - busy) / max(1, now_total - total)
        busy, total = now_busy, now_total
        if share >= QUIET_SHARE:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= span:
            break
    return loop.time() - started


class BenchError(Exception):
    """A benchmark step failed; the message says which and where to look."""


@dataclass
class Child:
    """One server process; its stdout and stderr go to `log_path`."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise BenchError(
                f"{self.name} exited with code {code}; last lines of {self.log_path}:\n"
                + self.log_tail()
            )


def spawn(name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str]) -> Child:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C goes to the driver only; it stops us in order
        )
    return Child(name, popen, log_path)


def stop(child: Child, timeout: float = 5.0) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Safe to call on a dead process."""
    if child.popen.poll() is not None:
        return
    child.popen.terminate()
    try:
        child.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        child.popen.kill()
        child.popen.wait(timeout)


def free_port() -> int:
    """A loopback port that is free right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_tcp(child: Child, port: int, within_s: float) -> None:
    """Until `port` accepts a connection; fails early if the child dies."""
    deadline = time.monotonic() + within_s
    while True:
        child.check_alive()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                message = f"{child.name} did not listen on :{port} in {within_s:.0f}s"
                raise BenchError(message) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def wait_http(child: Child, url: str, within_s: float) -> None:
    """Until GET `url` answers 200 (Flywheel's /healthz answers once startup is done)."""
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            child.check_alive()
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{child.name} was not ready at {url} in {within_s:.0f}s; log:\n"
                    + child.log_tail()
                )
            await asyncio.sleep(0.1)


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name (field 2) may contain spaces; everything after its ')' is fixed.
    return text[text.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    """`pid`'s children, from each of its threads' `children` file: scanning every process's
    stat took 1.5 ms a call, and the export bench's memory sampler called it five times a
    second beside the export it measured. The scan stays for a kernel without those files."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # exited
    found: list[int] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{task}"):
                continue  # the thread ended while we looked
            return _children_by_scan(pid)  # no CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return found


def _children_by_scan(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat_fields(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (PostgreSQL forks a backend per connection)."""
    result, todo = [], [pid]
    while todo:
        current = todo.pop()
        result.append(current)
        todo.extend(_children(current))
    return result


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """User + system CPU seconds of `pid` (all its threads) and of its reaped children; with
    `tree`, also of its live descendants. Returns 0.0 for a process that is gone."""
    total = 0
    for member in descendants(pid) if tree else [pid]:
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        # Fields 14-17 of stat(5): utime, stime, cutime, cstime; index 0 here is field 3.
        total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


def pin(pid: int, cpus: Iterable[int], tree: bool = False) -> None:
    """Set the CPU affinity of every thread of `pid` (and, with `tree`, of its descendants).

    sched_setaffinity acts on one thread, so each task is set; threads and processes created
    later inherit the affinity of their creator.
    """
    cpu_set = set(cpus)
    for member in descendants(pid) if tree else [pid]:
        try:
            tasks = [int(t) for t in os.listdir(f"/proc/{member}/task")]
        except OSError:
            continue
        for task in tasks:
            try:
                os.sched_setaffinity(task, cpu_set)
            except OSError:
                continue  # the thread ended meanwhile
