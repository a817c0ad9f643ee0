"""From a redacted example to records the pipeline can take or drop: the per-record work that
depends on nothing but the record (the format's checks, the token limit, the dedup key), so it
runs the same in the exporting process and in a worker (exporters.pool).

What a record becomes (dropped as invalid or too long, written, or a duplicate of an earlier
one) is decided in `exporters.run`, in store order; this module only gathers the facts.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from exporters.chat import Unusable
from exporters.curate import content_key
from exporters.formats import Format
from exporters.selection import Example

# What code that walks a body of an unexpected shape raises: a bool where a list belongs, a list
# where a string does, a key or an item that is not there, nesting too deep to walk. Anything
# else is a bug in the exporter and still stops the run.
SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)


@dataclass(frozen=True)
class Failure:
    """Why an example or record could not be handled: the exception's type and where it was
    raised, never its message (a message may quote the row's personal text)."""

    error: str
    file: str
    line: int | None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return cls(type(exc).__name__, Path(where.filename).name, where.lineno)


@dataclass(frozen=True)
class Prepared:
    """One built record and what decides its fate. `record` is None when it will not be
    written (a problem, too long): no need to carry it back from a worker. With `lines`, a
    record to write comes as `line`, its JSON line, instead: the bytes the writer writes, made
    where the record was built (in a worker when there are several), and a few bytes to send
    back where the record's dict took pickling both ways (issue 21)."""

    record: dict[str, Any] | None
    group: str
    problem: str | None = None  # the kind of the first problem: `invalid`
    too_long: bool = False
    key: int | None = None  # content_key, for dedup; None for all-traffic formats
    line: bytes | None = None
    zero_weighted: int = 0  # with `line`: fmt.zero_weighted(record)


@dataclass(frozen=True)
class Built:
    """The records of one example, in order, and why it stopped early if it did."""

    records: list[Prepared]
    invalid: str | None = None  # Unusable's reason
    failure: Failure | None = None


def prepare(
    fmt: Format, record: dict[str, Any], group: str, max_tokens: int, lines: bool = False
) -> Prepared:
    """`record`'s fate; with `lines`, a record to write comes as its JSON line."""
    problems = fmt.problems(record)
    if problems:
        return Prepared(None, group, problem=problems[0].split(":")[0])
    if fmt.all_traffic:
        return Prepared(record, group)
    line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    if too_long(fmt, record, max_tokens, len(line) - 1):
        return Prepared(None, group, too_long=True)
    key = content_key(record)
    if lines:
        return Prepared(None, group, key=key, line=line, zero_weighted=fmt.zero_weighted(record))
    return Prepared(record, group, key=key)


def build(fmt: Format, example: Example, max_tokens: int, lines: bool = False) -> Built:
    """`example`'s records, prepared; a record that cannot be checked ends the example there,
    as it always has (the records before it are kept)."""
    records: list[Prepared] = []
    try:
        for record, group in fmt.build(example):
            records.append(prepare(fmt, record, group, max_tokens, lines))
    except Unusable as exc:
        return Built(records, invalid=exc.reason)
    except SHAPE_ERRORS as exc:
        return Built(records, failure=Failure.of(exc))
    return Built(records)


def too_long(fmt: Format, record: dict[str, Any], max_tokens: int, size: int) -> bool:
    """Whether `record` is over `max_tokens`, counted only when it could be: a token of the
    byte-level BPE encodings is at least one byte of UTF-8, and a record's JSON holds every
    text the formats count plus more bytes per message than their 3-token overhead, so a
    record whose JSON fits in `max_tokens` bytes fits in `max_tokens` tokens. Counting cost
    7% of an export (issue 21); most records are far below the limit. `size`: the bytes of
    the record's JSON."""
    if size <= max_tokens:
        return False
    tokens = fmt.tokens(record)
    return tokens is not None and tokens > max_tokens
