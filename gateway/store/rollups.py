"""Reading the hourly rollups (migration 0010): the overview's and `/admin/stats`' numbers
without a pass over every row of the window.

`interaction_rollups` holds, per (hour, model, variant, latency bucket), exact counts and sums;
`feedback_latest` one row per judged interaction with its latest values. Triggers on insert and
delete of interactions and feedback keep both exact, whatever order rows commit in (a spool
replay) and whatever a forget or retention deletes. A window is read as its whole hours from
the rollups plus the rows of the partial hours at its edges from `interactions`, so a window
that starts at 14:37:12 is exact to the microsecond; counts and sums equal the raw rows'.

Latency percentiles: up to `EXACT_PERCENTILES_MAX` rows in the window they are read from the
rows, exactly (nearest rank); above, from the histogram the latency buckets form. A bucket k
holds [1.1^k, 1.1^(k+1)) ms and stands for its geometric middle, 1.1^(k+0.5): at most 4.9%
from the true percentile (sqrt(1.1) - 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.store.dialect import Dialect, Params
from gateway.store.queries import PERCENTILES, TimeWindow, percentile_rank

HOUR = 3600
LATENCY_RATIO = 1.1
NO_LATENCY = -1000  # the bucket of rows without a latency (never in a percentile)
# Below this many rows, percentiles come from the rows themselves: exact, and cheap at that size.
EXACT_PERCENTILES_MAX = 10_000
# What a rollup row counts; a raw row contributes one of each (see `_raw_columns`).
COUNTS = (
    "interactions",
    "success",
    "error",
    "client_disconnected",
    "cost_usd",
    "cost_known",
    "prompt_tokens",
    "completion_tokens",
)
INTEGERS = (
    "interactions",
    "success",
    "error",
    "client_disconnected",
    "prompt_tokens",
    "completion_tokens",
)


@dataclass(frozen=True)
class Split:
    """A window as whole hours [first_hour, end_hour) from the rollups (epoch seconds; no
    lower bound when `first_hour` is None) and the raw windows at its edges."""

    first_hour: int | None
    end_hour: int
    edges: tuple[TimeWindow, ...]


def split(window: TimeWindow, now: datetime, seconds: int = HOUR) -> Split:
    """Whole hours inside `window` from the rollups, the rest from rows. Chart buckets that are
    not whole hours (`seconds`) cannot be built from hours: everything comes from rows."""
    if seconds % HOUR:
        return Split(0, 0, (window,))
    # The first whole hour starts at or after `since`, the last ends at or before `until`:
    # a moment inside a second rounds inwards, so its partial second stays with the rows.
    since = math.ceil(window.since.timestamp()) if window.since else None
    first = -(-since // HOUR) * HOUR if since is not None else None
    end = math.floor((window.until or now).timestamp()) // HOUR * HOUR
    if first is not None and first >= end:
        return Split(0, 0, (window,))
    edges = [TimeWindow(window.since, _moment(first))] if first is not None else []
    edges.append(TimeWindow(_moment(end), window.until))
    return Split(first, end, tuple(edges))


def _moment(epoch: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def usage_sql(d: Dialect, p: Params, parts: Split, seconds: int | None) -> str:
    """Counts and sums per (model, variant, latency bucket), and per chart bucket of
    `seconds` if given: the rollups' whole hours and the edges' rows, added up."""
    chart = f"hour / {int(seconds)} * {int(seconds)} AS chart, " if seconds else ""
    hours = ["1 = 1"]
    if parts.first_hour is not None:
        hours.append(f"hour >= {p(parts.first_hour)}")
    hours.append(f"hour < {p(parts.end_hour)}")
    branches = [
        f"SELECT hour, model, variant, latency_bucket, {', '.join(COUNTS)}"
        f" FROM interaction_rollups WHERE {' AND '.join(hours)}"
    ]
    raw_hour = d.time_bucket("i.created_at", seconds if seconds and seconds % HOUR else HOUR)
    for edge in parts.edges:
        clauses = ["1 = 1"]
        if edge.since is not None:
            clauses.append(f"i.created_at >= {p(edge.since)}")
        if edge.until is not None:
            clauses.append(f"i.created_at < {p(edge.until)}")
        branches.append(
            f"SELECT {raw_hour} AS hour, coalesce(i.requested_model, '') AS model,"
            f" coalesce(i.variant, '') AS variant, {d.latency_bucket('i.latency_ms')}"
            f" AS latency_bucket, {_raw_columns()} FROM interactions i"
            f" WHERE {' AND '.join(clauses)}"
        )
    sums = ", ".join(f"sum({name}) AS {name}" for name in COUNTS)
    grouping = (
        "chart, model, variant, latency_bucket" if seconds else "model, variant, latency_bucket"
    )
    return (
        f"SELECT {chart}model, variant, latency_bucket, {sums}"
        f" FROM ({' UNION ALL '.join(branches)}) AS r GROUP BY {grouping}"
    )


def _raw_columns() -> str:
    """One raw row as a rollup row of one interaction."""
    return ", ".join(
        [
            "1",
            *(
                f"CASE WHEN i.status = '{status}' THEN 1 ELSE 0 END"
                for status in ("success", "error", "client_disconnected")
            ),
            "coalesce(i.cost_usd, 0)",
            "CASE WHEN i.cost_usd IS NULL THEN 0 ELSE 1 END",
            "coalesce(i.prompt_tokens, 0)",
            "coalesce(i.completion_tokens, 0)",
        ]
    )


@dataclass
class Group:
    """Counts and sums of one (model, variant) or chart bucket, and its latency histogram."""

    counts: dict[str, float]
    histogram: dict[int, int]


def fold(rows: Iterable[Mapping[str, Any]], key: str | tuple[str, ...]) -> dict[Any, Group]:
    """The query's rows (one per latency bucket) added up per `key`."""
    groups: dict[Any, Group] = {}
    names = (key,) if isinstance(key, str) else key
    for row in rows:
        k = tuple(row[name] for name in names)
        group = groups.setdefault(k if len(k) > 1 else k[0], Group(dict.fromkeys(COUNTS, 0), {}))
        for name in COUNTS:
            group.counts[name] += row[name] or 0
        if row["latency_bucket"] != NO_LATENCY:
            bucket = int(row["latency_bucket"])
            group.histogram[bucket] = group.histogram.get(bucket, 0) + int(row["interactions"])
    return {k: g for k, g in groups.items() if g.counts["interactions"]}


def histogram_percentiles(histogram: Mapping[int, int]) -> dict[str, float | None]:
    """Nearest-rank percentiles of a latency histogram: each bucket's geometric middle."""
    total = sum(histogram.values())
    found: dict[str, float | None] = {}
    for name, percent in PERCENTILES.items():
        found[name] = None
        if total:
            rank, seen = percentile_rank(total, percent), 0
            for bucket in sorted(histogram):
                seen += histogram[bucket]
                if seen >= rank:
                    found[name] = round(LATENCY_RATIO ** (bucket + 0.5), 1)
                    break
    return found


def merged(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            total[bucket] = total.get(bucket, 0) + count
    return total


def usage_row(model: str, variant: str, group: Group) -> dict[str, Any]:
    """A (model, variant) as `usage_by_variant` gives it; '' stood for NULL in the rollups."""
    counts = group.counts
    return {
        "model": model or None,
        "variant": variant or None,
        **{name: int(counts[name]) for name in INTEGERS},
        "cost_usd": counts["cost_usd"] if counts["cost_known"] else None,
    }
