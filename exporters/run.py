"""One export, start to finish: the pipeline every entry point (CLI, admin API, jobs) runs.

Records stream from the store through the format into the files; only the dedup keys (8 bytes
each, exporters.keyset) and, when `max_examples` asks for a sample, that many records are held
in memory. Without an output folder it is a dry run that counts what would be written (the
admin API's preview), through exactly the same code.

An export never mixes runs: it writes into an empty (or new) folder, or, told to `replace`, into
a folder holding an earlier export, whose listed files it removes first; its manifest lists
exactly the files it wrote. Jobs and the admin API write a new folder per run.

A row that a format's code cannot read (a stored body of a shape nobody expected: `tool_calls`
that is `false`, a content part whose text is a list) is skipped and counted as `unformattable`,
and logged once with its id: one such row must not end every later export, run after run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from exporters.curate import CONTENT_KEY_VERSION, Sample, split_of
from exporters.formats import Format, FormatOptions, get_format
from exporters.history import RejectedAnswers, learn_before
from exporters.keyset import KeySet
from exporters.output import MANIFEST, clear_out, describe_file, describe_records
from exporters.parquet import require_pyarrow
from exporters.pool import worked
from exporters.prepare import SHAPE_ERRORS, Failure, Prepared, build, prepare
from exporters.privacy import Privacy
from exporters.progress import Progress
from exporters.selection import Example, Filters, export_query, select
from exporters.shards import OrderLog, Shard, position
from exporters.writers import CountOnly, Writer
from gateway import __version__
from gateway.config import AnonymizeConfig
from gateway.errors import ConfigError
from gateway.privacy.subjects import Subjects
from gateway.store.base import ExportSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportRequest:
    format: str
    filters: Filters = field(default_factory=Filters)
    options: FormatOptions = field(default_factory=FormatOptions)
    # Incremental runs: only examples created or given feedback at or after this moment.
    changed_since: datetime | None = None
    # One slice of the selection, for an export across machines (exporters.shards).
    shard: Shard | None = None


@dataclass
class _Tally:
    read: int = 0
    selected: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    duplicate: int = 0
    too_long: int = 0
    not_sampled: int = 0
    unformattable: Counter[str] = field(default_factory=Counter)  # by exception type
    latest_change: str | None = None
    zero_weighted: int = 0  # turns written with `weight: 0`
    written: int = 0

    def dropped(self) -> int:
        """Records and rows dropped so far, for every reason (sampling counts at the end)."""
        return (
            sum(self.filtered.values())
            + sum(self.invalid.values())
            + self.duplicate
            + self.too_long
            + self.not_sampled
            + sum(self.unformattable.values())
        )

    def progress(self, seconds: float, total: int | None) -> Progress:
        return Progress(self.read, self.written, seconds, self.dropped(), total)


# How often (in rows read) a run reports its progress; the terminal line and the run's row
# show it at most every few seconds (exporters.progress).
PROGRESS_EVERY = 200


async def run_export(
    store: ExportSource,
    anonymize: AnonymizeConfig,
    request: ExportRequest,
    out_dir: Path | None,
    *,
    replace: bool = False,
    progress: Callable[[Progress], None] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Write the dataset into `out_dir` (created if missing; it must be empty unless `replace`
    lets an earlier export's files in it be removed) and return its manifest, which is also
    written as `manifest.json`. With `out_dir=None`, write nothing and return the counts.
    `progress` is called every `PROGRESS_EVERY` rows read and once at the end, with the total
    the store holds for the selection (counted first, only when `progress` is given). `jobs` > 1
    redacts (and builds) in that many processes (exporters.pool); the output is the same
    for any `jobs`."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    fmt = get_format(request.format, request.options)
    filters = request.filters.for_format(fmt.all_traffic)
    check_output(fmt, request.shard)
    if request.shard is not None:
        request.shard.check(fmt, filters.max_examples)
    privacy = Privacy(anonymize)
    subjects = Subjects(anonymize.salt)  # who is in this run, for a later forget
    rejected = RejectedAnswers()
    tally = _Tally()
    if out_dir is not None:
        out_dir = Path(out_dir)
        clear_out(out_dir, replace)
        out_dir.mkdir(parents=True, exist_ok=True)
    writer = CountOnly() if out_dir is None else fmt.open_writer(out_dir)
    # A JSON-lines writer takes each record as the line made where it was built.
    lines = writer.takes_lines
    sample = Sample(filters.max_examples, filters.seed) if filters.max_examples else None
    seen = KeySet()
    shard = request.shard
    part = shard.slice if shard is not None else None  # what the store reads
    order = OrderLog(out_dir) if shard is not None and out_dir is not None else None
    # Where each example in flight is in store order, for the shard's order log.
    places: deque[tuple[int, str]] = deque()

    def skip(source: str, failure: Failure) -> None:
        tally.unformattable[failure.error] += 1
        # Where, not the message: a message may quote the row's (personal) text.
        log.warning(
            "export %s: skipped %s, which it cannot format: %s at %s:%s",
            fmt.name,
            source,
            failure.error,
            failure.file,
            failure.line,
        )

    def learn(example: Example) -> None:
        # A body of an unexpected shape: the format skips the row and counts it itself.
        with contextlib.suppress(*SHAPE_ERRORS):
            rejected.observe(example)

    def observe(example: Example) -> None:
        tally.read += 1
        if progress is not None and tally.read % PROGRESS_EVERY == 0:
            progress(tally.progress(time.monotonic() - clock, total))
        learn(example)

    def write(split: str, prepared: Prepared) -> None:
        if prepared.line is not None:
            writer.write_line(split, prepared.line)
            tally.zero_weighted += prepared.zero_weighted
        else:
            assert prepared.record is not None  # only a dropped record is left behind
            writer.write(split, prepared.record)
            tally.zero_weighted += fmt.zero_weighted(prepared.record)
        tally.written += 1

    def accept(prepared: Prepared) -> None:
        if prepared.problem is not None:
            tally.invalid[prepared.problem] += 1
            return
        if prepared.too_long:
            tally.too_long += 1
            return
        if prepared.key is None:  # all traffic: no dedup, no split
            write("all", prepared)
            return
        if not seen.add(prepared.key):
            tally.duplicate += 1
            return
        split = split_of(prepared.group, filters.seed, filters.validation_fraction)
        if order is not None:
            order.add(split, places[0], prepared.key)
        if sample is None:
            write(split, prepared)
        else:
            sample.offer(prepared.key, split, prepared)

    total = None
    if progress is not None:
        query = export_query(filters, fmt.endpoints, request.changed_since, part)
        total = await store.export_count(query)
    starts = [moment for moment in (filters.since, request.changed_since) if moment is not None]
    if starts and not fmt.all_traffic:
        # Rejections in conversations that began before this export's window.
        await learn_before(store, learn, max(starts), filters, fmt.endpoints)

    async def selected() -> AsyncIterator[Example]:
        async for example in select(
            store,
            filters,
            tally.filtered,
            endpoints=fmt.endpoints,
            changed_since=request.changed_since,
            observe=observe,
            part=part,
            outside=learn,  # another slice's answer the user threw away, met in a history here
        ):
            if order is not None:
                places.append(position(example.record))
            tally.selected += 1
            subjects.add(example.record)  # before privacy.apply replaces the ids
            change = example.eligible_at
            if tally.latest_change is None or change > tally.latest_change:
                tally.latest_change = change
            yield example

    async for done in worked(selected(), privacy, fmt, anonymize, jobs, lines):
        built = done.built
        if done.example is not None:  # a format that keeps state builds here
            built = build(fmt, done.example, request.options.max_tokens, lines)
        if built is not None:
            for prepared in built.records:
                accept(prepared)
            if built.invalid is not None:
                tally.invalid[built.invalid] += 1
        failure = done.failure or (built.failure if built else None)
        if failure is not None:
            skip(f"interaction {done.id}", failure)
        if order is not None:
            places.popleft()
    for record, group in fmt.finish():
        try:
            accept(prepare(fmt, record, group, request.options.max_tokens, lines))
        except SHAPE_ERRORS as exc:
            skip("a record built from several interactions", Failure.of(exc))
    if sample is not None:
        tally.not_sampled = sample.passed_over
        for split, kept in sample.drain():
            write(split, kept)
    files = writer.close()
    if order is not None:
        files.append(order.close())
    if out_dir is not None:
        files += describe_records(fmt, writer, out_dir)
    if progress is not None:
        progress(tally.progress(time.monotonic() - clock, total))
    manifest = _manifest(fmt, filters, request, tally, privacy, writer, files, out_dir, started)
    manifest.update(subjects.manifest())  # user_hashes, session_hashes
    if shard is not None:
        manifest["shard"] = shard.describe()
    if out_dir is not None:
        (out_dir / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest


def check_output(fmt: Format, shard: Shard | None) -> None:
    """Refuse a file format `fmt` cannot write, before anything is read or written."""
    output = fmt.options.output
    if output not in fmt.outputs:
        raise ConfigError(f"the {fmt.name} format writes {', '.join(fmt.outputs)}, not {output}")
    if output != "jsonl":
        if shard is not None:
            # `flywheel dataset merge` reads the shards' JSON lines.
            raise ConfigError(f"--shard writes JSON lines: --output-format {output} is refused")
        require_pyarrow()


def _manifest(
    fmt: Format,
    filters: Filters,
    request: ExportRequest,
    tally: _Tally,
    privacy: Privacy,
    writer: Writer,
    files: list[Path],
    out_dir: Path | None,
    started: datetime,
) -> dict[str, Any]:
    counts: dict[str, int] = getattr(writer, "counts", {})
    records = {path.as_posix(): n for path, n in writer.split_files().values()}
    return {
        "format": fmt.name,
        "gateway_version": __version__,
        "content_key_version": CONTENT_KEY_VERSION,
        "created_at": started.isoformat(),
        "filters": filters.describe(),
        "changed_since": request.changed_since.isoformat() if request.changed_since else None,
        "options": {"max_tokens": request.options.max_tokens, "output": request.options.output},
        "split": {
            "by": "user, else session",
            "validation_fraction": filters.validation_fraction,
            "seed": filters.seed,
        },
        "counts": {
            "interactions_read": tally.read,
            "examples_selected": tally.selected,
            "records_written": sum(counts.values()),
            **{split: n for split, n in counts.items()},
            "dropped": {
                "filtered": sum(tally.filtered.values()),
                "invalid": sum(tally.invalid.values()),
                "duplicate": tally.duplicate,
                "too_long": tally.too_long,
                "not_sampled": tally.not_sampled,
                "unformattable": sum(tally.unformattable.values()),
            },
            "dropped_by_reason": {
                "filtered": dict(sorted(tally.filtered.items())),
                "invalid": dict(sorted(tally.invalid.items())),
                "unformattable": dict(sorted(tally.unformattable.items())),
            },
            # Earlier assistant turns the user threw away, kept as context with `weight: 0`.
            "turns_zero_weighted": tally.zero_weighted,
            **fmt.report(),
        },
        "redactions": dict(sorted(privacy.redactions.items())),
        "latest_change": tally.latest_change,
        "files": (
            [describe_file(path, out_dir, records) for path in sorted(files)] if out_dir else []
        ),
    }
