"""The recorder: how many rows per second reach the store, and how long after the answer.

End to end: drive one Flywheel at concurrency 128 for a while, polling the row count every 50 ms
from the benchmark, until the count equals the requests answered. rows/s = rows written / (first
request -> the poll that saw the last row). That number is capped by the gateway's request rate,
so it shows the recorder keeps up rather than its ceiling. Lag: rows are written in the order
requests were answered (one FIFO queue), so the k-th answer's row is visible at the first poll
whose count reached k; lag = that poll's time - the moment the client got the k-th answer. It is
an approximation, coarse by the 50 ms poll interval (and the count query's own time).

Ceiling: `open_store(url)` + `insert_interactions` in batches of 500 synthetic rows shaped like
the gateway's (same Store code the recorder calls), for a few seconds, in the benchmark process
on the client CPU, into a database of its own (PostgreSQL on the server CPU, as a database on
its own host would be). rows/s = rows / time spent inside insert calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse, urlunparse

import asyncpg

from bench.closed_loop import closed_loop, pool
from bench.load import ANSWERED, request_body
from bench.rows import RowCounter, wait_for_rows
from bench.stats import Summary
from bench.targets import Target
from gateway.ids import uuid7
from gateway.records.interaction import Interaction
from gateway.store import open_store

POLL_S = 0.05
MICRO_BATCH = 500
MICRO_DB = "bench_micro"


@dataclass(frozen=True)
class EndToEnd:
    target: str
    requests: int
    errors: int
    rows: int
    seconds_to_last_row: float
    rows_per_s: float
    lag_ms: Summary
    drain_s: float  # from the end of load to the last row


@dataclass(frozen=True)
class Micro:
    engine: str
    rows: int
    insert_seconds: float
    rows_per_s: float
    batch_ms: Summary


async def end_to_end(target: Target, seconds: float, concurrency: int = 128) -> EndToEnd:
    assert target.db_url is not None
    counter = RowCounter(target.db_url)
    baseline = await counter.count()
    answered_before = ANSWERED[target.url]
    polls: list[tuple[float, int]] = []
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # a failed poll is just a missing point
                polls.append((time.time(), await counter.count() - baseline))
            await asyncio.sleep(POLL_S)

    poller = asyncio.create_task(poll())
    started = time.time()
    session = pool(concurrency)
    try:
        load = await closed_loop(
            session, target.url, request_body(False), concurrency, seconds, keep_times=True
        )
    finally:
        await session.close()
    load_done = time.time()
    expected = ANSWERED[target.url] - answered_before
    await wait_for_rows(counter, baseline + expected, within_s=60, interval=POLL_S)
    await asyncio.sleep(2 * POLL_S)
    stop.set()
    await poller
    await counter.close()
    rows = polls[-1][1] if polls else 0
    last_row_at = next((t for t, n in polls if n >= rows), time.time())
    return EndToEnd(
        target=target.name,
        requests=expected,
        errors=load.errors,
        rows=rows,
        seconds_to_last_row=last_row_at - started,
        rows_per_s=rows / (last_row_at - started),
        lag_ms=Summary.of(_lags(sorted(load.done_at), polls)),
        drain_s=max(0.0, last_row_at - load_done),
    )


def _lags(done_at: list[float], polls: list[tuple[float, int]]) -> list[float]:
    """Lag of the k-th answer = first poll with count >= k, minus when it was answered."""
    lags, i = [], 0
    for k, answered_at in enumerate(done_at, start=1):
        while i < len(polls) and polls[i][1] < k:
            i += 1
        if i == len(polls):
            break  # never seen: the loss check reports it
        lags.append(max(0.0, polls[i][0] - answered_at) * 1000)
    return lags


def synthetic(n: int) -> list[Interaction]:
    """Rows shaped like the ones the gateway records for the benchmark's request."""
    request = {
        "model": "bench-upstream",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello in one short sentence."},
        ],
        "max_tokens": 32,
        "temperature": 0,
    }
    response = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "bench-upstream",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! A fixed benchmark answer."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32},
    }
    now = datetime.now(UTC)
    return [
        Interaction(
            id=str(uuid7()),
            created_at=now,
            endpoint="chat/completions",
            requested_model="bench",
            provider="fake",
            upstream_model="bench-upstream",
            request=request,
            response=response,
            response_id="chatcmpl-bench",
            finish_reason="stop",
            prompt_tokens=12,
            completion_tokens=20,
            cost_usd=9.2e-06,
            latency_ms=0.8,
        )
        for _ in range(n)
    ]


def micro_url(db_url: str, workdir_db: str) -> str:
    """A database beside the gateway's: another file for SQLite, another database for PG."""
    if db_url.startswith("sqlite:"):
        return "sqlite:///" + workdir_db
    return urlunparse(urlparse(db_url)._replace(path="/" + MICRO_DB))


async def _create_pg_database(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", MICRO_DB)
        if not exists:
            await conn.execute(f"CREATE DATABASE {MICRO_DB}")
    finally:
        await conn.close()


async def micro(db_url: str, workdir_db: str, seconds: float) -> Micro:
    """Insert batches of 500 into a fresh store of the same engine for `seconds`."""
    if not db_url.startswith("sqlite:"):
        await _create_pg_database(db_url)
    store = await open_store(micro_url(db_url, workdir_db))
    try:
        await store.migrate()
        await store.insert_interactions(synthetic(MICRO_BATCH))  # warm-up: connection, plans
        batch_ms: list[float] = []
        rows = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            batch = synthetic(MICRO_BATCH)  # built outside the timed call
            start = time.perf_counter()
            await store.insert_interactions(batch)
            batch_ms.append((time.perf_counter() - start) * 1000)
            rows += len(batch)
    finally:
        await store.close()
    spent = sum(batch_ms) / 1000
    return Micro(store.engine, rows, spent, rows / spent, Summary.of(batch_ms))


def format_recorder(e2e: list[EndToEnd], micros: list[Micro]) -> str:
    lines = ["end to end (concurrency 128; rows/s capped by the gateway's request rate):"]
    for e in e2e:
        lines.append(
            f"  {e.target:<18} requests {e.requests:>6}  rows {e.rows:>6}  errors {e.errors}  "
            f"{e.rows_per_s:>7.0f} rows/s  lag p50 {e.lag_ms.p50:.0f} ms  p99 "
            f"{e.lag_ms.p99:.0f} ms  max {e.lag_ms.max:.0f} ms  drain {e.drain_s:.2f} s"
        )
    lines.append(f"store ceiling (insert_interactions, batches of {MICRO_BATCH}, client CPU):")
    for m in micros:
        lines.append(
            f"  {m.engine:<18} {m.rows:>7} rows in {m.insert_seconds:.2f} s of inserts -> "
            f"{m.rows_per_s:>7.0f} rows/s  (batch p50 {m.batch_ms.p50:.1f} ms, "
            f"p99 {m.batch_ms.p99:.1f} ms)"
        )
    lines.append(
        f"lag = first {POLL_S * 1000:.0f} ms poll whose row count covers the k-th answer - when "
        "the client got it (rows land in answer order); +-50 ms resolution."
    )
    return "\n".join(lines)
