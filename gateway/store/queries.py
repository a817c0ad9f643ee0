"""What the review API asks the stores, and the engine-neutral shaping of their answers.

sql.py turns an `InteractionQuery` into SQL for every engine; what needs no SQL (paging
order, LIKE patterns, percentile ranks, folding rows into per-variant dicts) lives here.

Paging is keyset on (created_at, id), newest first: stable while rows keep arriving, and as fast
on the thousandth page as on the first, unlike OFFSET. A page is read forwards (`after`: the
rows older than a cursor) or backwards (`before`: the rows newer than it, read oldest first
and handed back newest first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median, quantiles
from typing import Any

# Latest-value distributions the stats report per model and variant.
FEEDBACK_DISTRIBUTIONS = ("thumbs", "rating", "outcome", "correction_type")
# Nearest-rank percentiles, as integer arithmetic both engines agree on: rank = ceil(p * n).
PERCENTILES = {"p50": 50, "p95": 95}


@dataclass(frozen=True)
class TimeWindow:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class Cursor:
    """A row at the edge of a page: the next (or previous) page starts strictly past it."""

    created_at: datetime
    id: str


@dataclass(frozen=True)
class InteractionQuery:
    window: TimeWindow = TimeWindow()
    model: str | None = None
    variant: str | None = None
    status: str | None = None
    user: str | None = None
    session: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # all must match
    has_feedback: bool | None = None
    outcome: str | None = None  # the latest outcome given
    min_rating: int | None = None  # the latest rating given
    thumbs: str | None = None  # the latest thumbs given
    quality_flag: str | None = None
    text: str | None = None  # in the text of the request or response (see search.py)
    after: Cursor | None = None  # rows older than this one
    before: Cursor | None = None  # rows newer than this one (the previous page)
    limit: int = 50


@dataclass(frozen=True)
class ExportQuery:
    """What an export reads from the store, oldest first. Filters on feedback values (rating,
    outcome...) are applied by the exporter after `latest()`, the same way for both engines."""

    window: TimeWindow = TimeWindow()
    models: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    # Incremental runs: rows created, or given feedback, at or after this moment.
    changed_since: datetime | None = None
    # One slice of the rows, for an export across machines (exporters.shards). A page then
    # also holds the rows of other slices that may have been thrown away (`thrown_away`): the
    # exporter learns from them which history turns not to train on, and exports none of them.
    # A count is of the slice alone.
    slice: Slice | None = None
    # Only rows given feedback that may throw their answer away (an outcome `rejected`, a
    # thumbs down, a correction): what an export reads from before its window, to learn which
    # history turns not to train on (exporters.history).
    thrown_away: bool = False


@dataclass(frozen=True)
class Slice:
    """Slice `index` of `count`: the interactions whose id `slice_of` puts there."""

    index: int
    count: int

    def holds(self, interaction_id: str) -> bool:
        return slice_of(interaction_id, self.count) == self.index


def slice_of(interaction_id: str, count: int) -> int:
    """Which of `count` slices an interaction is in: the first 8 bytes of the SHA-256 of its id
    (as text), big-endian, modulo `count`. Each engine computes the same in SQL (dialect.py):
    the database picks a shard's rows, rather than the shard reading every row to drop most."""
    digest = hashlib.sha256(interaction_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere in a string, with `\\` as the escape character:
    `%` and `_` in the text are matched as themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def percentile_rank(count: int, percent: int) -> int:
    """ceil(percent/100 * count) in integers, as `percentile_rank_sql` computes it."""
    return (count * percent + 99) // 100


def interpolated_percentile(values: Sequence[float], percent: int) -> float | None:
    """Interpolated between the nearest ranks: statistics' "inclusive" method, which is
    PostgreSQL's percentile_cont (the A/B readout's percentiles)."""
    if not values:
        return None
    if percent == 50:
        return float(median(values))
    if len(values) == 1:
        return float(values[0])
    return float(quantiles(values, n=100, method="inclusive")[percent - 1])


def percentile_rank_sql(count: str, percent: int) -> str:
    """SQL for ceil(percent/100 * count) in integers: the nearest-rank percentile's row."""
    return f"(({count}) * {percent} + 99) / 100"


def usage_groups(
    totals: Iterable[Mapping[str, Any]], latencies: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Aggregate rows per (model, variant) with their latency percentiles attached."""
    by_group = {(r["model"], r["variant"]): r for r in latencies}
    groups = []
    for row in totals:
        latency = by_group.get((row["model"], row["variant"]), {})
        groups.append({**row, "latency_ms": {name: latency.get(name) for name in PERCENTILES}})
    return groups


def feedback_groups(
    counts: Iterable[Mapping[str, Any]], values: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per (model, variant): feedback events, interactions with feedback, and how many of
    those interactions have each latest value of each distribution field."""
    groups: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in counts:
        groups[(row["model"], row["variant"])] = {
            "model": row["model"],
            "variant": row["variant"],
            "events": row["events"],
            "interactions": row["interactions"],
            **{name: {} for name in FEEDBACK_DISTRIBUTIONS},
        }
    for row in values:
        group = groups.get((row["model"], row["variant"]))
        if group is not None:
            group[row["field"]][str(row["value"])] = row["count"]
    return list(groups.values())
