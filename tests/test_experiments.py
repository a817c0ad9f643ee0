"""The A/B readout, checked against figures computed independently on a seeded dataset."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import fmean, variance
from typing import Any

import aiohttp
import pytest
import yaml
from scipy import stats

from gateway.experiments import compare_means, compare_rates, readout
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream

REPO = Path(__file__).resolve().parent.parent


def _seeded(seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    interactions, events = [], []
    for n in range(600):
        variant = "control" if n % 3 else "candidate"  # 400 / 200
        failed = rng.random() < (0.05 if variant == "control" else 0.10)
        interactions.append(
            {
                "id": f"i{n}",
                "variant": variant,
                "status": "error" if failed else "success",
                "latency_ms": rng.gauss(800 if variant == "control" else 700, 100),
                "ttft_ms": None,
                "cost_usd": 0.001 if variant == "control" else 0.0005,
                "prompt_tokens": 10,
                "completion_tokens": 20,
            }
        )
        if n % 2 == 0:  # half of the calls get a thumb, a few change their mind later
            up = rng.random() < (0.6 if variant == "control" else 0.75)
            events.append({"interaction_id": f"i{n}", "thumbs": "down" if up else "up"})
            events.append({"interaction_id": f"i{n}", "thumbs": "up" if up else "down"})
    return interactions, events


def test_readout_matches_independent_computation() -> None:
    interactions, events = _seeded()
    result = readout("exp", interactions, events, control="control", min_samples=30, alpha=0.05)
    by_name = {v["variant"]: v for v in result["variants"]}
    assert by_name["control"]["requests"] == 400 and by_name["candidate"]["requests"] == 200
    assert by_name["candidate"]["traffic_share"] == pytest.approx(200 / 600)

    def arm(name: str) -> list[dict[str, Any]]:
        return [i for i in interactions if i["variant"] == name]

    latest = {e["interaction_id"]: e["thumbs"] for e in events}  # the later event wins
    for name in ("control", "candidate"):
        rows = arm(name)
        errors = sum(r["status"] == "error" for r in rows)
        judged = [latest[r["id"]] for r in rows if r["id"] in latest]
        assert by_name[name]["error_rate"] == pytest.approx(errors / len(rows))
        assert by_name[name]["positive_rate"] == pytest.approx(judged.count("up") / len(judged))
        assert by_name[name]["feedback_count"] == len(judged)

    metrics = {m["metric"]: m for m in result["comparisons"][0]["metrics"]}
    # Two-proportion z-test, by hand: pooled standard error for p, unpooled for the interval.
    c, v = arm("control"), arm("candidate")
    cj = [latest[r["id"]] for r in c if r["id"] in latest]
    vj = [latest[r["id"]] for r in v if r["id"] in latest]
    p1, p2, n1, n2 = cj.count("up") / len(cj), vj.count("up") / len(vj), len(cj), len(vj)
    pooled = (cj.count("up") + vj.count("up")) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    positive = metrics["positive_rate"]
    assert positive["difference"] == pytest.approx(p2 - p1)
    assert positive["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    half = 1.959964 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    assert positive["ci95"] == pytest.approx((p2 - p1 - half, p2 - p1 + half), abs=1e-5)
    # Welch's t-test, by hand: the statistic and Welch-Satterthwaite degrees of freedom.
    a, b = [r["latency_ms"] for r in c], [r["latency_ms"] for r in v]
    se2a, se2b = variance(a) / len(a), variance(b) / len(b)
    t = (fmean(b) - fmean(a)) / math.sqrt(se2a + se2b)
    df = (se2a + se2b) ** 2 / (se2a**2 / (len(a) - 1) + se2b**2 / (len(b) - 1))
    latency = metrics["latency_ms"]
    assert latency["difference"] == pytest.approx(fmean(b) - fmean(a))
    assert latency["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), df))
    half = stats.t.ppf(0.975, df) * math.sqrt(se2a + se2b)
    difference = fmean(b) - fmean(a)
    assert latency["ci95"] == pytest.approx((difference - half, difference + half))
    assert latency["verdict"] == "better than control"  # ~100 ms faster on 200 vs 400 calls


def test_no_verdict_before_min_samples() -> None:
    small = compare_rates("positive_rate", True, (5, 10), (9, 10), min_samples=100, alpha=0.05)
    assert small.verdict == "not enough data yet: 10 of 100 samples in the smaller arm"
    assert small.p_value is not None  # the figures are shown, only the verdict is withheld
    same = compare_means("latency_ms", False, [1.0, 2.0, 3.0] * 50, [1.0, 2.0, 3.0] * 50, 10, 0.05)
    assert same.verdict == "no significant difference"


def test_empty_window_says_so() -> None:
    result = readout("exp", [], [], control="a", min_samples=10, alpha=0.05)
    assert result["note"] == "no traffic in this window yet"


async def test_readout_api_and_cli_on_real_traffic(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    config = base_config(upstream, database_url)
    config["models"]["exp"] = {
        "control": "a",
        "variants": [
            {"name": "a", "provider": "fake", "model": "fake-model", "weight": 50},
            {"name": "b", "provider": "fake", "model": "fake-model-b", "weight": 50},
        ],
    }
    config["experiments"] = {"min_samples": 5, "alpha": 0.05}
    gateway = await make_gateway(config)
    for n in range(30):
        client = gateway.client(default_headers={"Flywheel-User": f"user-{n}"})
        await client.chat.completions.create(
            model="exp", messages=[{"role": "user", "content": "hi"}]
        )
    await gateway.stop()  # every row written

    gateway = await make_gateway(config)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.base_url}/admin/experiments/exp") as response,
    ):
        assert response.status == 200
        result = await response.json()
    assert result["control"] == "a"
    assert sum(v["requests"] for v in result["variants"]) == 30
    assert {v["variant"] for v in result["variants"]} == {"a", "b"}
    assert result["comparisons"][0]["variant"] == "b"

    config_file = tmp_path / "cli.yaml"
    config_file.write_text(yaml.safe_dump(config))
    printed = subprocess.run(
        [sys.executable, "-m", "gateway", "experiments", "exp", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert printed.startswith("exp: 30 requests, control a")
    assert "b against a:" in printed
