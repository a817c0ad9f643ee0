"""The KTO export from a seeded store: one labelled answer per line, in TRL's columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporters.formats import get_format
from exporters.formats.kto import label
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import TOOLS, chat, seed

TOOL_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "book_appointment", "arguments": ""}}
    ],
}


async def test_kto_labels_each_judged_answer_in_trl_columns(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "kto")
    records = result.all_records
    fmt = get_format("kto")
    for record in records:
        assert fmt.check(record) == []
        assert set(record) == {"prompt", "completion", "label", "metadata"}
        assert isinstance(record["prompt"], list) and record["prompt"][-1]["role"] == "user"
        assert all(set(m) == {"role", "content"} for m in record["prompt"])
        assert [m["role"] for m in record["completion"]] == ["assistant"]
        assert isinstance(record["completion"][0]["content"], str)
        assert isinstance(record["label"], bool)
    labels = {r["completion"][0]["content"]: r["label"] for r in records}
    assert labels == {
        "Lumbago, 3 weeks.": True,  # accepted
        "Neck pain for 2 weeks after a car accident.": True,  # the correction
        "Patient has neck pain.": False,  # the answer it corrected
        "ICPC-2 Z99.": False,  # rejected
        "Thank you [PERSON_1]. Dr. [PERSON_2] will call [PHONE].": True,
        "Nerve pain.": False,  # thumbs down
        "Pain along the sciatic nerve, from the lower back.": True,
        "The one below it.": True,
        "Other answer.": True,
    }
    corrected = [r["metadata"] for r in records if r["metadata"]["label_from"] == "correction"]
    assert {(m["completion_from"], m["correction_type"]) for m in corrected} == {
        ("answer", "major_edit"),
        ("correction", "major_edit"),
    }
    assert all(not {"user", "session", "tags"} & set(r["metadata"]) for r in records)
    counts = result.manifest["counts"]
    assert counts["records_written"] == len(records) == 9
    assert counts["dropped"]["duplicate"] == 1
    assert counts["dropped_by_reason"]["invalid"] == {
        "no_label": 1,  # session_turn_1: no feedback
        "tool_calls_unsupported": 1,
    }


@pytest.mark.parametrize(
    ("feedback", "expected"),
    [
        ({}, None),
        ({"comment": "nice", "score": 0.9}, None),  # the score's scale is the app's
        ({"outcome": "accepted", "thumbs": "down"}, (True, "outcome")),
        ({"outcome": "rejected", "rating": 5}, (False, "outcome")),
        ({"outcome": "modified", "thumbs": "up"}, (True, "thumbs")),
        ({"outcome": "modified"}, None),
        ({"thumbs": "down", "rating": 5}, (False, "thumbs")),
        ({"rating": 4}, (True, "rating")),
        ({"rating": 2}, (False, "rating")),
        ({"rating": 3}, None),
    ],
)
def test_label_rule_outcome_then_thumbs_then_rating(
    feedback: dict[str, Any], expected: tuple[bool, str] | None
) -> None:
    assert label(feedback) == expected


async def test_corrections_label_the_answer_false_and_the_correction_true(
    store: Store, tmp_path: Path
) -> None:
    await seed(
        store,
        {
            # A tool call rewritten as text: only the correction can be learned from.
            "tool_corrected": (
                {"user": "a", "exchange": chat("Book me.", TOOL_CALL, tools=TOOLS)},
                [{"outcome": "modified", "correction": "Which day suits you?"}],
            ),
            # The "correction" is the answer itself: judged by the thumbs instead.
            "unchanged": (
                {"user": "b", "exchange": chat("Define ROM.", "Range of motion.")},
                [
                    {
                        "thumbs": "up",
                        "correction": "Range of motion",
                        "correction_type": "unchanged",
                    }
                ],
            ),
            "minor_edit": (
                {"user": "c", "exchange": chat("Define SI.", "Sacroiliac joint")},
                [{"outcome": "accepted", "correction": "Sacroiliac joint."}],
            ),
        },
    )
    result = await export(store, tmp_path / "out", "kto")
    got = {(r["completion"][0]["content"], r["label"]) for r in result.all_records}
    assert got == {
        ("Which day suits you?", True),
        ("Range of motion.", True),
        ("Sacroiliac joint.", True),
        ("Sacroiliac joint", False),
    }
    assert result.manifest["counts"]["dropped_by_reason"]["invalid"] == {}


GOOD: dict[str, Any] = {
    "prompt": [{"role": "user", "content": "Hi"}],
    "completion": [{"role": "assistant", "content": "Hello."}],
    "label": True,
}


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"label": None}, "missing_field"),
        ({"label": 1}, "data_type"),
        ({"label": "true"}, "data_type"),
        ({"chosen": []}, "unrecognized_key"),
        ({"prompt": []}, "data_type"),
        ({"prompt": [*GOOD["prompt"], *GOOD["completion"]]}, "prompt_not_from_user"),
        ({"completion": GOOD["completion"] * 2}, "bad_output"),
        ({"completion": [TOOL_CALL]}, "bad_output"),
        ({"completion": [{"role": "assistant", "content": "  "}]}, "missing_content"),
    ],
)
def test_kto_check_names_the_first_problem(change: dict[str, Any], kind: str) -> None:
    fmt = get_format("kto")
    assert fmt.check(GOOD) == []
    record = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    problems = fmt.check(record)
    assert problems and problems[0].split(":")[0] == kind
