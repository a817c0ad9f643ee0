"""From real traffic to a dataset with one command: the SDK calls the gateway, feedback is
posted over HTTP, then `flywheel export` (a subprocess, as a user runs it) writes the files."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from exporters.formats.openai import check_chat
from tests.fake_upstream import FakeUpstream, expected_content
from tests.feedback_support import chat, feedback_config, post_feedback


def flywheel(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_traffic_and_feedback_become_an_openai_dataset(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    gateway = await make_gateway(feedback_config(upstream, database_url))
    approved, _, _ = await chat(gateway, "Approve me", user="ann")
    corrected, _, _ = await chat(gateway, "Correct me, I am Ola Nordmann", user="bob")
    refused, _, _ = await chat(gateway, "Refuse me", user="cat")
    unrated, _, _ = await chat(gateway, "Nobody rated me", user="dan")
    answers = [
        {"interaction_id": approved, "outcome": "accepted"},
        {"interaction_id": corrected, "outcome": "modified", "correction": "The right answer."},
        {"interaction_id": refused, "outcome": "rejected"},
    ]
    assert (await post_feedback(gateway, answers)).status == 201
    for interaction_id in (approved, corrected, refused, unrated):
        await gateway.row(interaction_id)
    await gateway.stop()

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": database_url}}))
    out = tmp_path / "dataset"
    done = flywheel("export", "openai", "--out", str(out), "--outcome", "accepted",
                    "--outcome", "modified", config=config)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 records from 4 interactions" in done.stdout
    # Progress goes to stderr; not a terminal here, so whole lines, no carriage returns.
    assert "  4 / 4 rows (100.0%), 2 written, 2 dropped," in done.stderr
    assert "\r" not in done.stderr

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    lines = [
        orjson.loads(line)
        for file in manifest["files"]
        if "records" in file
        for line in (out / file["name"]).read_bytes().splitlines()
    ]
    assert all(check_chat(line) == [] for line in lines)
    finals = sorted(line["messages"][-1]["content"] for line in lines)
    assert finals == sorted([expected_content("Approve me"), "The right answer."])
    assert "Correct me, I am [PERSON_1]" in [line["messages"][0]["content"] for line in lines]
    assert manifest["counts"]["dropped_by_reason"]["filtered"] == {"outcome": 2}
    assert manifest["redactions"] == {"person": 2}  # the prompt, and its echo in the answer
    for file in manifest["files"]:
        assert hashlib.sha256((out / file["name"]).read_bytes()).hexdigest() == file["sha256"]


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path}/x.db"}}))
    done = flywheel("export", "openai", "--out", str(tmp_path), "--tag", "nokey", config=config)
    assert done.returncode == 2
    assert "--tag wants KEY=VALUE" in done.stderr
    done = flywheel("export", "parquet", "--out", str(tmp_path), config=config)
    assert done.returncode == 2
    assert "invalid choice: 'parquet'" in done.stderr


async def test_job_validate_and_merge_from_the_command_line(
    store: Any, seeded: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    jobs = {"approved": {"format": "openai", "out": str(tmp_path / "jobs")}}
    config.write_text(yaml.safe_dump({"storage": {"url": database_url}, "exports": jobs}))
    done = flywheel("export", "--job", "approved", config=config)
    assert done.returncode == 0, done.stderr
    assert "approved: succeeded" in done.stdout
    (run_dir,) = (tmp_path / "jobs").iterdir()
    train = run_dir / "train.jsonl"

    checked = flywheel("dataset", "validate", str(train), "--format", "openai", config=config)
    assert checked.returncode == 0, checked.stdout
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(train.read_bytes() + b'{"messages": [{"role": "user", "content": "hi"}]}\n')
    checked = flywheel("dataset", "validate", str(broken), "--format", "openai", config=config)
    assert checked.returncode == 1
    lines = len(train.read_bytes().splitlines())
    assert f"line {lines + 1}: example_missing_assistant_message" in checked.stdout

    merged = tmp_path / "merged.jsonl"
    done = flywheel("dataset", "merge", str(train), str(broken), "--out", str(merged),
                    "--format", "openai", config=config)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(merged.read_bytes().splitlines()) == lines  # the copy and the broken line dropped


async def test_export_says_what_each_format_is_and_never_mixes_runs(
    store: Any, seeded: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": database_url}}))
    helped = flywheel("export", "--help", config=config)
    assert "TRL DPOTrainer: prompt, chosen, rejected" in helped.stdout
    assert "ShareGPT for LLaMA-Factory" in helped.stdout

    out = str(tmp_path / "csv")
    done = flywheel("export", "csv", "--out", out, config=config)
    assert done.returncode == 0, done.stderr
    # Records, not lines (a CSV cell may span lines), and the reasons rows were dropped.
    assert "interactions.csv  13 records" in done.stdout
    again = flywheel("export", "csv", "--out", out, config=config)
    assert again.returncode == 2 and "not empty" in again.stderr
    replaced = flywheel("export", "openai", "--out", out, "--replace", config=config)
    assert replaced.returncode == 0, replaced.stderr
    assert "invalid: 2 rejected_without_correction" in replaced.stdout
    assert not (tmp_path / "csv" / "interactions.csv").exists()
