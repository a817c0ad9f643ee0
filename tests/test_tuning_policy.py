"""Policies (guardrails, promotion, Thompson sampling) on readouts of seeded traffic, and on the
real gateway: `mode: recommend` writes down and changes nothing; retraining triggers export,
tune and register a canary on their own, or only call their webhook."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.appkeys import CONFIG, ROUTER, STORE
from gateway.config import PolicyConfig
from gateway.experiments import readout
from gateway.tuning.autopilot import check_trigger
from gateway.tuning.policy import PROMOTE, ROLLBACK, WEIGHTS, decide, thompson
from tests.fake_tuning import FakeTuning
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import request
from tests.test_tuning_loop import MODEL, _config, _traffic


def _readout(arms: dict[str, dict[str, Any]], seed: int = 3) -> dict[str, Any]:
    """Traffic per arm: n calls, an error rate, a mean latency and cost, a positive rate."""
    rng = random.Random(seed)
    interactions, events = [], []
    for name, arm in arms.items():
        for i in range(arm["n"]):
            key = f"{name}-{i}"
            interactions.append(
                {
                    "id": key,
                    "variant": name,
                    "status": "error" if rng.random() < arm.get("errors", 0.0) else "success",
                    "latency_ms": rng.gauss(arm.get("latency", 500), 50),
                    "ttft_ms": None,
                    "cost_usd": arm.get("cost", 0.001) * rng.uniform(0.9, 1.1),
                    "prompt_tokens": 10,
                    "completion_tokens": 10,
                }
            )
            up = rng.random() < arm.get("positive", 0.5)
            events.append({"interaction_id": key, "thumbs": "up" if up else "down"})
    return readout("m", interactions, events, control="control", min_samples=30, alpha=0.05)


POLICY = PolicyConfig(model="m", mode="act")


def test_a_clearly_better_arm_is_promoted_with_its_reason() -> None:
    result = _readout({"control": {"n": 200, "positive": 0.4}, "ft": {"n": 200, "positive": 0.8}})
    [decision] = decide(result, POLICY)
    assert decision.action == PROMOTE and decision.variant == "ft"
    assert decision.reason.startswith("promoted: positive rate ")
    assert "p < 0.001" in decision.reason


def test_nothing_is_decided_before_min_samples() -> None:
    result = _readout({"control": {"n": 20, "positive": 0.1}, "ft": {"n": 20, "positive": 0.9}})
    assert decide(result, POLICY) == []


@pytest.mark.parametrize(
    ("arm", "expected"),
    [
        ({"errors": 0.3}, "rolled back: error rate"),
        ({"latency": 2000}, "rolled back: latency p95"),
        ({"cost": 0.01}, "rolled back: cost per call"),
    ],
)
def test_a_guardrail_breach_rolls_back_even_a_better_arm(
    arm: dict[str, Any], expected: str
) -> None:
    result = _readout(
        {"control": {"n": 200, "positive": 0.4}, "ft": {"n": 200, "positive": 0.8, **arm}}
    )
    [decision] = decide(result, POLICY)
    assert decision.action == ROLLBACK and decision.variant == "ft"
    assert decision.reason.startswith(expected), decision.reason


def test_an_error_increase_within_the_allowance_is_no_breach() -> None:
    result = _readout({"control": {"n": 400, "errors": 0.0}, "ft": {"n": 400, "errors": 0.05}})
    assert decide(result, POLICY)[0].action == ROLLBACK
    lenient = PolicyConfig(model="m", max_error_rate_increase=0.2)
    assert decide(result, lenient) == []


def test_thompson_sampling_favours_the_better_arm_within_the_floor() -> None:
    result = _readout({"control": {"n": 40, "positive": 0.3}, "ft": {"n": 40, "positive": 0.7}})
    shares = thompson(result, min_share=10)
    assert sum(shares.values()) == pytest.approx(100, abs=0.2)
    assert shares["ft"] > shares["control"] >= 9.9
    adaptive = PolicyConfig(model="m", adaptive=True, min_share=10)
    undecided = _readout({"control": {"n": 20, "positive": 0.4}, "ft": {"n": 20, "positive": 0.6}})
    [decision] = decide(undecided, adaptive)
    assert decision.action == WEIGHTS and decision.weights is not None
    assert decision.reason.startswith("adaptive weights: ")


# -- on the gateway -------------------------------------------------------------------------------
@pytest.fixture
async def fake() -> AsyncIterator[FakeTuning]:
    async with FakeTuning() as server:
        yield server


async def test_recommend_mode_writes_the_decision_down_and_changes_nothing(
    database_url: str,
    upstream: FakeUpstream,
    fake: FakeTuning,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
) -> None:
    config = _config(upstream, fake, database_url, tmp_path)
    config["tuning"]["policies"][MODEL]["mode"] = "recommend"
    gateway = await make_gateway(config)
    body = {"variant": "better", "weight": 50, "provider": "fake", "upstream_model": "fake-x"}
    assert (await request(gateway, "POST", f"/admin/routes/{MODEL}/canary", body)).status == 200
    await _traffic(gateway, range(60), lambda v: "up" if v == "better" else "down")
    before = (await request(gateway, "GET", f"/admin/routes/{MODEL}")).body
    evaluated = (await request(gateway, "POST", f"/admin/policies/{MODEL}/evaluate")).body
    [decision] = evaluated["decisions"]
    assert decision["action"] == PROMOTE and decision["variant"] == "better"
    after = (await request(gateway, "GET", f"/admin/routes/{MODEL}")).body
    assert after["revision"] == before["revision"] and len(after["arms"]) == 2
    health = (await request(gateway, "GET", f"/admin/health/{MODEL}")).body
    [recommended] = [a for a in health["actions"] if a["action"] == "policy.promote"]
    assert recommended["actor"] == "policy" and recommended["detail"]["variant"] == "better"
    assert health["policy"]["decisions"][0]["reason"] == decision["reason"]
    metrics = (await request(gateway, "GET", "/metrics")).body.decode()
    assert 'action="promote",mode="recommend"' in metrics


async def test_a_falling_positive_rate_triggers_export_tune_and_canary(
    database_url: str,
    upstream: FakeUpstream,
    fake: FakeTuning,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
) -> None:
    config = _config(upstream, fake, database_url, tmp_path)
    config["exports"] = {"nightly": {"format": "openai", "out": str(tmp_path / "nightly")}}
    config["tuning"]["triggers"] = {
        "quality": {
            "model": MODEL,
            "job": "nightly",
            "launcher": "openai",
            "base_model": "gpt-4o-mini-2024-07-18",
            "canary_weight": 10,
            "min_positive_rate": 0.5,
            "min_samples": 10,
            "window": 3600,
        },
        "stale": {
            "model": MODEL,
            "job": "nightly",
            "max_age": 3600,
            "webhook": f"{fake.base_url}/hooks",
        },
    }
    gateway = await make_gateway(config)
    app = gateway.app
    store, loaded = app[STORE], app[CONFIG]
    # Some answers liked (something to train on), most not: the positive rate is below 50%.
    await _traffic(gateway, range(30), lambda v: None)
    await _traffic(gateway, range(30, 40), lambda v: "up")
    await _traffic(gateway, range(40, 70), lambda v: "down")
    async with aiohttp.ClientSession() as session:
        stale = await check_trigger(store, loaded, loaded.tuning.triggers["stale"], session)
        assert stale is not None and stale["reasons"] == ["never tuned (max 1.0 h)"]
        assert fake.hooks[-1]["event"] == "retrain" and fake.hooks[-1]["model"] == MODEL
        fired = await check_trigger(
            store, loaded, loaded.tuning.triggers["quality"], session, app[ROUTER]
        )
        assert fired is not None
        assert fired["reasons"] == ["positive rate of - 25.0% over 40 judged < 50.0%"]
        run = await store.get_tuning_run(fired["tuning_run"])
        assert run is not None and run["status"] == "queued"
        export = await store.get_export_run(run["export_run_id"])
        assert export is not None and export["job"] == "nightly"
        # Already retraining: neither trigger fires again until the run is done.
        assert (
            await check_trigger(store, loaded, loaded.tuning.triggers["quality"], session) is None
        )
        assert await check_trigger(store, loaded, loaded.tuning.triggers["stale"], session) is None
    for _ in range(3):
        await request(gateway, "POST", f"/admin/tuning/runs/{run['id']}/poll")
    route = (await request(gateway, "GET", f"/admin/routes/{MODEL}")).body
    weights = {arm["name"]: arm["weight"] for arm in route["arms"]}
    assert weights == {"base": 90.0, f"ft-{run['id'][-8:]}": 10.0}
    audit = await store.audit_entries(action="tuning.trigger")
    assert {entry["actor"] for entry in audit} == {"trigger:quality", "trigger:stale"}
