"""The analytics export: totals over all traffic, as long-format CSV and nested JSON."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path
from typing import Any

import orjson

from exporters.formats.analytics import TOP_ERRORS, Quantiles, TopCounter
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import chat, seed

Table = dict[tuple[str, str, str], str]


def read_csv(path: Path) -> Table:
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["section", "key", "metric", "value"]
    table = {(r["section"], r["key"], r["metric"]): r["value"] for r in rows}
    assert len(table) == len(rows)  # no (section, key, metric) twice
    return table


def section(table: Table, name: str, metric: str) -> dict[str, str]:
    return {key: value for (s, key, m), value in table.items() if s == name and m == metric}


async def test_totals_by_model_variant_tag_and_time(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "analytics")
    assert sorted(result.files) == ["analytics.csv", "analytics.json"]
    assert result.manifest["counts"]["examples_selected"] == 13  # all traffic, failures too
    table = read_csv(result.files["analytics.csv"])
    assert table["overall", "all", "rows"] == "13"
    assert table["overall", "all", "success"] == "12"
    assert table["overall", "all", "error"] == "1"
    assert table["overall", "all", "success_rate"] == str(round(12 / 13, 4))
    assert section(table, "model", "rows") == {"support": "12", "other": "1"}
    assert section(table, "model", "success") == {"support": "11", "other": "1"}
    assert table["model", "support", "prompt_tokens"] == "240"
    assert table["model", "support", "completion_tokens"] == "120"
    assert float(table["model", "support", "cost_usd"]) == 0.0012
    assert section(table, "variant", "rows") == {"(none)": "11", "a": "1", "b": "1"}
    # Tags as the privacy step leaves them: the age is a decade.
    assert section(table, "tag", "rows") == {"clinic=oslo": "1", "patient_age=40-49": "1"}
    # One row an hour from 08:00 UTC on Monday 2 March 2026; `failed` is the fourth (11:00).
    assert section(table, "hour", "rows") == {str(h): "1" for h in range(8, 21)}
    assert table["hour", "11", "error"] == "1"
    assert section(table, "weekday", "rows") == {"Monday": "13"}


async def test_latency_percentiles_are_exact_for_small_groups(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    table = read_csv((await export(store, tmp_path / "out", "analytics")).files["analytics.csv"])
    # Successful calls only: seed latencies are 100 + position, and `failed` (103) is left out.
    support = sorted(100.0 + i for i in range(12) if i != 3)
    assert float(table["model", "support", "latency_ms_p50"]) == nearest_rank(support, 0.5) == 106
    assert float(table["model", "support", "latency_ms_p95"]) == nearest_rank(support, 0.95)
    assert float(table["model", "other", "latency_ms_p50"]) == 112.0
    # No streams in the seed: no time to first token, an empty cell rather than a zero.
    assert table["overall", "all", "ttft_ms_p50"] == ""


async def test_feedback_errors_and_flags(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "analytics")
    table = read_csv(result.files["analytics.csv"])
    # The latest value of each field: `modified` was thumbed down, then corrected.
    assert section(table, "feedback", "up") == {"thumbs": "7"}
    assert section(table, "feedback", "down") == {"thumbs": "2"}
    ratings = {m: v for (s, k, m), v in table.items() if s == "feedback" and k == "rating"}
    assert ratings == {"1": "1", "2": "1", "5": "2"}
    outcomes = {m: v for (s, k, m), v in table.items() if s == "feedback" and k == "outcome"}
    assert outcomes == {"accepted": "2", "modified": "1", "rejected": "1"}
    assert table["feedback", "correction_type", "major_edit"] == "1"
    assert table["feedback", "coverage", "with_feedback"] == "11"
    assert section(table, "errors", "count") == {"error: HTTP 502": "1"}
    assert section(table, "quality_flags", "rows") == {"truncated": "1"}
    # The JSON holds the same numbers, nested.
    nested = orjson.loads(result.files["analytics.json"].read_bytes())
    assert nested["model"]["support"]["rows"] == 12
    assert nested["errors"] == {"error: HTTP 502": {"count": 1}}
    flat = {
        (s, k, m): "" if v is None else str(v)
        for s, keys in nested.items()
        for k, metrics in keys.items()
        for m, v in metrics.items()
    }
    assert flat == table


async def test_top_errors_are_the_most_frequent_ten(store: Store, tmp_path: Path) -> None:
    cases: dict[str, Any] = {}
    for kind in range(12):  # error kind k occurs k + 1 times
        for n in range(kind + 1):
            cases[f"error_{kind}_{n}"] = (
                {
                    "status": "error",
                    "http_status": 502,
                    "error_type": "upstream_error",
                    "error_message": f"provider   said no ({kind})",
                    "exchange": chat("Hi", ""),
                },
                [],
            )
    await seed(store, cases)
    table = read_csv((await export(store, tmp_path / "out", "analytics")).files["analytics.csv"])
    errors = section(table, "errors", "count")
    assert len(errors) == TOP_ERRORS
    assert errors["upstream_error: provider said no (11)"] == "12"
    assert "upstream_error: provider said no (1)" not in errors
    keys = [k for (s, k, m) in table if s == "errors"]
    assert keys[0].endswith("(11)") and keys[-1].endswith("(2)")  # most frequent first


def nearest_rank(values: list[float], q: float) -> float:
    return sorted(values)[max(1, math.ceil(q * len(values))) - 1]


def test_percentiles_stay_within_one_percent_in_fixed_memory() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(6, 1.2) for _ in range(50_000)]
    quantiles = Quantiles()
    for value in values:
        quantiles.add(value)
    assert quantiles.exact is None  # past the exact limit: the histogram answers
    assert len(quantiles.counts) < 1_300
    for q in (0.5, 0.95, 0.99):
        exact = nearest_rank(values, q)
        assert abs((quantiles.quantile(q) or 0) - exact) <= 0.01 * exact


def test_top_counter_is_bounded_and_keeps_the_frequent() -> None:
    counter = TopCounter(capacity=10)
    for i in range(10_000):
        counter.add("timeout" if i % 3 == 0 else f"unique {i}")
    assert len(counter.counts) <= 10
    top, count = counter.top(1)[0]
    assert top == "timeout"
    # Misra-Gries: never above the true count, at most total / (capacity + 1) below it.
    assert 3334 - 10_000 / 11 <= count <= 3334


async def test_an_unknown_cost_is_not_zero(store: Store, tmp_path: Path) -> None:
    await seed(
        store, {"unpriced": ({"user": "u", "cost_usd": None, "exchange": chat("Q", "A")}, [])}
    )
    result = await export(store, tmp_path / "out", "analytics")
    totals = orjson.loads(result.files["analytics.json"].read_bytes())
    assert totals["overall"]["all"]["cost_usd"] is None
    assert read_csv(result.files["analytics.csv"])["overall", "all", "cost_usd"] == ""
