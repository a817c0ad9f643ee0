"""Reading the hourly rollups (migrations 0010 and 0011): the overview's and `/admin/stats`'
numbers without a pass over every row of the window.

`interaction_rollups` holds, per (hour, model, variant), exact counts and sums and a histogram
of latencies (latency bucket -> interactions);
`feedback_latest` one row per judged interaction with its latest values. Triggers on insert and
delete of interactions and feedback keep both exact, whatever order rows commit in (a spool
replay) and whatever a forget or retention deletes; on SQLite the store adds each inserted
batch of interactions up itself instead (sqlite_rollups.py). A window is read as its whole
hours from the rollups plus the rows of the partial hours at its edges from `interactions`, so
a window that starts at 14:37:12 is exact to the microsecond; counts and sums equal the raw
rows'.

Latency percentiles: up to `EXACT_PERCENTILES_MAX` rows in the window they are read from the
rows, exactly (nearest rank); above, from the histograms. A bucket k
holds [1.1^k, 1.1^(k+1)) ms and stands for its geometric middle, 1.1^(k+0.5): at most 4.9%
from the true percentile (sqrt(1.1) - 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
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
    """Counts, sums and latency histograms per (chart bucket of `seconds` if given, model,
    variant): the rollups' hours, each with its histogram, and the edges' rows grouped per
    latency bucket. `fold` adds them up; the rows are few (a month is ~2,000 hours per model
    and variant), and a GROUP BY of them in SQL was a sort that cost more than folding them."""
    chart = f"hour / {int(seconds)} * {int(seconds)}" if seconds else "0"
    hours = ["1 = 1"]
    if parts.first_hour is not None:
        hours.append(f"hour >= {p(parts.first_hour)}")
    hours.append(f"hour < {p(parts.end_hour)}")
    counts = ", ".join(COUNTS)
    branches = [
        f"SELECT {chart} AS chart, model, variant, latency_histogram,"
        f" CAST(NULL AS INTEGER) AS latency_bucket, {counts}"
        f" FROM interaction_rollups WHERE {' AND '.join(hours)}"
    ]
    raw_chart = d.time_bucket("i.created_at", seconds) if seconds else "0"
    sums = ", ".join(f"sum({column})" for column in _raw_columns())
    for edge in parts.edges:
        clauses = ["1 = 1"]
        if edge.since is not None:
            clauses.append(f"i.created_at >= {p(edge.since)}")
        if edge.until is not None:
            clauses.append(f"i.created_at < {p(edge.until)}")
        branches.append(
            f"SELECT {raw_chart}, coalesce(i.requested_model, ''), coalesce(i.variant, ''),"
            f" NULL, {d.latency_bucket('i.latency_ms')}, {sums} FROM interactions i"
            f" WHERE {' AND '.join(clauses)} GROUP BY 1, 2, 3, 5"
        )
    return " UNION ALL ".join(branches)


def _raw_columns() -> list[str]:
    """One raw row as a rollup row of one interaction: its `COUNTS`."""
    return [
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


@dataclass
class Group:
    """Counts and sums of one (chart bucket, model, variant) or of several, and its latency
    histogram (bucket -> interactions). Buckets stay the text the JSON holds them as: an int()
    of each of a month's ~70k hour-buckets was a third of the time it took to add them up."""

    counts: dict[str, float]
    histogram: dict[str, int]

    @classmethod
    def empty(cls) -> Group:
        return cls(dict.fromkeys(COUNTS, 0), {})

    def add(self, other: Group) -> None:
        for name, value in other.counts.items():
            self.counts[name] += value
        for bucket, count in other.histogram.items():
            self.histogram[bucket] = self.histogram.get(bucket, 0) + count


Key = tuple[int, str, str]  # (chart bucket, model, variant); '' stands for NULL


def fold(rows: Iterable[Mapping[str, Any]]) -> dict[Key, Group]:
    """The query's rows (hours with their histogram, edge rows per latency bucket) added up
    per (chart bucket, model, variant)."""
    groups: dict[Key, Group] = {}
    for row in rows:
        key = (int(row["chart"]), row["model"], row["variant"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group.empty()
        counts, histogram = group.counts, group.histogram
        for name in COUNTS:
            counts[name] += row[name] or 0
        stored = row["latency_histogram"]
        if stored is not None:
            # SQLite hands JSON over as text; PostgreSQL's jsonb codec has decoded it.
            stored = json.loads(stored) if isinstance(stored, str) else stored
            for bucket, count in stored.items():
                histogram[bucket] = histogram.get(bucket, 0) + count
        elif row["latency_bucket"] != NO_LATENCY:
            bucket = str(row["latency_bucket"])
            histogram[bucket] = histogram.get(bucket, 0) + int(row["interactions"])
    return {k: g for k, g in groups.items() if g.counts["interactions"]}


def regroup(groups: Mapping[Key, Group], by: Callable[[Key], Any]) -> dict[Any, Group]:
    """`fold`'s groups added up per `by(key)`: per (model, variant), or per chart bucket."""
    found: dict[Any, Group] = {}
    for key, group in groups.items():
        total = found.get(by(key))
        if total is None:
            total = found[by(key)] = Group.empty()
        total.add(group)
    return found


def histogram_percentiles(histogram: Mapping[str, int]) -> dict[str, float | None]:
    """Nearest-rank percentiles of a latency histogram: each bucket's geometric middle."""
    total = sum(histogram.values())
    found: dict[str, float | None] = {}
    for name, percent in PERCENTILES.items():
        found[name] = None
        if total:
            rank, seen = percentile_rank(total, percent), 0
            for bucket in sorted(histogram, key=int):
                seen += histogram[bucket]
                if seen >= rank:
                    found[name] = round(LATENCY_RATIO ** (int(bucket) + 0.5), 1)
                    break
    return found


def usage_row(model: str, variant: str, group: Group) -> dict[str, Any]:
    """A (model, variant) as `usage_by_variant` gives it; '' stood for NULL in the rollups."""
    counts = group.counts
    return {
        "model": model or None,
        "variant": variant or None,
        **{name: int(counts[name]) for name in INTEGERS},
        "cost_usd": counts["cost_usd"] if counts["cost_known"] else None,
    }
