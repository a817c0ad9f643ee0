"""Turn tallies into rows: percentiles, latency added over `direct`, the ratio of that to the
forwarder's (the floor any Python proxy pays), and CPU per request. Printed as a plain-text
table and written as JSON with the same numbers.

"Added" is the difference of percentiles (target p50 - direct p50), not a percentile of
per-request differences: the requests are not paired, only interleaved in time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.runner import Tally
from bench.stats import Summary

DIRECT = "direct"
FORWARDER = "forwarder"


@dataclass(frozen=True)
class Row:
    mode: str
    metric: str  # total (non-stream), ttlb (stream, last byte), ttfc (stream, first chunk)
    target: str
    latency_ms: Summary
    added_p50_ms: float | None
    added_p99_ms: float | None
    ratio_vs_forwarder: float | None  # added p50 / forwarder's added p50
    cpu_ms_per_request: float | None  # the target's own server process
    db_cpu_ms_per_request: float | None  # its PostgreSQL server, all processes
    upstream_cpu_ms_per_request: float | None


def _ratio(added: float, floor: float | None) -> float | None:
    # Below ~10 us the floor is noise and a ratio would be meaningless.
    if floor is None or floor < 0.01:
        return None
    return added / floor


def _per_request(seconds: float, tally: Tally) -> float:
    return seconds * 1000 / tally.requests


def _metric_rows(
    mode: str, metric: str, tallies: Mapping[str, Tally], first_chunk: bool
) -> list[Row]:
    """One row per target for one latency metric. CPU goes on the per-request metrics only
    (total, ttlb): a stream's first chunk has no CPU of its own."""
    summaries = {
        name: Summary.of(t.first_ms if first_chunk else t.total_ms) for name, t in tallies.items()
    }
    base = summaries[DIRECT]
    floor = summaries.get(FORWARDER)
    floor_added = floor.p50 - base.p50 if floor is not None else None
    rows = []
    for name, tally in tallies.items():
        s = summaries[name]
        is_base = name == DIRECT
        with_cpu = not first_chunk
        rows.append(
            Row(
                mode=mode,
                metric=metric,
                target=name,
                latency_ms=s,
                added_p50_ms=None if is_base else s.p50 - base.p50,
                added_p99_ms=None if is_base else s.p99 - base.p99,
                ratio_vs_forwarder=None if is_base else _ratio(s.p50 - base.p50, floor_added),
                cpu_ms_per_request=_per_request(tally.cpu_s, tally) if with_cpu else None,
                db_cpu_ms_per_request=(
                    _per_request(tally.db_cpu_s, tally) if with_cpu and tally.has_db else None
                ),
                upstream_cpu_ms_per_request=(
                    _per_request(tally.upstream_cpu_s, tally) if with_cpu else None
                ),
            )
        )
    return rows


def build_rows(results: Mapping[str, Mapping[str, Tally]]) -> list[Row]:
    """`results` maps mode ("nonstream"/"stream") to target name to its tally."""
    rows: list[Row] = []
    for mode, tallies in results.items():
        if mode == "stream":
            rows += _metric_rows(mode, "ttlb", tallies, first_chunk=False)
            rows += _metric_rows(mode, "ttfc", tallies, first_chunk=True)
        else:
            rows += _metric_rows(mode, "total", tallies, first_chunk=False)
    return rows


_COLUMNS = (
    ("mode", 9, "<"),
    ("metric", 6, "<"),
    ("target", 17, "<"),
    ("n", 6, ">"),
    ("p50", 7, ">"),
    ("p90", 7, ">"),
    ("p99", 7, ">"),
    ("+p50", 7, ">"),
    ("+p99", 7, ">"),
    ("x fwd", 6, ">"),
    ("cpu/req", 8, ">"),
    ("db/req", 7, ">"),
    ("up/req", 7, ">"),
)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _cells(row: Row) -> list[str]:
    s = row.latency_ms
    return [
        row.mode,
        row.metric,
        row.target,
        str(s.n),
        _num(s.p50),
        _num(s.p90),
        _num(s.p99),
        _num(row.added_p50_ms),
        _num(row.added_p99_ms),
        _num(row.ratio_vs_forwarder, 2),
        _num(row.cpu_ms_per_request),
        _num(row.db_cpu_ms_per_request),
        _num(row.upstream_cpu_ms_per_request),
    ]


def format_table(rows: Iterable[Row]) -> str:
    def line(cells: list[str]) -> str:
        return " ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, _COLUMNS, strict=True))

    out = [line([name for name, _, _ in _COLUMNS])]
    previous = None
    for row in rows:
        if previous is not None and (row.mode, row.metric) != previous:
            out.append("")
        previous = (row.mode, row.metric)
        out.append(line(_cells(row)))
    return "\n".join(out)


LEGEND = """\
All times in ms. total = non-stream request; ttlb / ttfc = stream time to last byte / first chunk.
+p50, +p99 = target percentile minus direct's. x fwd = +p50 / forwarder's +p50.
cpu/req = CPU ms per request of the target's server process (direct: the fake upstream);
db/req = its PostgreSQL server (all processes); up/req = the fake upstream, for reference.
CPU is utime+stime from /proc (10 ms ticks), summed over blocks and divided by requests."""


def finite(value: Any) -> Any:
    """NaN (a metric with no samples) becomes null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def totals(results: Mapping[str, Mapping[str, Tally]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The raw sums behind the rows (requests, blocks, measured seconds, CPU seconds)."""
    return {
        mode: {
            name: {
                "requests": t.requests,
                "blocks": t.blocks,
                "seconds": t.seconds,
                "cpu_s": t.cpu_s,
                "db_cpu_s": t.db_cpu_s if t.has_db else None,
                "upstream_cpu_s": t.upstream_cpu_s,
            }
            for name, t in tallies.items()
        }
        for mode, tallies in results.items()
    }


def write_json(path: Path, document: Mapping[str, Any], rows: Iterable[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = finite({**document, "rows": [asdict(row) for row in rows]})
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
