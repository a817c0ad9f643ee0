"""What privacy costs: redaction at capture per row, and a retention pass on a large table.

    .venv/bin/python -m bench.privacy capture [--rows 2000]
    .venv/bin/python -m bench.privacy request-path [--requests 2000] [--concurrency 16]
    .venv/bin/python -m bench.privacy retention [--url postgresql://...] [--rows 10000000]
        [--batch-size 1000] [--days 180]

`capture` times `CaptureRedactor.batch` (what the recorder's writer runs on a thread, off the
request path) on clinical chat rows of ~1.4 kB carrying the kinds of personal data the rules
find, and prints microseconds per row.

`request-path` runs the real gateway (one process, SQLite) in front of the benchmark's fake
upstream twice, without and with `capture.redact: true`, sends the same chat calls (the prompt
above) and prints the client's latency: what redaction in the writer's thread costs the
requests being served meanwhile, GIL included.

`retention` seeds `--rows` interactions (created uniformly over the last 365 days, one in ten
with a feedback event) server-side with generate_series, in a throwaway pgserver unless `--url`
names a database, then runs one retention pass keeping `--days` days, while a writer inserts
200-row batches as the recorder does; it prints the pass's time and rate and the writer's
batch latency before and during the pass.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

PROMPT = (
    "Pasient: Kari Nordmann, f. 12.03.1985, fnr 01018512345. Tlf 912 34 567, e-post "
    "kari.nordmann@example.no. Henvist av Dr. Ola Hansen for korsryggsmerter i 6 uker, "
    "utstråling til venstre ben, ømhet L4-L5, ICPC-2 L03. Ibux 400 mg x 3. Kari ønsker "
    "time neste uke; ring {n} eller send til IBAN NO93 8601 1117 947. Bruk nøkkel "
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx for journal-API-et. "
)
ANSWER = (
    "Takk. Oppsummering for Kari Nordmann: lumbago med utstråling (L4-L5), ingen røde flagg. "
    "Anbefaler fysioterapi, aktivitet som tolerert og kontroll om 4 uker. Dr. Ola Hansen får "
    "kopi på kari.nordmann@example.no. Neste time: 14.04.2026 kl 10:30."
)


def capture(rows: int) -> None:
    from gateway.anonymize import Anonymizer
    from gateway.config import CaptureRedactConfig
    from gateway.privacy.capture import CaptureRedactor
    from gateway.records.interaction import Interaction

    redactor = CaptureRedactor(CaptureRedactConfig(all=True), Anonymizer())
    batch = [
        Interaction(
            id=str(uuid.uuid4()),
            created_at=datetime.now(UTC),
            endpoint="chat/completions",
            requested_model="clinic",
            request={
                "model": "clinic",
                "messages": [
                    {"role": "system", "content": "Du er en klinisk assistent. Svar kort."},
                    {"role": "user", "content": PROMPT.format(n=f"+47 4{n % 10}0 12 345")},
                ],
            },
            response={
                "id": f"chatcmpl-{n}",
                "model": "clinic",
                "choices": [{"message": {"role": "assistant", "content": ANSWER}}],
            },
        )
        for n in range(rows)
    ]
    size = sum(len(str(row.request)) + len(str(row.response)) for row in batch) / rows
    redactor.batch(batch[:50])  # warm the regex caches
    times = []
    for _ in range(3):
        started = time.perf_counter()
        redactor.batch(batch)
        times.append((time.perf_counter() - started) / rows * 1e6)
    print(f"capture redaction: {rows} rows of ~{size:.0f} chars of text each")
    print(f"  us per row: best {min(times):.0f}, median {statistics.median(times):.0f}")


async def request_path(requests: int, concurrency: int) -> None:
    for redact in (False, True):
        latencies, written = await _serve_and_load(redact, requests, concurrency)
        print(
            f"capture.redact {str(redact).lower():5}: {_summary(latencies, 'requests')},"
            f" {written} rows written"
        )


async def _serve_and_load(redact: bool, requests: int, concurrency: int) -> tuple[list, int]:
    import aiohttp
    from aiohttp import web

    from bench.fake_upstream import Settings, build_app
    from gateway.app import create_app
    from gateway.appkeys import RECORDER
    from gateway.config import parse_config

    upstream = web.AppRunner(build_app(Settings()), access_log=None)
    await upstream.setup()
    await web.TCPSite(upstream, "127.0.0.1", 0).start()
    port = upstream.addresses[0][1]
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-redact-") as folder:
        config = {
            "storage": {"url": f"sqlite:///{folder}/flywheel.db"},
            "capture": {"spool_dir": f"{folder}/spool", "redact": redact},
            "providers": {
                "up": {"type": "openai_compat", "base_url": f"http://127.0.0.1:{port}/v1"}
            },
            "models": {"clinic": {"provider": "up"}},
        }
        app = create_app(parse_config(config, source="<bench>"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
        body = {"model": "clinic", "messages": [{"role": "user", "content": PROMPT}]}
        latencies: list[float] = []
        async with aiohttp.ClientSession() as session:

            async def one() -> None:
                started = time.perf_counter()
                async with session.post(url, json=body) as answer:
                    await answer.read()
                latencies.append((time.perf_counter() - started) * 1000)

            for _ in range(20):  # warm up
                await one()
            latencies.clear()
            for first in range(0, requests, concurrency):
                await asyncio.gather(*(one() for _ in range(min(concurrency, requests - first))))
        recorder = app[RECORDER]
        await runner.cleanup()  # drains the recorder
        await upstream.cleanup()
        return latencies, recorder.written


SEED_INTERACTIONS = """
INSERT INTO interactions (id, created_at, endpoint, requested_model, "user", session, tags,
    request, response, status, http_status, prompt_tokens, completion_tokens, latency_ms,
    quality_flags, stream, usage_estimated)
SELECT gen_random_uuid(), $2::timestamptz - (random() * 365 * 86400) * interval '1 second',
    'chat/completions', 'clinic', 'user-' || (g % 100000), 's-' || (g % 1000000), '{}',
    jsonb_build_object('model', 'clinic', 'messages', jsonb_build_array(jsonb_build_object(
        'role', 'user', 'content', 'Pasient ' || g || ': korsryggsmerter, ømhet L4-L5'))),
    jsonb_build_object('choices', jsonb_build_array(jsonb_build_object('message',
        jsonb_build_object('role', 'assistant', 'content', 'Lumbago, kontroll om 4 uker.')))),
    'success', 200, 40, 12, 850.0, '[]', false, false
FROM generate_series($1::bigint, $1::bigint + $3 - 1) g
"""
SEED_FEEDBACK = """
INSERT INTO feedback (id, interaction_id, created_at, rating)
SELECT gen_random_uuid(), id, created_at + interval '1 minute', 4
FROM interactions WHERE random() < 0.1
"""


async def retention(url: str | None, rows: int, batch_size: int, days: float) -> None:
    if url is None:
        import pgserver

        with tempfile.TemporaryDirectory(prefix="flywheel-bench-pg-") as data:
            server = pgserver.get_server(data, cleanup_mode="stop")
            try:
                await _retention(server.get_uri(), rows, batch_size, days)
            finally:
                server.cleanup()
        return
    await _retention(url, rows, batch_size, days)


async def _retention(url: str, rows: int, batch_size: int, days: float) -> None:
    import asyncpg

    from gateway.config import RetentionConfig
    from gateway.privacy.retention import retention_pass
    from gateway.store import open_store

    now = datetime.now(UTC)
    async with open_store(url) as store:
        await store.migrate()
        conn = await asyncpg.connect(url)
        try:
            if not await conn.fetchval("SELECT count(*) > 0 FROM interactions"):
                started = time.perf_counter()
                for first in range(1, rows + 1, 1_000_000):
                    count = min(1_000_000, rows - first + 1)
                    await conn.execute(SEED_INTERACTIONS, first, now, count)
                    print(f"  seeded {first + count - 1:,} rows", flush=True)
                await conn.execute(SEED_FEEDBACK)
                await conn.execute("VACUUM ANALYZE interactions")
                await conn.execute("VACUUM ANALYZE feedback")
                print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
            total = await conn.fetchval("SELECT count(*) FROM interactions")
            feedback = await conn.fetchval("SELECT count(*) FROM feedback")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('interactions'))"
            )
        finally:
            await conn.close()
        print(f"interactions: {total:,} ({size}), feedback: {feedback:,}")
        policy = RetentionConfig(interactions=days, feedback=days, batch_size=batch_size)
        writer = _Writer(store)
        background = asyncio.create_task(writer.run())
        await asyncio.sleep(5)
        before = writer.take()
        started = time.perf_counter()
        deleted = await retention_pass(store, policy, now=now)
        elapsed = time.perf_counter() - started
        during = writer.take()
        background.cancel()
        gone = deleted["interactions"]
        print(f"retention pass (keep {days} days, batch {batch_size}): {dict(deleted)}")
        print(f"  {elapsed:.1f} s, {gone / elapsed:,.0f} interactions/s")
        for name, latencies in (("before", before), ("during", during)):
            print(f"  writer, 200-row batches {name} the pass: {_summary(latencies)}")


class _Writer:
    """Inserts 200-row batches back to back, as the recorder does under load."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.latencies: list[float] = []

    async def run(self) -> None:
        from gateway.records.interaction import Interaction

        while True:
            rows = [
                Interaction(
                    id=str(uuid.uuid4()),
                    created_at=datetime.now(UTC) - timedelta(seconds=n),
                    endpoint="chat/completions",
                    user="live",
                    request={"messages": [{"role": "user", "content": "live traffic"}]},
                )
                for n in range(200)
            ]
            started = time.perf_counter()
            await self.store.insert_interactions(rows)
            self.latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)

    def take(self) -> list[float]:
        taken, self.latencies = self.latencies, []
        return taken


def _summary(latencies: list[float], what: str = "batches") -> str:
    if not latencies:
        return f"no {what}"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(ordered)} {what}, p50 {statistics.median(ordered):.1f} ms,"
        f" p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.privacy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cap = commands.add_parser("capture")
    cap.add_argument("--rows", type=int, default=2000)
    path = commands.add_parser("request-path")
    path.add_argument("--requests", type=int, default=2000)
    path.add_argument("--concurrency", type=int, default=16)
    ret = commands.add_parser("retention")
    ret.add_argument("--url", help="a PostgreSQL database (default: a throwaway pgserver)")
    ret.add_argument("--rows", type=int, default=10_000_000)
    ret.add_argument("--batch-size", type=int, default=1000)
    ret.add_argument("--days", type=float, default=180)
    args = parser.parse_args()
    if args.command == "capture":
        capture(args.rows)
    elif args.command == "request-path":
        asyncio.run(request_path(args.requests, args.concurrency))
    else:
        asyncio.run(retention(args.url, args.rows, args.batch_size, args.days))


if __name__ == "__main__":
    main()
