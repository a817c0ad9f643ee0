"""The OpenAI chat fine-tuning export, from a seeded store, checked like OpenAI checks it."""

from __future__ import annotations

from pathlib import Path

from exporters.formats import FormatOptions
from exporters.formats.openai import check_chat
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import SYSTEM


async def test_openai_export_keeps_approved_and_corrected_answers(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "openai")
    records = result.all_records
    assert all(check_chat(r) == [] for r in records)
    finals = {r["messages"][-1].get("content") for r in records}
    assert "Lumbago, 3 weeks." in finals
    # The correction replaces the model's answer; the answer itself is not trained on.
    assert "Neck pain for 2 weeks after a car accident." in finals
    assert "Patient has neck pain." not in finals
    # Rejected without a correction, thumbed down, failed, truncated: left out.
    assert "ICPC-2 Z99." not in finals
    assert "Nerve pain." not in finals
    counts = result.manifest["counts"]
    assert counts["dropped_by_reason"]["filtered"] == {"quality_flags": 1, "status": 1}
    assert counts["dropped_by_reason"]["invalid"] == {"rejected_without_correction": 2}
    assert counts["dropped"]["duplicate"] == 1
    assert counts["records_written"] == len(records) == 8
    assert counts["interactions_read"] == 13
    assert records[0]["messages"][0] == {"role": "system", "content": SYSTEM}


async def test_tool_calls_and_tools_are_kept(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    records = (await export(store, tmp_path / "out", "openai")).all_records
    (tool_example,) = [r for r in records if "tools" in r]
    assert tool_example["tools"][0]["function"]["name"] == "book_appointment"
    last = tool_example["messages"][-1]
    assert last["role"] == "assistant"
    assert last["tool_calls"][0]["function"] == {
        "name": "book_appointment",
        "arguments": '{"day":"Mon"}',
    }


async def test_personal_data_is_gone_and_clinical_content_stays(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "openai", models=("support",))
    text = b"".join(path.read_bytes() for path in result.files.values()).decode()
    for secret in ("Kari", "Nordmann", "kari@example.no", "912 34 567", "Hansen"):
        assert secret not in text
    (personal,) = [r for r in result.all_records if "L4-L5" in r["messages"][1]["content"]]
    prompt, answer = personal["messages"][1]["content"], personal["messages"][2]["content"]
    assert "ICPC-2 L03" in prompt and "500 mg" in prompt
    # The same person is the same pseudonym in the prompt and the answer.
    assert "[PERSON_1]" in prompt and "Thank you [PERSON_1]." in answer
    assert "[PERSON_2] will call [PHONE]" in answer
    assert result.manifest["redactions"] == {"email": 1, "person": 3, "phone": 2}


async def test_filters_narrow_the_selection(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "a", "openai", min_rating=5)
    assert len(result.all_records) == 2  # `accepted` and the A/B candidate
    result = await export(store, tmp_path / "b", "openai", models=("other",))
    assert [r["messages"][-1]["content"] for r in result.all_records] == ["Other answer."]
    result = await export(store, tmp_path / "c", "openai", outcomes=("modified",))
    assert len(result.all_records) == 1
    assert result.manifest["counts"]["dropped_by_reason"]["filtered"]["outcome"] == 11


async def test_too_long_examples_are_dropped(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "openai", options=FormatOptions(max_tokens=40))
    assert result.dropped["too_long"] > 0
    dropped = result.dropped["too_long"] + result.dropped["duplicate"]
    assert result.manifest["counts"]["records_written"] == 9 - dropped


async def test_split_never_puts_one_user_on_both_sides(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "openai", validation_fraction=0.5, seed=3)
    train = result.records("train.jsonl")
    validation = result.records("validation.jsonl")
    assert train and validation
    assert result.manifest["counts"]["train"] == len(train)
    again = await export(store, tmp_path / "again", "openai", validation_fraction=0.5, seed=3)
    assert again.records("validation.jsonl") == validation  # deterministic


async def test_sample_is_seeded_and_bounded(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    first = await export(store, tmp_path / "1", "openai", max_examples=3, seed=7)
    second = await export(store, tmp_path / "2", "openai", max_examples=3, seed=7)
    assert len(first.all_records) == 3
    assert first.all_records == second.all_records
    assert first.dropped["not_sampled"] == 5


def test_openai_checks_name_each_problem() -> None:
    assert check_chat({"messages": []})[0].startswith("missing_messages_list")
    problems = check_chat(
        {"messages": [{"role": "robot", "content": "x", "extra": 1}, {"role": "user"}]}
    )
    kinds = [p.split(":")[0] for p in problems]
    assert kinds == [
        "message_unrecognized_key",
        "unrecognized_role",
        "missing_content",
        "example_missing_assistant_message",
    ]


def test_every_string_in_the_bodies_is_redacted() -> None:
    from exporters.privacy import Privacy
    from exporters.selection import Example
    from gateway.config import AnonymizeConfig

    record = {
        "id": "x",
        "created_at": "2026-01-01T00:00:00+00:00",
        "user": "kari@example.no",
        "request": {
            "model": "gpt-4o-2024-08-06",
            "input": ["mail kari@example.no"],
            "user": "kari@example.no",
        },
        "response": {
            "id": "resp-1",
            "choices": [{"message": {"reasoning_content": "call +47 912 34 567", "refusal": None}}],
        },
        "tags": {"patient_age": "47"},
        "api_key_name": "ops",
    }
    example = Example(record, {})
    Privacy(AnonymizeConfig(salt="s")).apply(example)
    text = repr(example.record)
    assert "kari" not in text and "912 34 567" not in text and "ops" not in text
    assert example.record["request"]["model"] == "gpt-4o-2024-08-06"
    assert example.record["request"]["input"] == ["mail [EMAIL]"]
    assert example.record["user"] == example.record["request"]["user"]  # one salted hash
    assert example.record["tags"] == {"patient_age": "40-49"}
