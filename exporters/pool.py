"""The per-example work of an export on every core: redaction, and for formats whose `build`
keeps no state between examples, building and checking the records too, in a pool of
processes; the results come back in the order the examples were read.

Redaction is most of an export's cost (issue 21: 85% before the span cache) and needs nothing
but the example. Building, the schema checks, the token limit and the dedup key need nothing
but the example and its records. Dedup, the split, sampling and the files stay in the
exporting process, which sees the results in store order whatever the number of jobs: that is
what keeps the output byte for byte the same for any `--jobs` (the same records in the same
order, the same counts; each worker's redaction counts are summed), only timings differ.

Work goes out in batches (one message per batch, not per example), each worker with a queue of
its own (see `Workers`), and at most `IN_FLIGHT` batches per job are outstanding, so memory
stays flat however large the store. Workers are spawned, not forked: the exporting process
holds a running event loop and open database connections that a child must not inherit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter, deque
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from exporters.formats import Format, FormatOptions, get_format
from exporters.prepare import SHAPE_ERRORS, Built, Failure, build
from exporters.privacy import Privacy
from exporters.selection import Example
from gateway import collector
from gateway.config import AnonymizeConfig

# Examples per message to a worker: large enough that pickling and the round trip cost little
# next to the work (~0.1-1 ms an example), small enough that the first records come out at once.
# The exporting process holds every example in flight, its row and then its records, ~30 KB for
# a 10 KB prompt: with 2 jobs, bench.export_scale --prompt-kb 10 peaked at 152 MiB at 256 and
# 115 at 128; at 64, 103, but 1 KB rows took ~4% longer (issue 21).
BATCH = 128


@dataclass(frozen=True)
class Done:
    """One example's outcome. `example` (redacted) when the format must build it in the
    exporting process; `built` when it was built here; `failure` when redaction failed."""

    id: str
    example: Example | None = None
    built: Built | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class Work:
    """What a worker needs: the anonymizer's config, and the format when it may build (and
    whether the writer takes JSON lines)."""

    anonymize: AnonymizeConfig
    format: str | None
    options: FormatOptions
    lines: bool = False


def work(
    privacy: Privacy, fmt: Format | None, example: Example, max_tokens: int, lines: bool = False
) -> Done:
    """Redact `example` and, given `fmt`, build its records (as JSON lines with `lines`)."""
    try:
        privacy.apply(example)
    except SHAPE_ERRORS as exc:
        return Done(example.id, failure=Failure.of(exc))
    if fmt is None:
        return Done(example.id, example=example)
    return Done(example.id, built=build(fmt, example, max_tokens, lines))


@dataclass(frozen=True)
class _Worker:
    privacy: Privacy
    fmt: Format | None
    lines: bool


# A worker process's own Privacy and Format, made once by `_start` (the name lists take ~10 ms
# to load, and the span cache must outlive a batch). Each worker process has its own dict.
_WORKER: dict[str, _Worker] = {}


def _start(job: Work) -> None:
    fmt = get_format(job.format, job.options) if job.format else None
    _WORKER["this"] = _Worker(Privacy(job.anonymize), fmt, job.lines)
    collector.settle()  # the name lists, loaded, stay for the worker's life


# An example as it travels to a worker: its fields as a plain tuple. Pickle takes a slotted
# dataclass apart and puts it back with Python-level state methods; a tuple costs half as much
# both ways (issue 21: ~20 µs an example of the pool's ~130).
Row = tuple[dict[str, Any], dict[str, Any], frozenset[int]]


def _work_batch(rows: list[Row]) -> tuple[list[Done], Counter[str]]:
    examples = [Example(*row) for row in rows]
    worker = _WORKER["this"]
    max_tokens = worker.fmt.options.max_tokens if worker.fmt is not None else 0
    privacy, fmt, lines = worker.privacy, worker.fmt, worker.lines
    done = [work(privacy, fmt, example, max_tokens, lines) for example in examples]
    counts = worker.privacy.redactions.copy()
    worker.privacy.redactions.clear()
    return done, counts


async def worked(
    examples: AsyncIterator[Example],
    privacy: Privacy,
    fmt: Format,
    anonymize: AnonymizeConfig,
    jobs: int,
    lines: bool = False,
) -> AsyncIterator[Done]:
    """`examples` worked, in their order: in this process with `jobs=1`, else by `jobs` worker
    processes. Workers' redaction counts are added to `privacy.redactions`. `lines`: records
    come as JSON lines (`Prepared.line`)."""
    max_tokens = fmt.options.max_tokens
    builder = fmt if fmt.builds_anywhere else None
    if jobs <= 1:
        async for example in examples:
            yield work(privacy, builder, example, max_tokens, lines)
        return
    job = Work(anonymize, fmt.name if builder else None, fmt.options, lines)
    workers = Workers(job, jobs, privacy)
    try:
        async for example in examples:
            workers.send(example)
            while workers.outstanding > IN_FLIGHT * jobs * BATCH:
                yield await workers.next()
        while workers.outstanding:
            yield await workers.next()
    finally:
        workers.close()


# Examples given out and not yet handed back, per job, in batches: enough that a worker always
# has its next batch waiting, few enough that memory stays flat.
IN_FLIGHT = 3
# How many batches more than the least busy worker the worker an example belongs with may have
# before the example goes to the least busy one instead: 512 examples. (Fewer sent more of a
# conversation to the other worker, whose span cache then met its prompts anew.)
SLACK = 4


class Workers:
    """`jobs` worker processes, each with its own queue, and the examples' results in the
    order they were sent.

    Why a process per queue rather than one shared pool: a worker's span cache (the costly
    part of redaction) holds the texts it has seen, and a shared queue gives every worker
    every conversation, so each redacted every repeated history and prompt once more (issue
    21: two jobs did ~35% more work than one). An example goes to the worker of its
    conversation (by its first user message), unless that worker is `SLACK` batches busier
    than the least busy one. Which worker redacts an example never changes its result."""

    def __init__(self, job: Work, jobs: int, privacy: Privacy):
        context = multiprocessing.get_context("spawn")
        self._pools = [
            ProcessPoolExecutor(1, mp_context=context, initializer=_start, initargs=(job,))
            for _ in range(jobs)
        ]
        self._loop = asyncio.get_running_loop()
        self._privacy = privacy
        self._filling: list[list[Row]] = [[] for _ in range(jobs)]
        self._sent: list[deque[asyncio.Future[tuple[list[Done], Counter[str]]]]] = [
            deque() for _ in range(jobs)
        ]
        self._ready: list[deque[Done]] = [deque() for _ in range(jobs)]
        self._busy = [0] * jobs  # examples given to each worker and not yet handed back
        self._order: deque[int] = deque()  # the worker of each outstanding example, in order

    @property
    def outstanding(self) -> int:
        return len(self._order)

    def send(self, example: Example) -> None:
        busy = self._busy
        worker = hash(_conversation(example)) % len(busy)
        if busy[worker] > min(busy) + SLACK * BATCH:
            worker = busy.index(min(busy))
        self._order.append(worker)
        self._busy[worker] += 1
        batch = self._filling[worker]
        batch.append((example.record, example.feedback, example.rejected_turns))
        if len(batch) >= BATCH:
            self._flush(worker)

    async def next(self) -> Done:
        """The result of the oldest outstanding example."""
        worker = self._order[0]
        ready = self._ready[worker]
        if not ready:
            if not self._sent[worker]:
                self._flush(worker)  # its batch is not full yet: send it as it is
            done, counts = await self._sent[worker].popleft()
            self._privacy.redactions.update(counts)
            ready.extend(done)
        self._order.popleft()
        self._busy[worker] -= 1
        return ready.popleft()

    def _flush(self, worker: int) -> None:
        batch, self._filling[worker] = self._filling[worker], []
        if batch:
            future = self._loop.run_in_executor(self._pools[worker], _work_batch, batch)
            self._sent[worker].append(future)

    def close(self) -> None:
        for sent in self._sent:
            for future in sent:
                future.cancel()
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)


def _conversation(example: Example) -> str:
    """What the rows of one conversation share: its first user message (each request resends
    the history), else the example's group (user, session, id)."""
    request = example.record.get("request")
    messages = request.get("messages") if isinstance(request, dict) else None
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else repr(content)[:4096]
    return example.group
