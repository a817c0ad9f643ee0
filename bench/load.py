"""The load generator: one request at a time, over a raw keep-alive aiohttp session.

A raw ClientSession (not the openai SDK) keeps the client's own cost small and identical for
every target, so differences between targets are differences between servers. Concurrency 1
measures pure added latency: no queueing, no contention between requests.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import orjson

from bench.procs import BenchError

DONE = b"data: [DONE]\n\n"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}

# Requests that got an HTTP answer (any status), per URL, over the whole process: the loss check
# compares each Flywheel's row count with this, and every load generator counts here, warm-ups
# included, so no scenario has to remember to. A Flywheel's count is under its target URL (chat's):
# the `apis` scenario counts its Responses and Messages requests there too (`Call.answered_as`).
ANSWERED: Counter[str] = Counter()


def request_body(stream: bool) -> bytes:
    """The same small chat request for every target. Streams ask for usage themselves, so the
    upstream's answer is byte-for-byte the same whether or not the gateway is in the path."""
    body: dict[str, object] = {
        "model": "bench",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello in one short sentence."},
        ],
        "max_tokens": 32,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


@dataclass(frozen=True)
class Sample:
    """Wall milliseconds to the last byte, and (streams only) to the first body chunk."""

    total_ms: float
    first_ms: float | None = None


def open_session() -> aiohttp.ClientSession:
    # One connection per target, kept alive across requests; no decompression to pay for.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, enable_cleanup_closed=False)
    return aiohttp.ClientSession(
        connector=connector, timeout=REQUEST_TIMEOUT, auto_decompress=False
    )


async def call_nonstream(session: aiohttp.ClientSession, url: str, body: bytes) -> Sample:
    start = time.perf_counter()
    async with session.post(url, data=body, headers=HEADERS) as response:
        ANSWERED[url] += 1
        payload = await response.read()
        end = time.perf_counter()
    if response.status != 200 or not payload.startswith(b"{"):
        raise BenchError(f"{url}: HTTP {response.status}: {payload[:300]!r}")
    return Sample((end - start) * 1000)


async def call_stream(session: aiohttp.ClientSession, url: str, body: bytes) -> Sample:
    start = time.perf_counter()
    first: float | None = None
    tail = b""
    async with session.post(url, data=body, headers=HEADERS) as response:
        ANSWERED[url] += 1
        async for chunk in response.content.iter_any():
            if first is None:
                first = time.perf_counter()
            tail = (tail + chunk)[-len(DONE) :]
        end = time.perf_counter()
    if response.status != 200 or first is None or tail != DONE:
        raise BenchError(f"{url}: HTTP {response.status}, stream did not end with [DONE]")
    return Sample((end - start) * 1000, (first - start) * 1000)


async def run_block(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, seconds: float
) -> list[Sample]:
    """Back-to-back requests to one target until `seconds` have passed (at least one)."""
    call = call_stream if stream else call_nonstream
    samples = []
    deadline = time.perf_counter() + seconds
    while True:
        try:
            samples.append(await call(session, url, body))
        except (aiohttp.ClientError, TimeoutError) as exc:
            # A failed request invalidates the comparison: stop the run and say where.
            raise BenchError(f"{url}: {exc!r}") from exc
        if time.perf_counter() >= deadline:
            return samples
