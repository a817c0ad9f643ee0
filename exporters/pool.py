"""The per-example work of an export on every core: redaction, and for formats whose `build`
keeps no state between examples, building and checking the records too, in a pool of
processes; the results come back in the order the examples were read.

Redaction is most of an export's cost (issue 21: 85% before the span cache) and needs nothing
but the example. Building, the schema checks, the token limit and the dedup key need nothing
but the example and its records. Dedup, the split, sampling and the files stay in the
exporting process, which sees the results in store order whatever the number of jobs: that is
what keeps the output byte for byte the same for any `--jobs` (the same records in the same
order, the same counts; each worker's redaction counts are summed), only timings differ.

Work goes out in batches (one message per batch, not per example) and at most `2 * jobs`
batches are in flight, so memory stays flat however large the store. Workers are spawned, not
forked: the exporting process holds a running event loop and open database connections that a
child must not inherit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter, deque
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from exporters.formats import Format, FormatOptions, get_format
from exporters.prepare import SHAPE_ERRORS, Built, Failure, build
from exporters.privacy import Privacy
from exporters.selection import Example
from gateway.config import AnonymizeConfig

# Examples per message to a worker: large enough that pickling and the round trip cost little
# next to the work (~0.1-1 ms an example), small enough that the first records come out at once.
BATCH = 256


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
    """What a worker needs: the anonymizer's config, and the format when it may build."""

    anonymize: AnonymizeConfig
    format: str | None
    options: FormatOptions


def work(privacy: Privacy, fmt: Format | None, example: Example, max_tokens: int) -> Done:
    """Redact `example` and, given `fmt`, build its records."""
    try:
        privacy.apply(example)
    except SHAPE_ERRORS as exc:
        return Done(example.id, failure=Failure.of(exc))
    if fmt is None:
        return Done(example.id, example=example)
    return Done(example.id, built=build(fmt, example, max_tokens))


@dataclass(frozen=True)
class _Worker:
    privacy: Privacy
    fmt: Format | None


# A worker process's own Privacy and Format, made once by `_start` (the name lists take ~10 ms
# to load, and the span cache must outlive a batch). Each worker process has its own dict.
_WORKER: dict[str, _Worker] = {}


def _start(job: Work) -> None:
    fmt = get_format(job.format, job.options) if job.format else None
    _WORKER["this"] = _Worker(Privacy(job.anonymize), fmt)


def _work_batch(examples: list[Example]) -> tuple[list[Done], Counter[str]]:
    worker = _WORKER["this"]
    max_tokens = worker.fmt.options.max_tokens if worker.fmt is not None else 0
    done = [work(worker.privacy, worker.fmt, example, max_tokens) for example in examples]
    counts = worker.privacy.redactions.copy()
    worker.privacy.redactions.clear()
    return done, counts


async def worked(
    examples: AsyncIterator[Example],
    privacy: Privacy,
    fmt: Format,
    anonymize: AnonymizeConfig,
    jobs: int,
) -> AsyncIterator[Done]:
    """`examples` worked, in their order: in this process with `jobs=1`, else by `jobs` worker
    processes. Workers' redaction counts are added to `privacy.redactions`."""
    max_tokens = fmt.options.max_tokens
    builder = fmt if fmt.builds_anywhere else None
    if jobs <= 1:
        async for example in examples:
            yield work(privacy, builder, example, max_tokens)
        return
    job = Work(anonymize, fmt.name if builder else None, fmt.options)
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(job,),
    )
    pending: deque[asyncio.Future[tuple[list[Done], Counter[str]]]] = deque()

    async def oldest() -> list[Done]:
        done, counts = await pending.popleft()
        privacy.redactions.update(counts)
        return done

    try:
        batch: list[Example] = []
        async for example in examples:
            batch.append(example)
            if len(batch) < BATCH:
                continue
            pending.append(loop.run_in_executor(pool, _work_batch, batch))
            batch = []
            while len(pending) > 2 * jobs:
                for item in await oldest():
                    yield item
        if batch:
            pending.append(loop.run_in_executor(pool, _work_batch, batch))
        while pending:
            for item in await oldest():
                yield item
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
