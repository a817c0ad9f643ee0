"""What a model learns from an export: never a turn the user threw away, and the pairs that
several judged answers make (A/B arms matched on what the client sent, regenerations)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from exporters.formats import FormatOptions
from exporters.run import ExportRequest, run_export
from gateway.config import AnonymizeConfig
from gateway.store.base import Store
from tests.exporters.conftest import Exported, export
from tests.exporters.seed import START, seed
from tests.exporters.training_seed import (
    CASES,
    CORRECTED,
    ORIGINAL,
    OVERRIDE,
    OVERRIDING,
    RIGHT,
    WRONG,
)


@pytest.fixture
async def ids(store: Store) -> dict[str, str]:
    return await seed(store, CASES)


def last_turn(record: dict) -> str:
    return str(record["messages"][-1].get("content"))


async def test_openai_gives_thrown_away_turns_weight_zero(
    store: Store, ids: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "openai")
    by_answer = {last_turn(r): r for r in result.all_records}
    history = by_answer[RIGHT]["messages"]
    assert history[2] == {"role": "assistant", "content": WRONG, "weight": 0}
    # A corrected answer resent by the client is not what the user kept either.
    corrected = by_answer["Start light exercise."]["messages"]
    assert corrected[2] == {"role": "assistant", "content": ORIGINAL, "weight": 0}
    # A kept answer in the history is left to learn from (weight defaults to 1).
    assert by_answer["The axis."]["messages"][2] == {"role": "assistant", "content": "The atlas."}
    assert CORRECTED in by_answer  # the corrected turn's own example ends with the correction
    assert WRONG not in by_answer  # and the thumbed-down one has none
    assert result.manifest["counts"]["turns_zero_weighted"] == 2


async def test_rejections_are_known_even_when_filtered_out(
    store: Store, ids: dict[str, str], tmp_path: Path
) -> None:
    # The thumbed-down first turn is not selected, yet the turn it left in the history is
    # still given weight 0.
    result = await export(store, tmp_path / "out", "openai", thumbs="up")
    (record,) = [r for r in result.all_records if last_turn(r) == RIGHT]
    assert record["messages"][2]["weight"] == 0
    assert result.manifest["counts"]["turns_zero_weighted"] == 1


@pytest.mark.parametrize("fmt", ["huggingface", "bedrock", "bedrock-claude", "conversations"])
async def test_formats_that_cannot_mask_a_turn_leave_the_example_out(
    store: Store, ids: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    result = await export(store, tmp_path / "out", fmt)
    text = "\n".join(str(r) for r in result.all_records)
    assert WRONG not in text and ORIGINAL not in text
    assert result.manifest["counts"]["dropped_by_reason"]["invalid"]["rejected_turn_in_history"]
    assert "The axis." in text  # a history of kept turns is fine


async def test_kto_keeps_the_history_as_prompt_and_learns_rejections_as_undesirable(
    store: Store, ids: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "kto")
    wrong = {"role": "assistant", "content": WRONG}
    # A trainer never learns from a prompt: the history stays, as context.
    assert any(wrong in r["prompt"] for r in result.all_records)
    # As a completion, the thrown-away answer is only ever an example of what not to say.
    assert [r["label"] for r in result.all_records if r["completion"] == [wrong]] == [False]


@pytest.mark.parametrize("known", [True, False], ids=["config", "no-config"])
async def test_ab_pairs_match_what_the_client_sent(
    store: Store, ids: dict[str, str], tmp_path: Path, known: bool
) -> None:
    options = FormatOptions(system_prompt_variants=OVERRIDING if known else None)
    result = await export(store, tmp_path / "out", "dpo", options=options)
    (ab,) = [r for r in result.all_records if r["metadata"]["source"] == "ab_test"]
    assert (ab["chosen"][0]["content"], ab["rejected"][0]["content"]) == ("Nerves.", "Pain.")
    assert (ab["metadata"]["variant"], ab["metadata"]["rejected_variant"]) == ("a", "b")
    # The prompt is the chosen answer's own: arm a kept the client's system prompt.
    assert ab["prompt"][0]["content"] != OVERRIDE


async def test_an_arm_that_keeps_the_system_prompt_must_match_it(
    store: Store, tmp_path: Path
) -> None:
    # Arm a never replaces the system prompt: two different client system prompts are two
    # different prompts, and their answers are not compared.
    cases = {
        name: ({**fields, "variant": variant}, feedback)
        for (name, (fields, feedback)), variant in zip(
            [("one", CASES["lonely"]), ("two", CASES["ab_a"])], ["a", "c"], strict=True
        )
    }
    await seed(store, cases)
    options = FormatOptions(system_prompt_variants=frozenset())
    result = await export(store, tmp_path / "out", "dpo", options=options)
    assert result.all_records == []


async def test_regenerations_pair_and_the_unpaired_are_counted(
    store: Store, ids: dict[str, str], tmp_path: Path
) -> None:
    options = FormatOptions(system_prompt_variants=OVERRIDING)
    result = await export(store, tmp_path / "out", "dpo", options=options)
    (regen,) = [r for r in result.all_records if r["metadata"]["source"] == "regeneration"]
    assert (regen["chosen"][0]["content"], regen["rejected"][0]["content"]) == (
        "Range of motion.",
        "Range.",
    )
    assert regen["metadata"]["interaction_id"] == ids["regen_2"]
    counts = result.manifest["counts"]
    assert counts["pairs_built"] == {"correction": 1, "ab_test": 1, "regeneration": 1}
    # Judged, uncorrected and with text: r1 r2 c2 k1 k2 ab_a ab_b regen_1 regen_2 lonely
    # tool_2 bare; four of them are paired.
    assert counts["held_for_pairing"] == 12
    assert counts["held_never_paired"] == {"answered_once": 8}


async def test_a_rejection_before_an_incremental_window_is_still_known(
    store: Store, ids: dict[str, str], tmp_path: Path
) -> None:
    # r1 (thumbed down) was created and judged before the window; r2, built on it, inside.
    request = ExportRequest("openai", changed_since=START + timedelta(hours=1))
    manifest = await run_export(store, AnonymizeConfig(), request, tmp_path / "out")
    out = Exported(tmp_path / "out", manifest)
    (record,) = [r for r in out.all_records if last_turn(r) == RIGHT]
    assert record["messages"][2]["weight"] == 0
    # Nothing from before the window is exported.
    assert ids["r1"] not in str(out.all_records) and manifest["counts"]["interactions_read"] < 14
