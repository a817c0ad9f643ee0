"""The whole loop on the real gateway, on SQLite and PostgreSQL: traffic and feedback -> export ->
fine-tune (a fake OpenAI fine-tuning server) -> version registered as a canary -> traffic split
-> readout -> automatic promotion; a guardrail breach rolls back; a restart mid-job resumes
polling; two replicas over one PostgreSQL route alike after a promotion."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from exporters.jobs import run_recorded
from exporters.run import ExportRequest
from gateway.appkeys import CONFIG, ROUTER, STORE
from gateway.records.headers import INTERACTION_HEADER, VARIANT_HEADER
from tests.conftest import base_config
from tests.fake_tuning import FakeTuning
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import request
from tests.harness import GatewayHarness

MODEL = "fake-chat"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTuning]:
    async with FakeTuning() as server:
        yield server


def _config(
    upstream: FakeUpstream, fake: FakeTuning, url: str, tmp_path: Path, poll: float = 3600
) -> dict[str, Any]:
    config = base_config(upstream, url)
    config["experiments"] = {"min_samples": 10, "alpha": 0.05}
    config["tuning"] = {
        "poll_interval": poll,
        "refresh_interval": 0.1,
        "recipes_dir": str(tmp_path / "recipes"),
        "launchers": {
            "openai": {
                "type": "openai",
                "base_url": fake.openai_url,
                "api_key": "sk-tuning",
                "serve_with": "fake",
            }
        },
        "policies": {MODEL: {"mode": "act", "interval": 3600, "window": 3600}},
    }
    return config


async def _chat(gateway: GatewayHarness, user: str) -> tuple[str, str | None, bool]:
    """One call as `user`: (interaction id, variant, answered)."""
    try:
        raw = await gateway.client().chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"Hi from {user}"}], user=user
        )
    except openai.APIStatusError as exc:
        headers = exc.response.headers
        return headers[INTERACTION_HEADER], headers.get(VARIANT_HEADER), False
    return raw.headers[INTERACTION_HEADER], raw.headers.get(VARIANT_HEADER), True


async def _traffic(
    gateway: GatewayHarness, users: range, thumbs: Callable[[str | None], str | None]
) -> dict[str, str | None]:
    """A call per user, each given the thumb `thumbs(variant)` asks for, all stored first."""
    arms, feedback = {}, []
    for n in users:
        interaction, variant, _ = await _chat(gateway, f"u{n}")
        arms[f"u{n}"] = variant
        await gateway.row(interaction)
        thumb = thumbs(variant)
        if thumb is not None:
            feedback.append({"interaction_id": interaction, "thumbs": thumb})
    if feedback:
        posted = await request(gateway, "POST", "/v1/feedback", feedback)
        assert posted.status < 300, posted.body
    return arms


async def _tune(gateway: GatewayHarness, tmp_path: Path, weight: float = 50) -> dict[str, Any]:
    app = gateway.app
    export = await run_recorded(
        app[STORE], app[CONFIG], ExportRequest("openai"), tmp_path / "exports"
    )
    assert export["status"] == "succeeded" and export["rows"] > 0, export
    started = await request(
        gateway,
        "POST",
        "/admin/tuning/runs",
        {
            "launcher": "openai",
            "base_model": "gpt-4o-mini-2024-07-18",
            "export_run_id": export["id"],
            "model": MODEL,
            "canary_weight": weight,
        },
    )
    assert started.status == 201, started.body
    return {"export": export, "run": started.body}


async def test_feedback_to_a_fine_tuned_canary_promoted_on_evidence(
    database_url: str,
    upstream: FakeUpstream,
    fake: FakeTuning,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
) -> None:
    gateway = await make_gateway(_config(upstream, fake, database_url, tmp_path))
    await _traffic(gateway, range(20), lambda variant: "up")
    tuned = await _tune(gateway, tmp_path)
    run = tuned["run"]
    assert run["status"] == "queued" and run["method"] == "sft"
    for _ in range(3):
        polled = await request(gateway, "POST", f"/admin/tuning/runs/{run['id']}/poll")
        assert polled.status == 200, polled.body
    assert polled.body["status"] == "succeeded"
    result_model = polled.body["result_model"]
    detail = await request(gateway, "GET", f"/admin/tuning/runs/{run['id']}")
    assert detail.body["events"][0]["message"] == "Status: succeeded"

    versions = (await request(gateway, "GET", f"/admin/model-versions?model={MODEL}")).body
    [version] = versions["data"]
    manifest = Path(tuned["export"]["out_dir"]) / "manifest.json"
    assert version["status"] == "canary" and version["upstream_model"] == result_model
    assert version["export_run_id"] == tuned["export"]["id"]
    assert version["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    canary = version["variant"]

    # The split: the canary's users reach the tuned model; its answers are liked, base's not.
    upstream.requests.clear()
    arms = await _traffic(gateway, range(100, 160), lambda v: "up" if v == canary else "down")
    assert set(arms.values()) == {"base", canary}
    assert result_model in {r.body["model"] for r in upstream.requests if r.body}

    evaluated = await request(gateway, "POST", f"/admin/policies/{MODEL}/evaluate")
    assert evaluated.status == 200, evaluated.body
    [decision] = evaluated.body["decisions"]
    assert decision["action"] == "promote" and decision["variant"] == canary
    assert decision["reason"].startswith("promoted: positive rate 100.0% vs 0.0%, p < 0.001")

    route = (await request(gateway, "GET", f"/admin/routes/{MODEL}")).body
    assert [arm["name"] for arm in route["arms"]] == [canary] and route["control"] == canary
    after = await _traffic(gateway, range(100, 120), lambda v: None)
    assert set(after.values()) == {canary}
    versions = (await request(gateway, "GET", f"/admin/model-versions?model={MODEL}")).body
    assert versions["data"][0]["status"] == "live"

    health = (await request(gateway, "GET", f"/admin/health/{MODEL}")).body
    by_name = {arm["variant"]: arm for arm in health["arms"]}
    assert by_name[canary]["status"] == "live" and by_name["base"]["status"] == "retired"
    assert by_name[canary]["recommendation"].startswith("Healthy")
    promoted = next(a for a in health["actions"] if a["action"] == "rollout.promote")
    assert promoted["actor"] == "policy" and promoted["detail"]["reason"] == decision["reason"]
    metrics = (await request(gateway, "GET", "/metrics")).body.decode()
    assert (
        f'flywheel_tuning_decisions_total{{action="promote",mode="act",model="{MODEL}"}} 1.0'
        in metrics
    )


async def test_a_canary_breaching_the_error_guardrail_is_rolled_back(
    database_url: str,
    upstream: FakeUpstream,
    fake: FakeTuning,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
) -> None:
    gateway = await make_gateway(_config(upstream, fake, database_url, tmp_path))
    added = await request(
        gateway,
        "POST",
        f"/admin/routes/{MODEL}/canary",
        {"variant": "broken", "weight": 50, "provider": "fake", "upstream_model": "fake-error-500"},
    )
    assert added.status == 200, added.body
    arms = await _traffic(gateway, range(60), lambda v: None)
    assert set(arms.values()) == {"base", "broken"}
    evaluated = await request(gateway, "POST", f"/admin/policies/{MODEL}/evaluate")
    [decision] = evaluated.body["decisions"]
    assert decision["action"] == "rollback" and decision["variant"] == "broken"
    assert decision["reason"] == "rolled back: error rate 100.0% vs 0.0%, p < 0.001"
    route = (await request(gateway, "GET", f"/admin/routes/{MODEL}")).body
    assert [arm["name"] for arm in route["arms"]] == ["base"]
    assert set((await _traffic(gateway, range(60), lambda v: None)).values()) == {"base"}


async def test_a_restart_mid_job_resumes_polling(
    database_url: str,
    upstream: FakeUpstream,
    fake: FakeTuning,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
) -> None:
    first = await make_gateway(_config(upstream, fake, database_url, tmp_path, poll=3600))
    await _traffic(first, range(10), lambda variant: "up")
    run = (await _tune(first, tmp_path))["run"]
    await first.stop()
    polls_before = sum(1 for _, path in fake.requests if path.endswith(run["external_id"]))
    assert polls_before == 0
    second = await make_gateway(_config(upstream, fake, database_url, tmp_path, poll=0.05))
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        found = await request(second, "GET", f"/admin/tuning/runs/{run['id']}")
        if found.body["status"] == "succeeded":
            break
        assert asyncio.get_running_loop().time() < deadline, found.body
        await asyncio.sleep(0.05)
    versions = (await request(second, "GET", f"/admin/model-versions?model={MODEL}")).body
    assert [v["status"] for v in versions["data"]] == ["canary"]
    assert found.body["result_model"] in {arm["model"] for arm in _route(second)["arms"]}


def _route(gateway: GatewayHarness) -> dict[str, Any]:
    override = gateway.app[ROUTER].override(MODEL)
    assert override is not None
    return dict(override)


async def test_two_replicas_over_one_postgres_route_alike(
    postgres_url: str,
    upstream: FakeUpstream,
    fake: FakeTuning,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
) -> None:
    config = _config(upstream, fake, postgres_url, tmp_path)
    one, two = await make_gateway(config), await make_gateway(config)
    users = [f"u{n}" for n in range(300)]

    def arms(gateway: GatewayHarness) -> list[str | None]:
        return [gateway.app[ROUTER].route(MODEL, user=u).variant for u in users]

    async def converged() -> None:
        deadline = asyncio.get_running_loop().time() + 20
        while arms(two) != arms(one):
            assert asyncio.get_running_loop().time() < deadline, "replica never caught up"
            await asyncio.sleep(0.05)

    body = {"variant": "next", "weight": 20, "provider": "fake", "upstream_model": "fake-next"}
    assert (await request(one, "POST", f"/admin/routes/{MODEL}/canary", body)).status == 200
    await converged()
    assert set(arms(two)) == {"base", "next"}
    promoted = await request(one, "POST", f"/admin/routes/{MODEL}/promote", {"variant": "next"})
    assert promoted.status == 200, promoted.body
    await converged()
    assert set(arms(two)) == {"next"}
    _, variant, answered = await _chat(two, "u1")
    assert answered and variant == "next"
