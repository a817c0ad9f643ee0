"""Streaming under load: 100 concurrent streams of 64 chunks 20 ms apart, per target.

The fake upstream paces the chunks, so whatever a proxy adds shows as a later first chunk (TTFT)
and as uneven gaps between chunks. Both are timed on the client, per SSE event, at the moment
the read that completed the event returned; only the 64 content chunks count (not the usage
chunk or `[DONE]`, which follow the last one at once). "Added" is the target's percentile minus
direct's, as in the latency table.

Streams start staggered over one stream's duration (100 starts spread over ~1.3 s) so the chunks
of different streams do not all fall due at the same instant; each of the 100 workers then
starts its next stream as soon as one ends. Streams that began during that ramp are not counted.
This scenario needs an upstream of its own (64 chunks, 20 ms), hence a fleet of its own.

Between two targets' blocks the machine is let go quiet for longer than a Flywheel's background
turn (`SETTLE_S`): a Flywheel indexes the search text of its traffic once that stops, and on the
shared core that batch landed in the next target's streams (issue 20).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import dataclass, field

import aiohttp

from bench.closed_loop import pool
from bench.load import ANSWERED, DONE, HEADERS, request_body
from bench.procs import until_quiet
from bench.stats import Summary
from bench.targets import Fleet

STREAMS = 100
CHUNKS = 64
SPACING_MS = 20.0
# Quiet this long on end before a target's block: the search indexer looks every 2 s.
SETTLE_S = 2.5
SETTLE_LIMIT_S = 20.0


@dataclass
class StreamTally:
    ok: int = 0
    errors: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    seconds: float = 0.0
    peak_client_util: float = 0.0  # the highest share of one CPU the client used in a block
    error_examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StreamRow:
    target: str
    streams: int
    errors: int
    ttft_ms: Summary
    gap_ms: Summary
    added_ttft_p50_ms: float | None
    added_ttft_p99_ms: float | None
    added_gap_p50_ms: float | None
    added_gap_p99_ms: float | None
    client_cpu_util: float
    error_examples: list[str]


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, chunks: int
) -> tuple[float, list[float]]:
    """(TTFT ms, gaps ms) of one stream; raises ValueError when the stream is not whole."""
    start = time.perf_counter()
    arrivals: list[float] = []
    buffer = b""
    async with session.post(url, data=body, headers=HEADERS) as response:
        ANSWERED[url] += 1
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        async for data in response.content.iter_any():
            now = time.perf_counter()
            buffer += data
            while (end := buffer.find(b"\n\n")) >= 0:
                event, buffer = buffer[: end + 2], buffer[end + 2 :]
                if event.startswith(b"data: ") and event != DONE:
                    arrivals.append(now)
                elif event == DONE:
                    arrivals.append(math.inf)  # marks a whole stream
    if not arrivals or arrivals[-1] != math.inf or len(arrivals) < chunks + 1:
        raise ValueError(f"stream incomplete: {len(arrivals)} events")
    content = arrivals[:chunks]
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(content)]
    return (content[0] - start) * 1000, gaps


async def stream_load(
    session: aiohttp.ClientSession,
    url: str,
    seconds: float,
    streams: int,
    chunks: int,
    spacing_ms: float,
) -> StreamTally:
    """`streams` workers stream back to back for a ramp plus `seconds`; see the module doc."""
    body = request_body(stream=True)
    tally = StreamTally()
    loop = asyncio.get_running_loop()
    ramp = chunks * spacing_ms / 1000
    t0 = loop.time()
    counted_from, deadline = t0 + ramp, t0 + ramp + seconds

    async def worker(index: int) -> None:
        await asyncio.sleep(ramp * index / streams)
        while (began := loop.time()) < deadline:
            try:
                ttft, gaps = await one_stream(session, url, body, chunks)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                tally.errors += 1
                if len(tally.error_examples) < 3:
                    tally.error_examples.append(repr(exc))
                continue
            if began >= counted_from:
                tally.ok += 1
                tally.ttft_ms.append(ttft)
                tally.gaps_ms.extend(gaps)

    cpu0 = time.process_time()
    await asyncio.gather(*(worker(i) for i in range(streams)))
    tally.seconds = loop.time() - t0
    tally.client_cpu_s = time.process_time() - cpu0
    return tally


async def measure_streaming(
    fleet: Fleet,
    seconds: float,
    streams: int = STREAMS,
    chunks: int = CHUNKS,
    spacing_ms: float = SPACING_MS,
    rounds: int = 2,
) -> list[StreamRow]:
    """`seconds` of counted streaming per target, in `rounds` interleaved blocks."""
    tallies = {t.name: StreamTally() for t in fleet.targets}
    session = pool(streams)
    try:
        for round_no in range(rounds):
            for target in fleet.targets:
                await until_quiet(SETTLE_S, SETTLE_LIMIT_S)
                part = await stream_load(
                    session, target.url, seconds / rounds, streams, chunks, spacing_ms
                )
                total = tallies[target.name]
                total.ok += part.ok
                total.errors += part.errors
                total.ttft_ms += part.ttft_ms
                total.gaps_ms += part.gaps_ms
                total.peak_client_util = max(
                    total.peak_client_util, part.client_cpu_s / part.seconds
                )
                total.error_examples = (total.error_examples + part.error_examples)[:3]
            print(f"  streaming round {round_no + 1}/{rounds} done", flush=True)
    finally:
        await session.close()
    return build_rows(tallies)


def build_rows(tallies: dict[str, StreamTally]) -> list[StreamRow]:
    summaries = {n: (Summary.of(t.ttft_ms), Summary.of(t.gaps_ms)) for n, t in tallies.items()}
    base_ttft, base_gap = summaries["direct"]
    rows = []
    for name, tally in tallies.items():
        ttft, gap = summaries[name]
        base = name == "direct"
        rows.append(
            StreamRow(
                target=name,
                streams=tally.ok,
                errors=tally.errors,
                ttft_ms=ttft,
                gap_ms=gap,
                added_ttft_p50_ms=None if base else ttft.p50 - base_ttft.p50,
                added_ttft_p99_ms=None if base else ttft.p99 - base_ttft.p99,
                added_gap_p50_ms=None if base else gap.p50 - base_gap.p50,
                added_gap_p99_ms=None if base else gap.p99 - base_gap.p99,
                client_cpu_util=tally.peak_client_util,
                error_examples=tally.error_examples,
            )
        )
    return rows


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def format_streaming(rows: list[StreamRow]) -> str:
    lines = [
        f"{'target':<18}{'streams':>8}{'err':>5}{'ttft50':>8}{'ttft99':>8}{'+ttft99':>9}"
        f"{'gap50':>8}{'gap99':>8}{'+gap50':>8}{'+gap99':>8}{'client':>8}"
    ]
    for r in rows:
        lines.append(
            f"{r.target:<18}{r.streams:>8}{r.errors:>5}{_num(r.ttft_ms.p50):>8}"
            f"{_num(r.ttft_ms.p99):>8}{_num(r.added_ttft_p99_ms, 3):>9}{_num(r.gap_ms.p50):>8}"
            f"{_num(r.gap_ms.p99):>8}{_num(r.added_gap_p50_ms, 3):>8}"
            f"{_num(r.added_gap_p99_ms, 3):>8}{_num(100 * r.client_cpu_util, 0) + '%':>8}"
        )
        for example in r.error_examples:
            lines.append(f"    error example: {example}")
    lines.append(
        "ms. ttft = request sent -> first content chunk; gap = between consecutive content "
        "chunks (upstream spacing included); +x = target percentile - direct's; client = peak "
        "CPU share of the load generator."
    )
    return "\n".join(lines)
