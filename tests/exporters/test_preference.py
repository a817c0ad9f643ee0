"""The preference exports (`dpo`, `openai-preference`) from a seeded store: pairs from
corrections and from A/B traffic, TRL's and OpenAI's shapes, and the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporters.chat import CHAT_ENDPOINT, Unusable
from exporters.curate import split_of
from exporters.formats import FormatOptions, get_format
from exporters.formats.preference import goodness
from exporters.privacy import Privacy
from exporters.selection import Example
from gateway.config import AnonymizeConfig
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import SYSTEM, TOOLS, chat, seed

CORRECTION = "Neck pain for 2 weeks after a car accident."
ORIGINAL = "Patient has neck pain."
AB_WINNER = "Pain along the sciatic nerve, from the lower back."
AB_LOSER = "Nerve pain."


def outputs(record: dict[str, Any]) -> tuple[str, str]:
    """(chosen, rejected) text of a record of either format."""
    chosen = record.get("chosen") or record["preferred_output"]
    rejected = record.get("rejected") or record["non_preferred_output"]
    return chosen[0]["content"], rejected[0]["content"]


def assert_messages(messages: Any) -> None:
    assert isinstance(messages, list) and messages
    for message in messages:
        assert isinstance(message["role"], str) and isinstance(message["content"], str)


async def test_dpo_pairs_corrections_and_ab_answers_in_trl_columns(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "dpo")
    records = result.all_records
    fmt = get_format("dpo")
    assert all(fmt.check(r) == [] for r in records)
    for record in records:
        assert set(record) == {"prompt", "chosen", "rejected", "metadata"}
        assert_messages(record["prompt"])
        assert record["prompt"][-1]["role"] == "user"
        for side in ("chosen", "rejected"):
            assert_messages(record[side])
            assert [m["role"] for m in record[side]] == ["assistant"]
    by_source = {r["metadata"]["source"]: r for r in records}
    assert set(by_source) == {"correction", "ab_test"}
    correction = by_source["correction"]
    assert outputs(correction) == (CORRECTION, ORIGINAL)
    assert correction["prompt"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Write the subjective."},
    ]
    assert correction["metadata"]["interaction_id"] == seeded["modified"]
    assert correction["metadata"]["correction_type"] == "major_edit"
    assert correction["metadata"]["model"] == "support"
    ab = by_source["ab_test"]
    assert outputs(ab) == (AB_WINNER, AB_LOSER)
    assert ab["metadata"]["interaction_id"] == seeded["ab_candidate"]
    assert ab["metadata"]["rejected_interaction_id"] == seeded["ab_control"]
    assert (ab["metadata"]["variant"], ab["metadata"]["rejected_variant"]) == ("b", "a")
    # Nothing that identifies a person rides along in the metadata.
    assert all(not {"user", "session", "tags"} & set(r["metadata"]) for r in records)
    counts = result.manifest["counts"]
    assert counts["records_written"] == len(records) == 2
    assert counts["interactions_read"] == 13
    assert counts["dropped_by_reason"]["filtered"] == {"quality_flags": 1, "status": 1}
    assert counts["dropped_by_reason"]["invalid"] == {
        "no_preference": 1,  # the unjudged first turn of the session
        "tool_calls_unsupported": 1,
    }
    # Every judged answer without a correction waits for a match; the A/B two found one.
    assert counts["pairs_built"] == {"correction": 1, "ab_test": 1, "regeneration": 0}
    assert counts["held_for_pairing"] == 8
    assert counts["held_never_paired"] == {"answered_once": 6}


async def test_openai_preference_lines_hold_only_what_openai_accepts(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "openai-preference")
    records = result.all_records
    assert len(records) == result.manifest["counts"]["records_written"] == 2
    fmt = get_format("openai-preference")
    for record in records:
        assert set(record) == {"input", "preferred_output", "non_preferred_output"}
        assert set(record["input"]) == {"messages"}  # no tools offered in these prompts
        assert_messages(record["input"]["messages"])
        assert record["input"]["messages"][-1]["role"] == "user"
        assert fmt.check(record) == []
    assert {outputs(r) for r in records} == {(CORRECTION, ORIGINAL), (AB_WINNER, AB_LOSER)}
    assert records[0]["preferred_output"] == [{"role": "assistant", "content": CORRECTION}]


async def test_ab_pair_is_split_with_the_chosen_answers_user(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    privacy = Privacy(AnonymizeConfig())
    winner, loser = privacy.pseudonym("u10"), privacy.pseudonym("u9")
    assert winner and loser
    # A seed that puts the two users on different sides, so the test can tell them apart.
    seed_ = next(s for s in range(100) if split_of(winner, s, 0.5) != split_of(loser, s, 0.5))
    result = await export(store, tmp_path / "out", "dpo", validation_fraction=0.5, seed=seed_)
    side = f"{split_of(winner, seed_, 0.5)}.jsonl"
    assert AB_WINNER in [outputs(r)[0] for r in result.records(side)]


def answer(
    prompt: str,
    text: str,
    variant: str | None,
    feedback: list[dict[str, Any]],
    user: str = "u",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    fields: dict[str, Any] = {"user": user, "exchange": chat(prompt, text)}
    if variant:
        fields["variant"] = variant
    return fields, feedback


TOOL_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "book_appointment", "arguments": ""}}
    ],
}

# Our own traffic: one prompt answered twice by variant a and once by b; a tie; an unjudged
# answer; a tool call; a prompt only one variant answered; two variants saying the same.
AB_CASES: dict[str, Any] = {
    "a_good": answer(
        "Explain whiplash.", "A neck injury from a sudden jolt.", "a", [{"rating": 5}], "u1"
    ),
    "a_bad": answer("Explain whiplash.", "Neck thing.", "a", [{"thumbs": "down"}], "u2"),
    "b_mid": answer("Explain whiplash.", "A strained neck.", "b", [{"outcome": "modified"}]),
    "tie_a": answer("Define ROM.", "Range of motion.", "a", [{"thumbs": "up"}]),
    "tie_b": answer("Define ROM.", "How far a joint moves.", "b", [{"outcome": "accepted"}]),
    "unjudged": answer("Define ROM.", "Range.", "b", []),
    "tool": (
        {"user": "t", "variant": "a", "exchange": chat("Book me.", TOOL_CALL, tools=TOOLS)},
        [{"thumbs": "up"}],
    ),
    "solo_1": answer("What is TMJ?", "The jaw joint.", "c", [{"thumbs": "up"}], "u3"),
    "solo_2": answer("What is TMJ?", "A joint.", "c", [{"thumbs": "down"}], "u4"),
    "same_a": answer("Define SI.", "Sacroiliac.", "a", [{"thumbs": "down"}]),
    "same_b": answer("Define SI.", "sacroiliac.", "b", [{"thumbs": "up"}]),
}


@pytest.mark.parametrize("fmt", ["dpo", "openai-preference"])
async def test_ab_pairs_need_two_variants_judged_differently(
    store: Store, tmp_path: Path, fmt: str
) -> None:
    await seed(store, AB_CASES)
    result = await export(store, tmp_path / "out", fmt)
    # a's best over b, and b over a's worst; never a over a, never a tie or a lone variant.
    assert {outputs(r) for r in result.all_records} == {
        ("A neck injury from a sudden jolt.", "A strained neck."),
        ("A strained neck.", "Neck thing."),
    }
    counts = result.manifest["counts"]
    assert counts["records_written"] == 2
    assert counts["dropped_by_reason"]["invalid"] == {
        "identical_outputs": 1,  # found by check(), counted by its kind
        "no_preference": 1,
        "tool_calls_unsupported": 1,
    }


def test_only_the_best_and_worst_answer_per_variant_are_paired() -> None:
    fmt = get_format("dpo")
    for rating in (3, 4, 2, 5, 1, 4):
        assert fmt.build(_example(f"rated {rating}", "a", {"rating": rating})) == []
    assert fmt.build(_example("b's answer", "b", {"rating": 3})) == []
    pairs = [outputs(record) for record, _ in fmt.finish()]
    assert pairs == [("rated 5", "b's answer"), ("b's answer", "rated 1")]


def test_examples_without_a_pair_say_why() -> None:
    fmt = get_format("dpo")
    # Judged without a variant: held, in case the same user regenerates it.
    assert fmt.build(_example("No variant.", None, {"thumbs": "up"})) == []
    with pytest.raises(Unusable, match="no_preference"):
        fmt.build(_example("Not judged.", "a", {"comment": "hm"}))


@pytest.mark.parametrize(
    ("feedback", "expected"),
    [
        ({}, None),
        ({"comment": "fine"}, None),
        ({"thumbs": "up"}, 1.0),
        ({"thumbs": "down", "rating": 2}, -0.75),
        ({"outcome": "modified"}, 0.0),
        ({"outcome": "rejected", "rating": 1}, -1.0),
        ({"score": 0.75}, 0.5),
    ],
)
def test_goodness_is_the_mean_of_the_signals(
    feedback: dict[str, Any], expected: float | None
) -> None:
    assert goodness(feedback) == expected


async def test_long_pairs_are_dropped(store: Store, seeded: dict[str, str], tmp_path: Path) -> None:
    result = await export(store, tmp_path / "out", "dpo", options=FormatOptions(max_tokens=30))
    assert result.dropped["too_long"] == 2
    assert result.all_records == []


GOOD_DPO: dict[str, Any] = {
    "prompt": [{"role": "user", "content": "Hi"}],
    "chosen": [{"role": "assistant", "content": "Hello."}],
    "rejected": [{"role": "assistant", "content": "Go away."}],
}


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"chosen": None}, "missing_field"),
        ({"extra": 1}, "unrecognized_key"),
        ({"prompt": "Hi"}, "data_type"),
        ({"prompt": [{"role": "robot", "content": "Hi"}]}, "unrecognized_role"),
        ({"prompt": [{"role": "user", "content": " "}]}, "missing_content"),
        (
            {"prompt": [{"role": "user", "content": "Hi"}, *GOOD_DPO["chosen"]]},
            "prompt_not_from_user",
        ),
        ({"chosen": []}, "bad_output"),
        ({"chosen": [{"role": "user", "content": "Hello."}]}, "bad_output"),
        ({"chosen": [{**TOOL_CALL, "content": "x"}]}, "bad_output"),
        ({"rejected": [{"role": "assistant", "content": ""}]}, "missing_content"),
        ({"rejected": [{"role": "assistant", "content": " hello. "}]}, "identical_outputs"),
    ],
)
def test_dpo_check_names_the_first_problem(change: dict[str, Any], kind: str) -> None:
    fmt = get_format("dpo")
    assert fmt.check(GOOD_DPO) == []
    record = {k: v for k, v in {**GOOD_DPO, **change}.items() if v is not None}
    problems = fmt.check(record)
    assert problems and problems[0].split(":")[0] == kind


def test_openai_preference_check_refuses_what_openai_would() -> None:
    fmt = get_format("openai-preference")
    good = {
        "input": {"messages": GOOD_DPO["prompt"], "tools": TOOLS},
        "preferred_output": GOOD_DPO["chosen"],
        "non_preferred_output": GOOD_DPO["rejected"],
    }
    assert fmt.check(good) == []
    not_an_object: Any = [good]
    assert fmt.check(not_an_object)[0].startswith("data_type")
    assert fmt.check({**good, "metadata": {}})[0].startswith("unrecognized_key")
    assert fmt.check({**good, "input": {"prompt": "Hi"}})[0].startswith("missing_field")
    assert fmt.check({**good, "input": {**good["input"], "tools": {}}})[0].startswith("data_type")
    swapped = {**good, "non_preferred_output": GOOD_DPO["chosen"]}
    assert fmt.check(swapped)[0].startswith("identical_outputs")


def _example(text: str, variant: str | None, feedback: dict[str, Any]) -> Example:
    request, response = chat("Same prompt.", text)
    record = {
        "id": text,
        "endpoint": CHAT_ENDPOINT,
        "requested_model": "support",
        "variant": variant,
        "user": f"user-of-{text}",
        "request": request,
        "response": response,
    }
    return Example(record, feedback)
