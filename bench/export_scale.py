"""How an export scales: examples per second and peak memory at 10k and 100k interactions.

    .venv/bin/python -m bench.export_scale [--rows 10000 100000] [--format openai]

Each size is seeded into a fresh SQLite file, then exported in a child process of its own, so
its peak RSS (ru_maxrss) is that export's alone. Flat memory means the peak barely moves from
10k to 100k rows: the store is read in pages and records stream into the files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path


async def seed(url: str, rows: int) -> None:
    from gateway.records.feedback import Feedback
    from gateway.records.interaction import Interaction
    from gateway.store import open_store

    store = await open_store(url)
    await store.migrate()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for offset in range(0, rows, 5000):
        batch, events = [], []
        for i in range(offset, min(rows, offset + 5000)):
            interaction_id = str(uuid.uuid4())
            weeks = i % 9 + 1
            prompt = f"Patient {i}: low back pain for {weeks} weeks, ømhet L4-L5. Mail p{i}@x.no"
            batch.append(
                Interaction(
                    id=interaction_id,
                    created_at=start + timedelta(seconds=i),
                    endpoint="chat/completions",
                    requested_model="support",
                    user=f"user-{i % 2000}",
                    request={
                        "model": "support",
                        "messages": [
                            {"role": "system", "content": "You are a clinical assistant."},
                            {"role": "user", "content": prompt},
                        ],
                    },
                    response={
                        "choices": [
                            {"message": {"role": "assistant", "content": f"Lumbago, case {i}."}}
                        ]
                    },
                )
            )
            if i % 3 == 0:
                events.append(
                    Feedback(str(uuid.uuid4()), interaction_id, start, thumbs="up", rating=5)
                )
        await store.insert_interactions(batch)
        await store.insert_feedback(events)
    await store.close()


def export_child(url: str, out: str, fmt: str) -> None:
    from exporters.run import ExportRequest, run_export
    from gateway.config import AnonymizeConfig
    from gateway.store import open_store

    async def run() -> dict:
        store = await open_store(url)
        try:
            return await run_export(store, AnonymizeConfig(), ExportRequest(fmt), Path(out))
        finally:
            await store.close()

    started = time.perf_counter()
    manifest = asyncio.run(run())
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = manifest["counts"]
    print(json.dumps({"read": counts["interactions_read"], "written": counts["records_written"],
                      "seconds": seconds, "peak_rss_mib": peak_mib}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--format", default="openai")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        export_child(args.child[0], args.child[1], args.format)
        return
    print(f"{'rows':>8} {'written':>8} {'seconds':>8} {'examples/s':>11} {'peak RSS MiB':>13}")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/flywheel.db"
            asyncio.run(seed(url, rows))
            child = [sys.executable, "-m", "bench.export_scale", "--format", args.format]
            child += ["--child", url, f"{folder}/out"]
            done = subprocess.run(child, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rate = result["read"] / result["seconds"]
            print(f"{rows:>8} {result['written']:>8} {result['seconds']:>8.1f} {rate:>11.0f}"
                  f" {result['peak_rss_mib']:>13.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
