"""Fine-tuning launchers against a fake provider, the TRL recipe, bucket allocation, and rollout
over a real store (SQLite and PostgreSQL): canary, weights, promote, rollback, sticky users."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import Config, parse_config
from gateway.errors import ValidationFailed
from gateway.ids import uuid7
from gateway.routing import Router, _Split
from gateway.store import Store
from gateway.tuning import allocation, rollout, runs
from gateway.tuning.launchers import FAILED, QUEUED, RECIPE_WRITTEN, SUCCEEDED
from tests.fake_tuning import FakeTuning

TRAIN = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTuning]:
    async with FakeTuning() as server:
        yield server


def _config(fake: FakeTuning | None, tmp_path: Path, **models: Any) -> Config:
    launchers: dict[str, Any] = {"local": {"type": "local"}}
    if fake is not None:
        launchers["openai"] = {
            "type": "openai",
            "base_url": fake.openai_url,
            "api_key": "sk-tuning",
            "serve_with": "fake",
            "suffix": "flywheel",
        }
        launchers["together"] = {
            "type": "together",
            "base_url": fake.together_url,
            "api_key": "sk-tuning",
            "serve_with": "fake",
        }
    return parse_config(
        {
            "providers": {"fake": {"type": "openai_compat", "base_url": "http://127.0.0.1:9"}},
            "models": models or {"chat": {"provider": "fake", "model": "base-model"}},
            "tuning": {"recipes_dir": str(tmp_path / "recipes"), "launchers": launchers},
        }
    )


async def _export_run(store: Store, tmp_path: Path, fmt: str = "openai") -> dict[str, Any]:
    """A finished export run as exporters/jobs.py records one: files and a manifest."""
    out = tmp_path / "export"
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(record) + "\n" for record in TRAIN)
    (out / "train.jsonl").write_text(lines)
    (out / "validation.jsonl").write_text(lines)
    manifest = {"format": fmt, "counts": {"records_written": 2}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    run = {
        "id": uuid7(),
        "job": None,
        "format": fmt,
        "status": "succeeded",
        "started_at": "2026-11-30T10:00:00+00:00",
        "finished_at": "2026-11-30T10:01:00+00:00",
        "rows": 2,
        "out_dir": str(out),
        "files": ["train.jsonl", "validation.jsonl", "manifest.json"],
        "manifest": manifest,
    }
    from datetime import datetime

    await store.save_export_run(
        {
            **run,
            "started_at": datetime.fromisoformat(run["started_at"]),
            "finished_at": datetime.fromisoformat(run["finished_at"]),
        }
    )
    return run


# -- allocation ---------------------------------------------------------------------------------
def test_consecutive_ranges_are_the_config_splits_bounds() -> None:
    config = parse_config(
        {
            "providers": {"p": {"type": "demo"}},
            "models": {
                "m": {
                    "variants": [
                        {"name": "a", "provider": "p", "model": "x", "weight": 3},
                        {"name": "b", "provider": "p", "model": "y", "weight": 1},
                        {"name": "c", "provider": "p", "model": "z", "weight": 2},
                    ]
                }
            },
        }
    )
    split = _Split(config.models["m"], config.providers)
    ranges = allocation.consecutive(["a", "b", "c"], [3, 1, 2])
    assert [r[0][1] for r in ranges.values()] == split.bounds


@pytest.mark.parametrize("seed", range(20))
def test_rebalance_moves_only_the_buckets_it_must(seed: int) -> None:
    rng = random.Random(seed)
    names = ["a", "b", "c", "d"][: rng.randint(2, 4)]
    old_weights = {n: rng.uniform(0.5, 10) for n in names}
    current = allocation.rebalance({}, old_weights)
    new_names = [n for n in names if rng.random() > 0.2] or names[:1]
    new_weights = {n: rng.uniform(0.5, 10) for n in new_names} | {"new": rng.uniform(0, 5)}
    new = allocation.rebalance(current, new_weights)
    want = allocation.targets(new_weights)
    assert {n: allocation.size(r) for n, r in new.items()} == want
    owners_before = {p: allocation.owner(current, p) for p in range(allocation.BUCKETS)}
    owners_after = {p: allocation.owner(new, p) for p in range(allocation.BUCKETS)}
    assert None not in owners_after.values()
    moved = sum(owners_before[p] != owners_after[p] for p in owners_before)
    # Only what shrinking or removed arms had to give up moves: no other bucket changes hands.
    must = sum(max(allocation.size(current[n]) - want.get(n, 0), 0) for n in current)
    assert moved == must
    for point, before in owners_before.items():
        if owners_after[point] != before:
            assert before not in new or allocation.size(new[before]) < allocation.size(
                current[before]
            )


# -- launchers against the fake provider ---------------------------------------------------------
@pytest.mark.parametrize(
    ("launcher", "fmt", "method", "job_prefix"),
    [
        ("openai", "openai", "sft", "ftjob-"),
        ("openai", "openai-preference", "dpo", "ftjob-"),
        ("together", "openai", "sft", "ft-"),
        ("together", "openai-preference", "dpo", "ft-"),
    ],
)
async def test_a_run_uploads_creates_polls_and_registers_a_version(
    store: Store,
    fake: FakeTuning,
    tmp_path: Path,
    launcher: str,
    fmt: str,
    method: str,
    job_prefix: str,
) -> None:
    config = _config(fake, tmp_path)
    export = await _export_run(store, tmp_path, fmt)
    async with aiohttp.ClientSession() as session:
        request = runs.TuneRequest(
            launcher=launcher,
            base_model="gpt-4o-mini-2024-07-18",
            export_run_id=export["id"],
            model="chat",
        )
        run = await runs.start_run(store, config, session, request)
        assert run["status"] == QUEUED and run["method"] == method
        assert run["external_id"].startswith(job_prefix)
        # The exported files went up as they are, named after the split and the run.
        uploaded = {name.rsplit("-", 1)[-1]: data for _, name, data in fake.files.values()}
        assert uploaded["train.jsonl"] == (tmp_path / "export" / "train.jsonl").read_bytes()
        assert set(uploaded) == {"train.jsonl", "validation.jsonl"}
        created = fake.created[-1]
        if launcher == "openai":
            kind = {"sft": "supervised", "dpo": "dpo"}[method]
            assert created["method"]["type"] == kind and created["suffix"] == "flywheel"
        else:
            assert created["training_method"] == {"method": method}
        for _ in range(5):
            [polled] = await runs.poll_runs(store, config, session) or [None]
            if polled is None:
                break
    stored = await store.get_tuning_run(run["id"])
    assert stored is not None and stored["status"] == SUCCEEDED
    assert stored["result_model"] == f"ft:gpt-4o-mini-2024-07-18:flywheel:{run['external_id'][-6:]}"
    assert stored["finished_at"] is not None
    [version] = await store.model_versions("chat")
    manifest = (tmp_path / "export" / "manifest.json").read_bytes()
    assert version["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert version["export_run_id"] == export["id"] and version["tuning_run_id"] == run["id"]
    assert version["base_model"] == "gpt-4o-mini-2024-07-18"
    assert version["upstream_model"] == stored["result_model"]
    assert version["provider"] == "fake" and version["status"] == rollout.CANDIDATE


async def test_a_failed_job_is_recorded_with_the_providers_reason(
    store: Store, fake: FakeTuning, tmp_path: Path
) -> None:
    config = _config(fake, tmp_path)
    export = await _export_run(store, tmp_path)
    async with aiohttp.ClientSession() as session:
        request = runs.TuneRequest("openai", "will-fail-model", export_run_id=export["id"])
        run = await runs.start_run(store, config, session, request)
        for _ in range(4):
            await runs.poll_runs(store, config, session)
        fake.refuse_create = True
        refused = await runs.start_run(store, config, session, request)
    stored = await store.get_tuning_run(run["id"])
    assert stored is not None and stored["status"] == FAILED
    assert stored["error"] == "invalid_training_file: Too few examples"
    assert refused["status"] == FAILED and "400" in refused["error"]
    assert await store.model_versions() == []


async def test_a_launcher_refuses_an_export_it_cannot_train_on(
    store: Store, fake: FakeTuning, tmp_path: Path
) -> None:
    config = _config(fake, tmp_path)
    export = await _export_run(store, tmp_path, "kto")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValidationFailed, match="not kto"):
            await runs.start_run(
                store, config, session, runs.TuneRequest("openai", "m", export_run_id=export["id"])
            )
    assert await store.tuning_runs() == []


@pytest.mark.parametrize(("fmt", "method"), [("openai", "sft"), ("dpo", "dpo"), ("kto", "kto")])
async def test_the_local_launcher_writes_a_trl_recipe(
    store: Store, tmp_path: Path, fmt: str, method: str
) -> None:
    config = _config(None, tmp_path)
    export = await _export_run(store, tmp_path, fmt)
    async with aiohttp.ClientSession() as session:
        run = await runs.start_run(
            store,
            config,
            session,
            runs.TuneRequest("local", "Qwen/Qwen2.5-0.5B-Instruct", export_run_id=export["id"]),
        )
    assert run["status"] == RECIPE_WRITTEN
    folder = tmp_path / "recipes" / run["id"]
    recipe = json.loads((folder / "recipe.json").read_text())
    assert recipe["method"] == method and recipe["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert Path(recipe["train_file"]) == (tmp_path / "export" / "train.jsonl").resolve()
    script = (folder / "train.py").read_text()
    compile(script, "train.py", "exec")  # valid Python
    assert f"{method.upper()}Trainer" in script
    done = await runs.complete_local(store, config, run["id"], "my-org/qwen-tuned")
    assert done["status"] == SUCCEEDED
    [version] = await store.model_versions()
    assert version["upstream_model"] == "my-org/qwen-tuned"


# -- rollout over the store -----------------------------------------------------------------------
def _arms(router: Router, users: int = 400) -> dict[str, str | None]:
    return {f"u{n}": router.route("chat", user=f"u{n}").variant for n in range(users)}


async def test_canary_weights_promote_and_rollback_route_as_stored(
    store: Store, tmp_path: Path
) -> None:
    config = _config(None, tmp_path)
    router = Router(config.models, config.providers)
    before = _arms(router)
    assert set(before.values()) == {None}
    await rollout.canary(
        store,
        config,
        "chat",
        "ft-1",
        10,
        actor="alice",
        router=router,
        provider="fake",
        upstream_model="ft:model:1",
    )
    first = _arms(router)
    on_canary = {u for u, arm in first.items() if arm == "ft-1"}
    assert 20 < len(on_canary) < 70  # ~10% of 400
    assert router.route("chat", user=next(iter(on_canary))).upstream_model == "ft:model:1"
    # More weight: everyone on the canary stays there; only base users move to it.
    await rollout.set_weights(
        store, config, "chat", {"base": 70, "ft-1": 30}, actor="alice", router=router
    )
    second = _arms(router)
    assert all(second[u] == "ft-1" for u in on_canary)
    assert 80 < sum(arm == "ft-1" for arm in second.values()) < 160
    # Another replica (a second router) reading the store routes every user alike.
    other = Router(config.models, config.providers)
    await rollout.refresh(store, other)
    assert _arms(other) == second
    # Less weight: only canary users move back; base users stay where they are.
    await rollout.set_weights(
        store, config, "chat", {"base": 95, "ft-1": 5}, actor="bob", router=router
    )
    third = _arms(router)
    assert all(third[u] == "base" for u, arm in second.items() if arm == "base")
    with pytest.raises(ValidationFailed, match="control"):
        await rollout.rollback(store, config, "chat", "base", actor="bob", router=router)
    await rollout.rollback(store, config, "chat", "ft-1", actor="bob", router=router, reason="r")
    assert set(_arms(router).values()) == {"base"}
    await rollout.canary(
        store,
        config,
        "chat",
        "ft-2",
        50,
        actor="alice",
        router=router,
        provider="fake",
        upstream_model="ft:model:2",
    )
    await rollout.promote(store, config, "chat", "ft-2", actor="alice", router=router)
    assert set(_arms(router).values()) == {"ft-2"}
    assert router.control("chat") == "ft-2"
    entries = await store.audit_entries()
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "rollout.canary",
        "rollout.weights",
        "rollout.weights",
        "rollout.rollback",
        "rollout.canary",
        "rollout.promote",
    ]
    promoted = entries[0]
    assert promoted["actor"] == "alice" and promoted["target"] == "chat"
    assert promoted["detail"]["before"] == {"base": 50.0, "ft-2": 50.0}
    assert promoted["detail"]["after"] == {"ft-2": 100.0}
    assert entries[2]["detail"]["reason"] == "r"
    # Reset: config.yaml routes the model again.
    assert await rollout.reset(store, config, "chat", actor="alice", router=router)
    assert _arms(router) == before


async def test_a_stale_write_is_refused_not_lost(store: Store, tmp_path: Path) -> None:
    config = _config(None, tmp_path)
    row = {**rollout.baseline(config.models["chat"]), "updated_at": "2026-11-30T10:00:00+00:00"}
    assert await store.save_route_override({**row, "revision": 1}, 0)
    assert not await store.save_route_override({**row, "revision": 1}, 0)
    assert not await store.save_route_override({**row, "revision": 2}, 5)
    assert await store.save_route_override({**row, "revision": 2}, 1)
    [stored] = await store.route_overrides()
    assert stored["revision"] == 2 and stored["arms"] == row["arms"]


async def test_an_override_the_config_no_longer_allows_is_left_out(tmp_path: Path) -> None:
    config = _config(None, tmp_path)
    router = Router(config.models, config.providers)
    row = rollout.baseline(config.models["chat"])
    bad = {**row, "arms": [{**row["arms"][0], "provider": "gone"}]}
    assert router.apply_overrides({"chat": bad, "unknown-model": row}) == ["chat", "unknown-model"]
    assert router.route("chat", user="u1").variant is None
    # A reload keeps a valid override on top of the new baseline.
    router.apply_overrides({"chat": {**row, "arms": [{**row["arms"][0], "name": "x"}]}})
    router.replace(config.models, config.providers)
    assert router.route("chat", user="u1").variant == "x"


# -- config ---------------------------------------------------------------------------------
README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_tuning() -> dict[str, Any]:
    section = README.read_text().split("## Fine-tuning, canaries and promotion", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    import yaml

    return dict(yaml.safe_load(block))


def test_the_readmes_tuning_example_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-a")
    monkeypatch.setenv("TOGETHER_API_KEY", "sk-b")
    compat = {"type": "openai_compat", "base_url": "http://127.0.0.1:9"}
    config = parse_config(
        {
            "providers": {"openai": compat, "together": compat, "vllm": compat},
            "models": {"support-bot": {"provider": "openai", "model": "gpt-4o-mini"}},
            "exports": {"nightly": {"format": "openai", "out": "exports"}},
            **_readme_tuning(),
        }
    )
    assert set(config.tuning.launchers) == {"openai", "together", "gpu"}
    assert config.tuning.policies["support-bot"].mode == "act"
    assert config.tuning.triggers["quality"].min_positive_rate == 0.6


@pytest.mark.parametrize(
    ("tuning", "problem"),
    [
        ({"launchers": {"x": {"type": "azure"}}}, "tuning.launchers.x.type must be one of"),
        ({"launchers": {"x": {"type": "openai"}}}, "tuning.launchers.x.base_url is required"),
        ({"launchers": {"x": {"type": "local", "serve_with": "nope"}}}, "unknown provider"),
        ({"policies": {"chat": {"mode": "yolo"}}}, "tuning.policies.chat.mode must be"),
        ({"policies": {"other": {}}}, "names unknown model 'other'"),
        ({"triggers": {"t": {"model": "chat", "job": "none", "max_age": 1}}}, "unknown export job"),
        ({"pol1cies": {}}, "tuning.pol1cies is not a known key"),
    ],
)
def test_a_bad_tuning_section_names_the_key(tuning: dict[str, Any], problem: str) -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=problem):
        parse_config(
            {
                "providers": {"fake": {"type": "demo"}},
                "models": {"chat": {"provider": "fake"}},
                "tuning": tuning,
            }
        )


async def test_a_provider_outage_while_polling_leaves_the_run_to_the_next_poll(
    store: Store, fake: FakeTuning, tmp_path: Path
) -> None:
    config = _config(fake, tmp_path)
    export = await _export_run(store, tmp_path)
    async with aiohttp.ClientSession() as session:
        request = runs.TuneRequest("openai", "gpt-4o-mini", export_run_id=export["id"])
        run = await runs.start_run(store, config, session, request)
        fake.failing_polls = 2
        for _ in range(2):
            [polled] = await runs.poll_runs(store, config, session)
            assert polled["status"] == QUEUED and polled.get("error") is None
        for _ in range(3):
            await runs.poll_runs(store, config, session)
    stored = await store.get_tuning_run(run["id"])
    assert stored is not None and stored["status"] == SUCCEEDED


async def test_a_canary_added_again_keeps_its_users(store: Store, tmp_path: Path) -> None:
    config = _config(None, tmp_path)
    router = Router(config.models, config.providers)

    async def canary(name: str, weight: float) -> set[str]:
        arm = {"provider": "fake", "upstream_model": f"ft:{name}"}
        await rollout.canary(store, config, "chat", name, weight, actor="a", router=router, **arm)
        return {u for u, v in _arms(router, 1000).items() if v == "ft-1"}

    await canary("ft-1", 20)
    before = await canary("ft-2", 20)
    after = await canary("ft-1", 10)
    assert after < before and len(after) > 50
