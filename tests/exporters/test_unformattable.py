"""Rows of a shape no format expected (issue 13): each is skipped, counted and logged, and the
export, the CLI and incremental jobs carry on with every other row, run after run."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporters.formats import FORMATS
from exporters.jobs import run_job
from gateway.config import parse_config
from gateway.records.feedback import Feedback
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import SYSTEM, chat, seed

APPROVED = [{"outcome": "accepted", "thumbs": "up", "rating": 5}]
# Answers the recorder accepted that the chat formats' code cannot read. A variant, so that the
# preference formats read the answer too.
ODD_ANSWERS: dict[str, dict[str, Any]] = {
    "tool_calls_false": {"role": "assistant", "content": "x", "tool_calls": False},
    "text_is_a_list": {"role": "assistant", "content": [{"type": "text", "text": ["x"]}]},
}
ODD: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    name: ({"user": f"odd-{name}", "variant": "a", "exchange": chat(name, answer)}, APPROVED)
    for name, answer in ODD_ANSWERS.items()
}
# Shapes the chat code already turns away as `invalid`: they stay counted there.
ODD["tool_calls_strings"] = (
    {
        "user": "odd-strings",
        "variant": "a",
        "exchange": chat("strings", {"role": "assistant", "content": "x", "tool_calls": ["x"]}),
    },
    APPROVED,
)
NOT_A_DICT: list[Any] = [{"role": "system", "content": SYSTEM}, "hi"]
ODD["message_not_a_dict"] = ({"user": "odd-message", "exchange": chat(NOT_A_DICT, "x")}, APPROVED)
GOOD = {
    "good": ({"user": "fine", "exchange": chat("Summarise: neck pain.", "Neck pain.")}, APPROVED)
}


@pytest.fixture
async def odd(store: Store) -> dict[str, str]:
    # The odd rows first: the good one after them must still be exported.
    return await seed(store, {**ODD, **GOOD})


async def test_openai_export_skips_and_counts_what_it_cannot_format(
    store: Store, odd: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="exporters.run"):
        result = await export(store, tmp_path / "out", "openai")
    (record,) = result.all_records
    assert record["messages"][-1] == {"role": "assistant", "content": "Neck pain."}
    assert result.dropped["unformattable"] == 2
    assert result.manifest["counts"]["dropped_by_reason"]["unformattable"] == {"TypeError": 2}
    assert result.manifest["counts"]["dropped_by_reason"]["invalid"] == {
        "bad_message": 1,
        "bad_tool_call": 1,
    }
    # Logged once each, by id, so the row can be found and fixed.
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 2
    for name in ODD_ANSWERS:
        assert sum(odd[name] in line for line in skipped) == 1


# Odd rows each format cannot format: the raw formats keep the bodies as JSON and trip only on
# the text that is a list; analytics only counts rows.
UNFORMATTABLE = {"csv": 1, "jsonl": 1, "analytics": 0}
# A lone answer makes no preference pair; analytics writes totals.
NO_RECORD_OF_THE_GOOD_ROW = {"dpo", "openai-preference", "analytics"}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_every_format_carries_on_past_odd_rows(
    store: Store, odd: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    result = await export(store, tmp_path / "out", fmt)
    assert result.manifest["counts"]["examples_selected"] == len(ODD) + len(GOOD)
    assert result.dropped["unformattable"] == UNFORMATTABLE.get(fmt, len(ODD_ANSWERS))
    if fmt not in NO_RECORD_OF_THE_GOOD_ROW:
        written = b"".join(path.read_bytes() for path in result.files.values())
        assert b"Neck pain." in written


async def test_an_incremental_job_succeeds_run_after_run(
    store: Store, odd: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    settings = {"format": "openai", "out": str(tmp_path), "filters": {"outcomes": ["accepted"]}}
    config = parse_config({"storage": {"url": database_url}, "exports": {"approved": settings}})
    first = await run_job(store, config, "approved")
    assert first is not None and first["status"] == "succeeded" and first["rows"] == 1
    # Rated again: the next incremental run reads an odd row and the good one once more.
    again = [
        Feedback(str(uuid.uuid4()), odd[name], datetime.now(UTC), outcome="accepted")
        for name in ("tool_calls_false", "good")
    ]
    await store.insert_feedback(again)
    second = await run_job(store, config, "approved")
    assert second is not None and second["status"] == "succeeded" and second["rows"] == 1
    assert second["manifest"]["changed_since"] == first["watermark"].isoformat()
    # Each run's record keeps its count, in its manifest (newest first).
    recorded = await store.export_runs(job="approved")
    assert [r["status"] for r in recorded] == ["succeeded", "succeeded"]
    assert [r["manifest"]["counts"]["dropped"]["unformattable"] for r in recorded] == [1, 2]


async def test_the_cli_reports_the_skipped_rows(
    store: Store, odd: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": database_url}}))
    out = tmp_path / "dataset"
    command = ["export", "openai", "--out", str(out), "--config", str(config)]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "1 records from 5 interactions" in done.stdout
    assert "2 unformattable" in done.stdout
    assert odd["tool_calls_false"] in done.stderr


async def test_a_conversation_keeps_its_turns_when_a_later_one_is_skipped(
    store: Store, tmp_path: Path
) -> None:
    first = [{"role": "user", "content": "What is L4?"}]
    second = [*first, {"role": "assistant", "content": "A lumbar vertebra."}]
    second.append({"role": "user", "content": "And L5?"})
    await seed(
        store,
        {
            "turn_1": ({"session": "s1", "exchange": chat(first, "A lumbar vertebra.")}, []),
            "turn_2": (
                {"session": "s1", "exchange": chat(second, ODD_ANSWERS["text_is_a_list"])},
                [],
            ),
        },
    )
    result = await export(store, tmp_path / "out", "conversations")
    (record,) = result.all_records
    assert [turn["value"] for turn in record["conversations"]] == [
        "What is L4?",
        "A lumbar vertebra.",
    ]
    assert result.dropped["unformattable"] == 1
