"""How an export scales: examples per second and peak memory at 10k and 100k interactions.

    .venv/bin/python -m bench.export_scale [--rows 10000 100000] [--format openai]
        [--jobs 1 2] [--prompts 2000] [--prompt-kb 1] [--baseline] [--shards N] [--postgres]
        [--stages]

Each size is seeded into a fresh SQLite file (`--postgres`: a PostgreSQL server of its own), then
exported in a child process of its own, so its peak memory is that export's alone. Flat memory
means the peak barely moves from 10k to 100k rows: the store is read in pages and records stream
into the files.

Realistic variety (issue 21): a row is one of five system prompts, one of `--prompts` distinct
user messages (~1 KB of corpus lines dense with personal data, `--prompt-kb 10` for ~10 KB), one
of their answers, then a short turn and answer of the row's own (a case number, an e-mail), so no
two rows are the same. `--prompts` equal to `--rows` makes every long text distinct. CPU seconds
are the exporting process's and its workers', for a machine shared with other work; `parent CPU
s` is the exporting process's alone (reading the store, dedup, the split, writing): with more
jobs it is the part that does not shrink. `--baseline` times the path before issue 21: no span
cache, no pre-checks, every record's tokens counted. `--shards N` also exports each size as N
shards (`--shard i/N`, the last `--jobs` each) and merges them: the slowest shard plus the merge
is what N machines take, and the merged records must be the unsharded export's, byte for byte.
`--stages` also prints where one process's CPU goes, per row (`stages`): reading the store,
redaction, building and checking the records; the rest of a 1-job export's CPU per row is
dedup, the split and writing.

Peak memory is each process's own high-water mark (VmHWM), not `ru_maxrss`: Linux carries the
peak of the process that forked into the `ru_maxrss` of what it executes, so the export child
reported the seeding's peak as its own, and that grows with the rows seeded (156 MiB at 40,000
distinct prompts, where the export itself peaks at ~100 MiB: issue 21). A worker's is read
from /proc while it runs, every `SAMPLE_S`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

LINES_PER_KB = 22
# How often the export child reads its workers' peaks; only growth in a worker's last such
# interval before it exits can be missed.
SAMPLE_S = 0.2


def texts(count: int, lines: int, seed: int) -> list[str]:
    from bench.anonymize_recall import DEFAULT_CORPUS, load_corpus

    corpus = [example.text for example in load_corpus(DEFAULT_CORPUS)]
    rng = random.Random(seed)
    return ["\n".join(rng.sample(corpus, lines)) for _ in range(count)]


async def seed(url: str, rows: int, prompts: int, prompt_kb: int = 1) -> None:
    from gateway.records.feedback import Feedback
    from gateway.records.interaction import Interaction
    from gateway.store import open_store

    store = await open_store(url)
    await store.migrate()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    systems = [f"You are a clinical assistant for clinic {n}. Answer briefly." for n in range(5)]
    # A corpus line is ~47 bytes of UTF-8 with its line break: 22 lines make ~1 KB. (Until
    # 2026-11-30 this was 14 lines, ~650 bytes, though the docs said 1 KB.)
    questions = texts(prompts, LINES_PER_KB * prompt_kb, seed=1)
    answers = texts(max(prompts // 4, 1), 3, seed=2)
    for offset in range(0, rows, 5000):
        batch, events = [], []
        for i in range(offset, min(rows, offset + 5000)):
            interaction_id = str(uuid.uuid4())
            # The long texts repeat (one of `prompts` questions, one of their answers); the
            # last turn is the row's own, so no two rows are duplicates.
            history = [
                {"role": "system", "content": systems[i % 5]},
                {"role": "user", "content": questions[i % prompts]},
                {"role": "assistant", "content": answers[i % len(answers)]},
                {"role": "user", "content": f"Case {i}: please reply to p{i}@x.no"},
            ]
            batch.append(
                Interaction(
                    id=interaction_id,
                    created_at=start + timedelta(seconds=i),
                    endpoint="chat/completions",
                    requested_model="support",
                    user=f"user-{i % 2000}",
                    request={"model": "support", "messages": history},
                    response={
                        "choices": [
                            {"message": {"role": "assistant", "content": f"Done for case {i}."}}
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


def use_baseline() -> None:
    """The path before issue 21, for a before/after: no cache, no pre-checks, every token."""
    import dataclasses

    from exporters import prepare, privacy
    from gateway.anonymize import engine

    original = engine.Anonymizer.__init__

    def plain(self: engine.Anonymizer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "cache_size": 0})
        self.rules = tuple(dataclasses.replace(rule, needs=None) for rule in self.rules)

    engine.Anonymizer.__init__ = plain  # type: ignore[method-assign]
    privacy.CACHE_TEXTS = 0

    def too_long(fmt: Any, record: dict[str, Any], max_tokens: int, size: int) -> bool:
        tokens = fmt.tokens(record)
        return tokens is not None and tokens > max_tokens

    prepare.too_long = too_long


def export_child(
    url: str, out: str, fmt: str, jobs: int, baseline: bool, shard: str | None = None
) -> None:
    from exporters.run import ExportRequest, run_export
    from exporters.shards import Shard
    from gateway import collector
    from gateway.config import AnonymizeConfig
    from gateway.store import open_store

    if baseline:
        use_baseline()
    else:
        collector.settle()  # as `flywheel export` does

    async def run() -> dict:
        store = await open_store(url)
        try:
            request = ExportRequest(fmt, shard=Shard.parse(shard) if shard else None)
            return await run_export(store, AnonymizeConfig(), request, Path(out), jobs=jobs)
        finally:
            await store.close()

    started = time.perf_counter()
    with WorkerPeaks() as workers_peak:
        manifest = asyncio.run(run())
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # joined at the end of the export
    cpu = own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime
    counts = manifest["counts"]
    parent = own.ru_utime + own.ru_stime
    print(json.dumps({"read": counts["interactions_read"], "written": counts["records_written"],
                      "seconds": seconds, "cpu": cpu, "parent_cpu": parent,
                      "parent_peak_mib": peak_mib(os.getpid()),
                      "worker_peak_mib": workers_peak.mib}))  # fmt: skip


def stages(url: str, fmt_name: str, baseline: bool) -> None:
    """CPU microseconds a row of each stage of a one-process export, over the whole store:
    reading it (and the filters), redaction, building and checking the records (as JSON lines,
    as `exporters.pool.work` makes them). Printed as JSON."""
    from collections import Counter

    from exporters.formats import FormatOptions, get_format
    from exporters.prepare import build
    from exporters.privacy import Privacy
    from exporters.selection import Filters, select
    from gateway import collector
    from gateway.config import AnonymizeConfig
    from gateway.store import open_store

    if baseline:
        use_baseline()
    else:
        collector.settle()  # as export_child does
    fmt = get_format(fmt_name, FormatOptions())
    privacy = Privacy(AnonymizeConfig())
    filters = Filters().for_format(fmt.all_traffic)
    spent: Counter[str] = Counter()
    clock = time.process_time

    async def run() -> int:
        rows = 0
        store = await open_store(url)
        try:
            async for example in select(store, filters, Counter(), endpoints=fmt.endpoints):
                started = clock()
                privacy.apply(example)
                redacted = clock()
                build(fmt, example, fmt.options.max_tokens, lines=True)
                spent["redact"] += redacted - started
                spent["build"] += clock() - redacted
                rows += 1
        finally:
            await store.close()
        return rows

    started = clock()
    rows = asyncio.run(run())
    spent["read"] = clock() - started - spent["redact"] - spent["build"]
    per_row = {stage: spent[stage] / max(rows, 1) * 1e6 for stage in ("read", "redact", "build")}
    print(json.dumps(per_row))


def peak_mib(pid: int) -> float | None:
    """The peak resident memory of process `pid` itself (VmHWM), in MiB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class WorkerPeaks:
    """The highest peak of any process below this one, read every `SAMPLE_S` while the block
    runs (the export's workers exit before it ends, taking their VmHWM with them)."""

    def __init__(self) -> None:
        self.mib: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> WorkerPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        from bench.procs import descendants

        me = os.getpid()
        while not self._stop.wait(SAMPLE_S):
            for pid in descendants(me):
                peak = peak_mib(pid) if pid != me else None
                if peak is not None and (self.mib is None or peak > self.mib):
                    self.mib = peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--format", default="openai")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompts", type=int, default=2000, help="distinct user messages")
    parser.add_argument("--prompt-kb", type=int, default=1, help="size of a user message")
    parser.add_argument("--baseline", action="store_true", help="the path before issue 21")
    parser.add_argument("--shards", type=int, default=0, help="also as N shards, then merged")
    parser.add_argument("--postgres", action="store_true", help="a pgserver, not SQLite")
    parser.add_argument("--stages", action="store_true", help="also CPU a row of each stage")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--shard", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, out = args.child
        if args.stages:
            stages(url, args.format, args.baseline)
            return
        export_child(url, out, args.format, args.jobs[0], args.baseline, args.shard)
        return
    print(f"{'rows':>8} {'jobs':>4} {'written':>8} {'seconds':>8} {'examples/s':>11}"
          f" {'CPU s':>7} {'parent CPU s':>12} {'examples/CPU s':>15}"
          f" {'parent peak MiB':>15} {'worker peak MiB':>15}")  # fmt: skip
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as folder, _database(args, folder) as url:
            asyncio.run(seed(url, rows, args.prompts, args.prompt_kb))
            for jobs in args.jobs:
                result = _export(args, url, f"{folder}/out-{jobs}", jobs)
                rate = result["read"] / result["seconds"]
                per_cpu = result["read"] / result["cpu"]
                print(f"{rows:>8} {jobs:>4} {result['written']:>8} {result['seconds']:>8.1f}"
                      f" {rate:>11.0f} {result['cpu']:>7.1f} {result['parent_cpu']:>12.1f}"
                      f" {per_cpu:>15.0f} {result['parent_peak_mib']:>15.1f}"
                      f" {_mib(result['worker_peak_mib']):>15}")  # fmt: skip

            if args.shards:
                _sharded(args, url, folder, rows)
            if args.stages:
                _stages(args, url, rows)


@contextlib.contextmanager
def _database(args: argparse.Namespace, folder: str) -> Iterator[str]:
    """The store's URL: a SQLite file in `folder`, or with `--postgres` a PostgreSQL server
    of its own there (pgserver), stopped afterwards."""
    if not args.postgres:
        yield f"sqlite:///{folder}/flywheel.db"
        return
    import pgserver

    server = pgserver.get_server(f"{folder}/pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _export(
    args: argparse.Namespace, url: str, out: str, jobs: int, shard: str | None = None
) -> dict[str, Any]:
    """One export in a child process of its own, and what it measured."""
    shard_flags = ["--shard", shard] if shard else []
    return _child(args, "--jobs", str(jobs), "--child", url, out, *shard_flags)


def _stages(args: argparse.Namespace, url: str, rows: int) -> None:
    """`stages`, in a child process of its own as the exports run."""
    spent = _child(args, "--stages", "--child", url, "-")
    print(f"{rows:>8} rows in one process, CPU µs a row: read {spent['read']:.1f},"
          f" redact {spent['redact']:.1f}, build {spent['build']:.1f},"
          f" in all {sum(spent.values()):.1f}")  # fmt: skip


def _child(args: argparse.Namespace, *flags: str) -> dict[str, Any]:
    """This bench run again as a child with `flags` (and the format and `--baseline`), and the
    JSON it printed last."""
    child = [sys.executable, "-m", "bench.export_scale", "--format", args.format, *flags]
    child += ["--baseline"] if args.baseline else []
    done = subprocess.run(child, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _sharded(args: argparse.Namespace, url: str, folder: str, rows: int) -> None:
    """The export as `--shards` N shards with the last `--jobs` each, one after another as N
    machines would run them side by side, then merged: the slowest shard and the merge are the
    time N machines take. The merged records are compared with the unsharded export's."""
    from exporters.shards import merge_shards

    jobs, count = args.jobs[-1], args.shards
    shards = [f"{folder}/shard-{index}" for index in range(count)]
    seconds = [
        _export(args, url, out, jobs, f"{index}/{count}")["seconds"]
        for index, out in enumerate(shards)
    ]
    started = time.perf_counter()
    manifest = merge_shards([Path(out) for out in shards], Path(f"{folder}/merged"))
    merge = time.perf_counter() - started
    whole = Path(f"{folder}/out-{jobs}")
    same = all(
        (whole / f["name"]).read_bytes() == (Path(f"{folder}/merged") / f["name"]).read_bytes()
        for f in manifest["files"]
        if "records" in f
    )
    took = max(seconds) + merge
    print(f"{rows:>8} rows as {count} shards of {jobs} jobs: slowest shard {max(seconds):.1f} s"
          f" (fastest {min(seconds):.1f}), merge {merge:.1f} s; {rows / took:.0f} examples/s"
          f" on {count} machines; merged records the same as one export's: {same}")  # fmt: skip


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
