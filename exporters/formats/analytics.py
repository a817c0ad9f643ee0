"""Traffic analytics: `analytics.json` and `analytics.csv`, totals over every selected row.

Volume, success rate, latency and time-to-first-token percentiles, tokens and cost, by model,
variant, endpoint, tag (`key=value`), hour of day (UTC, 0-23) and weekday; feedback
distributions; the most frequent errors; data-quality flag counts. The CSV is long format
(`section, key, metric, value`) for pandas and spreadsheets; the JSON nests the same numbers as
`{section: {key: {metric: value}}}`.

`build` only accumulates and returns no records; the writer writes both files from the totals
when the pipeline closes it. Memory is fixed whatever the number of rows: percentiles are exact
up to 1,000 values a group and come from a log-bucketed histogram (±1%) beyond, each section
keeps at most `MAX_KEYS` keys, and errors are counted with a bounded heavy-hitters counter.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from exporters.formats import Built, Format, FormatOptions
from exporters.selection import Example
from exporters.writers import Writer, spreadsheet_safe
from gateway.records.interaction import CLIENT_DISCONNECTED, ERROR, SUCCESS

JSON_FILE = "analytics.json"
CSV_FILE = "analytics.csv"
CSV_COLUMNS = ("section", "key", "metric", "value")
# Per section; a tag holding a request id would otherwise add a key per row. Past this many,
# new keys are counted under OTHER, so totals still add up.
MAX_KEYS = 1_000
OTHER = "(other)"
NONE = "(none)"
TOP_ERRORS = 10
# Distinct errors tracked; counts are exact while fewer than this many were seen.
ERROR_CAPACITY = 1_000
# Longer messages are cut: the start says what went wrong, the rest is ids and payload.
ERROR_MESSAGE_CHARS = 200
FEEDBACK_FIELDS = ("thumbs", "rating", "outcome", "correction_type")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Sections of per-group totals, in output order.
GROUPED = ("overall", "model", "variant", "endpoint", "tag", "hour", "weekday")


class Quantiles:
    """Percentiles in fixed memory.

    The first `EXACT_LIMIT` values are kept as they are, so a small group (a new tag, a quiet
    hour) reports its exact percentiles. Past that they move into a histogram with logarithmic
    buckets (DDSketch's mapping): every bucket spans values within `RELATIVE_ACCURACY` of its
    representative, so a percentile is within 1% of the exact one however many values came;
    values are clamped to 1 µs .. ~28 hours (in ms), which bounds it to about 1,300 buckets.
    """

    EXACT_LIMIT = 1_000  # 8 kB a group, as an array of doubles
    RELATIVE_ACCURACY = 0.01
    _GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
    _LOG_GAMMA = math.log(_GAMMA)
    _LOWEST, _HIGHEST = 1e-3, 1e8

    def __init__(self) -> None:
        self.exact: array[float] | None = array("d")
        self.counts: Counter[int] = Counter()
        self.n = 0

    def add(self, value: float) -> None:
        self.n += 1
        if self.exact is None:
            self._bucket(value)
            return
        self.exact.append(value)
        if len(self.exact) > self.EXACT_LIMIT:
            for kept in self.exact:
                self._bucket(kept)
            self.exact = None

    def quantile(self, q: float) -> float | None:
        """The nearest-rank `q` quantile, or None when nothing was added."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        if self.exact is not None:
            return sorted(self.exact)[rank - 1]
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return 2 * self._GAMMA**index / (self._GAMMA + 1)
        raise AssertionError("rank beyond the count")  # unreachable: rank <= n

    def _bucket(self, value: float) -> None:
        clamped = min(max(value, self._LOWEST), self._HIGHEST)
        self.counts[math.ceil(math.log(clamped) / self._LOG_GAMMA)] += 1


class Totals:
    """Volume, outcome, latency, tokens and cost of one group of rows."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.costed = 0  # rows whose cost is known: with none, the cost is unknown, not 0
        self.latency_ms = Quantiles()
        self.ttft_ms = Quantiles()

    def add(self, record: dict[str, Any]) -> None:
        status = str(record.get("status"))
        self.statuses[status] += 1
        self.prompt_tokens += record.get("prompt_tokens") or 0
        self.completion_tokens += record.get("completion_tokens") or 0
        if record.get("cost_usd") is not None:
            self.cost_usd += record["cost_usd"]
            self.costed += 1
        # Latency of successful calls only: a failure's latency is its timeout or how fast the
        # provider refused, which says nothing about how fast the model answers.
        if status == SUCCESS:
            if record.get("latency_ms") is not None:
                self.latency_ms.add(float(record["latency_ms"]))
            if record.get("ttft_ms") is not None:
                self.ttft_ms.add(float(record["ttft_ms"]))

    def metrics(self) -> Iterator[tuple[str, int | float | None]]:
        rows = sum(self.statuses.values())
        yield "rows", rows
        for status in (SUCCESS, ERROR, CLIENT_DISCONNECTED):
            yield status, self.statuses[status]
        yield "success_rate", round(self.statuses[SUCCESS] / rows, 4) if rows else None
        for name, quantiles in (("latency_ms", self.latency_ms), ("ttft_ms", self.ttft_ms)):
            for label, q in (("p50", 0.5), ("p95", 0.95)):
                value = quantiles.quantile(q)
                yield f"{name}_{label}", None if value is None else round(value, 1)
        yield "prompt_tokens", self.prompt_tokens
        yield "completion_tokens", self.completion_tokens
        yield "cost_usd", round(self.cost_usd, 8) if self.costed else None


class TopCounter:
    """The most frequent keys in bounded memory (the Misra-Gries algorithm): exact while fewer
    than `capacity` distinct keys were seen. After that, a new key meeting a full table takes
    one off every count instead of a place, so each count is at most total/(capacity + 1) below
    the true one and a key that frequent is never lost; the work stays O(1) per key on average
    (every decrement uses up an earlier increment) even when every message is unique."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.counts: dict[str, int] = {}

    def add(self, key: str) -> None:
        if key in self.counts or len(self.counts) < self.capacity:
            self.counts[key] = self.counts.get(key, 0) + 1
            return
        self.counts = {k: n - 1 for k, n in self.counts.items() if n > 1}

    def top(self, n: int) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]


class Stats:
    """Everything `analytics` reports, accumulated one row at a time."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Totals]] = {section: {} for section in GROUPED}
        self.feedback: dict[str, Counter[str]] = {name: Counter() for name in FEEDBACK_FIELDS}
        self.with_feedback = 0
        self.errors = TopCounter(ERROR_CAPACITY)
        self.flags: Counter[str] = Counter()

    def add(self, example: Example) -> None:
        record = example.record
        created = datetime.fromisoformat(str(record["created_at"])).astimezone(UTC)
        keys = [
            ("overall", "all"),
            ("model", _name(record.get("requested_model"))),
            ("variant", _name(record.get("variant"))),
            ("endpoint", _name(record.get("endpoint"))),
            ("hour", str(created.hour)),
            ("weekday", WEEKDAYS[created.weekday()]),
            *(("tag", f"{k}={_name(v)}") for k, v in (record.get("tags") or {}).items()),
        ]
        for section, key in keys:
            self._totals(section, key).add(record)
        if record.get("feedback"):
            self.with_feedback += 1
        for name, counter in self.feedback.items():
            if example.feedback.get(name) is not None:
                counter[str(example.feedback[name])] += 1
        # A client that hung up is not an error of the gateway or the provider.
        if record.get("status") == ERROR or record.get("error_type"):
            self.errors.add(_error_key(record))
        self.flags.update(record.get("quality_flags") or ())

    def rows(self) -> Iterator[tuple[str, str, str, int | float | None]]:
        """The long-format rows of `analytics.csv`, in reading order."""
        for section in GROUPED:
            for key, totals in self._ordered(section):
                for metric, value in totals.metrics():
                    yield section, key, metric, value
        yield "feedback", "coverage", "with_feedback", self.with_feedback
        for name, counter in self.feedback.items():
            for label, count in sorted(counter.items()):
                yield "feedback", name, label, count
        for key, count in self.errors.top(TOP_ERRORS):
            yield "errors", key, "count", count
        for flag, count in sorted(self.flags.items(), key=lambda item: (-item[1], item[0])):
            yield "quality_flags", flag, "rows", count

    def _totals(self, section: str, key: str) -> Totals:
        groups = self.groups[section]
        if key not in groups and len(groups) >= MAX_KEYS:
            key = OTHER
        if key not in groups:
            groups[key] = Totals()
        return groups[key]

    def _ordered(self, section: str) -> list[tuple[str, Totals]]:
        groups = self.groups[section]
        if section == "hour":
            return sorted(groups.items(), key=lambda item: int(item[0]))
        if section == "weekday":
            return sorted(groups.items(), key=lambda item: WEEKDAYS.index(item[0]))
        # Busiest first, as a reader scans them.
        return sorted(groups.items(), key=lambda item: (-item[1].statuses.total(), item[0]))


class Analytics(Format):
    name = "analytics"
    endpoints = ()
    all_traffic = True

    def __init__(self, options: FormatOptions | None = None):
        super().__init__(options or FormatOptions())
        self.stats = Stats()

    def build(self, example: Example) -> list[Built]:
        self.stats.add(example)
        return []

    def open_writer(self, out_dir: Any) -> Writer:
        return AnalyticsFiles(Path(out_dir), self.stats)


class AnalyticsFiles(Writer):
    """Writes both files from the totals when closed; takes no records."""

    def __init__(self, out_dir: Path, stats: Stats):
        self.dir = out_dir
        self.stats = stats

    def write(self, split: str, record: dict[str, Any]) -> None:
        raise TypeError("analytics writes totals, not records: its build() returns none")

    def close(self) -> list[Path]:
        rows = list(self.stats.rows())  # a few thousand at most: MAX_KEYS bounds every section
        self.dir.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = self.dir / CSV_FILE, self.dir / JSON_FILE
        with open(csv_path, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(CSV_COLUMNS)
            # Keys are tag values, model names and error messages: client text.
            writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
        nested: dict[str, dict[str, dict[str, Any]]] = {}
        for section, key, metric, value in rows:
            nested.setdefault(section, {}).setdefault(key, {})[metric] = value
        json_path.write_bytes(orjson.dumps(nested, option=orjson.OPT_INDENT_2))
        return [json_path, csv_path]


def _name(value: Any) -> str:
    return NONE if value is None or value == "" else str(value)


def _error_key(record: dict[str, Any]) -> str:
    """`type: message`; without a recorded type, the status, and without a message, the HTTP
    status, so a bare 502 still shows up."""
    kind = record.get("error_type") or record.get("status")
    message = " ".join(str(record.get("error_message") or "").split())
    if not message:
        message = f"HTTP {record.get('http_status')}"
    return f"{kind}: {message[:ERROR_MESSAGE_CHARS]}"


FORMATS = {"analytics": Analytics}
