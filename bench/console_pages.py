"""How fast the console's pages answer on a large store (issue 16: under 300 ms at 1M rows).

    .venv/bin/python -m bench.console_pages --engine sqlite --rows 1000000 [--db PATH]
    .venv/bin/python -m bench.console_pages --engine postgres --rows 1000000 [--url URL]

Seeds `--rows` interactions spread over the last 30 days (a split model with two variants,
3% failures, a few quality flags, feedback on 5%) into a fresh database, unless the database
already holds that many (reuse a seeded SQLite file with `--db`); then starts the real gateway
on loopback with the console open (no keys) and asks each page `--repeat` times after one
warm-up, one request at a time. Prints the median, p95 and max per page, and JSON with `--json`.
PostgreSQL: `--url`, else FLYWHEEL_TEST_DATABASE_URL, else a pgserver in `--pgdata` (kept, so
a seeded database is reused) or a throwaway one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

BATCH = 10_000
SPAN = timedelta(days=30)
MODELS = ("support", "support", "support", "chat-a", "chat-b")


def _interaction(i: int, rows: int, now: datetime) -> Any:
    from gateway.records.interaction import ERROR, SUCCESS, Interaction

    model = MODELS[i % len(MODELS)]
    failed = i % 33 == 0
    flags = ["truncated"] if i % 97 == 0 else []
    if i % 211 == 0:
        flags.append("unrendered_template")
    return Interaction(
        id=str(uuid.uuid4()),
        created_at=now - SPAN * (rows - i) / rows,
        endpoint="chat/completions",
        requested_model=model,
        variant=("a" if i % 2 else "b") if model == "support" else None,
        provider="demo",
        upstream_model="flywheel-demo-1",
        user=f"user-{i % 5000}",
        session=f"session-{i % 20000}",
        tags={"team": "search" if i % 3 else "ads"},
        request={
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a helpful support assistant."},
                {"role": "user", "content": f"Ticket {i}: my order {i * 7} has not arrived."},
            ],
        },
        response=None
        if failed
        else {"choices": [{"message": {"role": "assistant", "content": f"Sorry about {i}."}}]},
        status=ERROR if failed else SUCCESS,
        http_status=502 if failed else 200,
        error_type="upstream_error" if failed else None,
        error_message="Upstream provider 'demo' failed: 503" if failed else None,
        prompt_tokens=40 + i % 50,
        completion_tokens=10 + i % 30,
        cost_usd=0.0001 * (1 + i % 7),
        latency_ms=200.0 + (i * 37) % 1800,
        ttft_ms=80.0 + (i * 13) % 400,
        quality_flags=flags,
    )


async def build_search_index(url: str) -> float:
    """Seconds to index every row not indexed yet for text search (the console's background
    indexer does the same, a batch at a time), so that pages are measured on a full index."""
    from gateway.store import open_store
    from gateway.store.indexer import SearchIndexer

    store = await open_store(url)
    try:
        await store.migrate()
        started = time.perf_counter()
        indexed = await SearchIndexer(store, batch=5000, pause=0).run_once()
        took = time.perf_counter() - started
        print(f"indexed {indexed:,} rows for text search in {took:.0f} s", flush=True)
        return took
    finally:
        await store.close()


async def seed(url: str, rows: int) -> float:
    """Seconds spent; nothing when the database already holds `rows` interactions."""
    from gateway.ids import uuid7
    from gateway.records.feedback import Feedback
    from gateway.store import open_store

    store = await open_store(url)
    try:
        await store.migrate()
        existing = await _count(store)
        if existing >= rows:
            print(f"reusing {existing:,} interactions already stored")
            return 0.0
        started = time.perf_counter()
        now = datetime.now(UTC)
        for offset in range(existing, rows, BATCH):
            batch = [_interaction(i, rows, now) for i in range(offset, min(rows, offset + BATCH))]
            await store.insert_interactions(batch)
            events = [
                Feedback(
                    id=str(uuid7()),
                    interaction_id=it.id,
                    created_at=it.created_at + timedelta(minutes=1),
                    thumbs="up" if n % 3 else "down",
                    rating=1 + n % 5,
                    source="bench",
                )
                for n, it in enumerate(batch)
                if n % 20 == 0
            ]
            await store.insert_feedback(events)
            if (offset // BATCH) % 10 == 0:
                print(f"  seeded {offset + len(batch):,}", flush=True)
        return time.perf_counter() - started
    finally:
        await store.close()


async def _count(store: Any) -> int:
    from gateway.store.queries import TimeWindow

    usage = await store.usage_by_variant(TimeWindow())
    return sum(group["interactions"] for group in usage)


def pages(interaction_id: str) -> list[str]:
    return [
        "/console/",
        "/console/?range=1h",
        "/console/?range=7d",
        "/console/?range=30d",
        "/console/?range=all",
        "/console/interactions",
        "/console/interactions?model=support&variant=a",
        "/console/interactions?user=user-42",
        "/console/interactions?status=error",
        "/console/interactions?has_feedback=true&min_rating=4",
        "/console/interactions?has_feedback=true&min_rating=1",
        "/console/interactions?thumbs=down",
        "/console/interactions?outcome=accepted",
        "/console/interactions?quality_flag=unrendered_template",
        "/console/interactions?q=Ticket%20999999",
        "/console/interactions?q=has%20not%20arrived",
        "/console/interactions?q=zz",
        "/console/interactions?q=z",
        f"/console/interactions/{interaction_id}",
        "/console/failures",
        "/console/experiments",
        "/console/datasets",
    ]


async def measure(url: str, repeat: int) -> list[dict[str, Any]]:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.config import parse_config

    config = parse_config(
        {
            "storage": {"url": url},
            "capture": {"enabled": False},
            "providers": {"demo": {"type": "demo"}},
            "models": {
                "support": {
                    "variants": [
                        {"name": "a", "provider": "demo", "model": "flywheel-demo-1"},
                        {"name": "b", "provider": "demo", "model": "flywheel-demo-1"},
                    ]
                },
                "chat-a": {"provider": "demo"},
                "chat-b": {"provider": "demo"},
            },
        },
        source="<bench>",
    )
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    results = []
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            listing = await _get(http, f"{base}/console/interactions")
            newest = listing.split('data-id="', 1)[1].split('"', 1)[0]
            for path in pages(newest):
                await _get(http, base + path)  # warm-up: caches, scipy's import
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    await _get(http, base + path)
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                results.append(
                    {
                        "page": path,
                        "median_ms": round(statistics.median(times), 1),
                        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
                        "max_ms": round(times[-1], 1),
                    }
                )
                print(f"  {results[-1]}", flush=True)
    finally:
        await runner.cleanup()
    return results


async def _get(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        text = await response.text()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {text[:300]}")
        return text


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    if args.engine == "sqlite":
        if args.db:
            yield f"sqlite:///{args.db}"
            return
        with tempfile.TemporaryDirectory(prefix="flywheel-console-bench-") as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    import os

    url = args.url or os.environ.get("FLYWHEEL_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    if args.pgdata:
        server = pgserver.get_server(args.pgdata, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()
        return
    with tempfile.TemporaryDirectory(prefix="flywheel-console-pg-") as data:
        server = pgserver.get_server(data, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with database(args) as url:
        seeded = await seed(url, args.rows)
        print(f"seeded in {seeded:.0f} s", flush=True)
        indexed = await build_search_index(url)
        print("measuring", flush=True)
        results = await measure(url, args.repeat)
    return {
        "engine": args.engine,
        "rows": args.rows,
        "seed_seconds": seeded,
        "index_seconds": indexed,
        "pages": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--db", help="SQLite file to seed or reuse")
    parser.add_argument("--url", help="PostgreSQL URL (its database is seeded)")
    parser.add_argument("--pgdata", help="pgserver data folder to seed or reuse")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
