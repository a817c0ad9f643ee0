"""Load at more than one request at a time: closed-loop (N workers, each sends its next request as
soon as its last one is answered) for throughput, and paced (a fixed request rate) for soaks.

One asyncio process on the client CPU, one aiohttp session per run whose connection limit is the
concurrency, so each worker keeps one keep-alive connection. The client's own CPU use is measured
(process time / wall time): near 100% means the client, not the server, set the pace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from bench.load import ANSWERED, HEADERS, REQUEST_TIMEOUT
from bench.stats import Summary

# Above this share of one CPU the load generator itself may be the bottleneck.
CLIENT_SATURATED = 0.9


@dataclass
class LoadResult:
    """What one run of load got back. `done_at` (wall clock, time.time()) is kept only when asked:
    the recorder scenario matches it against the moment rows appear in the database."""

    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    client_cpu_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    error_examples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_util(self) -> float:
        return self.client_cpu_s / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> Summary:
        return Summary.of(self.latencies_ms)

    def add(self, other: LoadResult) -> None:
        self.ok += other.ok
        self.errors += other.errors
        self.seconds += other.seconds
        self.client_cpu_s += other.client_cpu_s
        self.latencies_ms += other.latencies_ms
        self.done_at += other.done_at
        self.error_examples = (self.error_examples + other.error_examples)[:5]


def pool(limit: int) -> aiohttp.ClientSession:
    """A session with at most `limit` connections (one per worker), kept alive between runs."""
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, timeout=REQUEST_TIMEOUT, auto_decompress=False
    )


def is_json(payload: bytes) -> bool:
    """A whole (non-streamed) answer's check: a JSON object."""
    return payload.startswith(b"{")


@dataclass(frozen=True)
class Call:
    """How to send one kind of request and judge its answer. `answered_as` is the key counted in
    `ANSWERED` (default: the URL posted to), so requests of several APIs to one Flywheel add up
    to its total for the loss check."""

    headers: Mapping[str, str] = field(default_factory=lambda: HEADERS)
    accept: Callable[[bytes], bool] = is_json
    answered_as: str | None = None


PLAIN = Call()


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    result: LoadResult,
    keep_times: bool,
    call: Call = PLAIN,
) -> None:
    start = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=call.headers) as response:
            ANSWERED[call.answered_as or url] += 1
            payload = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        result.errors += 1
        if len(result.error_examples) < 5:
            result.error_examples.append(repr(exc))
        return
    end = time.perf_counter()
    if keep_times:
        result.done_at.append(time.time())
    if response.status == 200 and call.accept(payload):
        result.ok += 1
        result.latencies_ms.append((end - start) * 1000)
    else:
        result.errors += 1
        if len(result.error_examples) < 5:
            result.error_examples.append(f"HTTP {response.status}: {payload[:200]!r}")


async def closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    keep_times: bool = False,
    call: Call = PLAIN,
) -> LoadResult:
    """`concurrency` workers send requests back to back until `seconds` have passed; requests
    in flight at the deadline finish and count (the rate divides by the time until they did)."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def worker() -> None:
        while loop.time() < deadline:
            await _one(session, url, body, result, keep_times, call)

    cpu0, t0 = time.process_time(), loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = loop.time() - t0
    result.client_cpu_s = time.process_time() - cpu0
    return result


async def paced(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    max_in_flight: int = 256,
) -> LoadResult:
    """Start a request every 1/`rate` seconds for `seconds` (open loop), at most
    `max_in_flight` at once; a server slower than `rate` shows as an achieved rate below it."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def send() -> None:
        try:
            await _one(session, url, body, result, False)
        finally:
            gate.release()

    cpu0, t0 = time.process_time(), loop.time()
    sent = 0
    while (now := loop.time()) < t0 + seconds:
        due = t0 + sent / rate
        if due > now:
            await asyncio.sleep(due - now)
        await gate.acquire()
        task = asyncio.create_task(send())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    if tasks:
        await asyncio.gather(*tasks)
    result.seconds = loop.time() - t0
    result.client_cpu_s = time.process_time() - cpu0
    return result
