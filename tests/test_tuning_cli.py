"""`flywheel tune` and `flywheel models` as a person runs them: a subprocess on a config file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from gateway.store import open_store
from tests.test_tuning import _export_run

REPO = Path(__file__).resolve().parent.parent


def _flywheel(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


async def test_tune_locally_then_canary_and_promote_from_the_command_line(
    sqlite_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"url": sqlite_url},
                "providers": {"vllm": {"type": "openai_compat", "base_url": "http://127.0.0.1:9"}},
                "models": {"chat": {"provider": "vllm", "model": "qwen-base"}},
                "tuning": {
                    "recipes_dir": str(tmp_path / "recipes"),
                    "launchers": {"gpu": {"type": "local", "serve_with": "vllm"}},
                },
            }
        )
    )
    async with open_store(sqlite_url) as store:
        await store.migrate()
        export = await _export_run(store, tmp_path)

    started = _flywheel(
        config, "tune", "start", "--launcher", "gpu", "--base-model", "Qwen/Qwen2.5-0.5B",
        "--export-run", export["id"], "--model", "chat",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    assert run["status"] == "recipe_written"
    assert (tmp_path / "recipes" / run["id"] / "train.py").is_file()
    listed = _flywheel(config, "tune", "list")
    assert run["id"] in listed.stdout and "recipe_written" in listed.stdout

    done = _flywheel(config, "tune", "complete", run["id"], "--model", "qwen-tuned")
    assert done.returncode == 0, done.stderr
    variant = f"ft-{run['id'][-8:]}"
    canary = _flywheel(config, "models", "canary", "chat", variant, "--weight", "10")
    assert canary.returncode == 0, canary.stderr
    assert f"base 90.0%, {variant} 10.0%; control base" in canary.stdout

    models = _flywheel(config, "models")
    assert models.returncode == 0, models.stderr
    versions, routes = models.stdout.split("\n\n")
    [version] = versions.splitlines()[1:]
    assert version.split()[:6] == [
        "chat", variant, "canary", "qwen-tuned", "Qwen/Qwen2.5-0.5B", export["id"]
    ]  # fmt: skip
    arms = [line.split()[:3] for line in routes.splitlines()[1:]]
    assert arms == [["chat", "base", "(control)"], ["chat", variant, "10.0%"]]

    refused = _flywheel(config, "models", "rollback", "chat", "base")
    assert refused.returncode == 2 and "is the control of chat" in refused.stderr
    promoted = _flywheel(config, "models", "promote", "chat", variant, "--reason", "better")
    assert promoted.returncode == 0, promoted.stderr
    as_json = json.loads(_flywheel(config, "models", "--json").stdout)
    assert [v["status"] for v in as_json["versions"]] == ["live"]
    [route] = as_json["routes"]
    assert [arm["name"] for arm in route["arms"]] == [variant] and route["control"] == variant
    async with open_store(sqlite_url) as store:
        [entry] = await store.audit_entries(action="rollout.promote")
    assert entry["actor"].startswith("cli:") and entry["detail"]["reason"] == "better"
    reset = _flywheel(config, "models", "reset", "chat")
    assert reset.returncode == 0 and "back to config.yaml" in reset.stdout
