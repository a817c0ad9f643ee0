"""The Amazon Bedrock exports (Nova and Claude 3 Haiku), from a seeded store, checked twice: by the
format's own `check` and by the documented schema written out here, independently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporters.formats import FormatOptions, get_format
from exporters.formats.bedrock import check_claude, check_nova
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import SYSTEM, chat, seed

FORMATS = ("bedrock", "bedrock-claude")
CORRECTION = "Neck pain for 2 weeks after a car accident."


def nova_schema(record: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Asserts AWS's documented Nova SFT record; returns the system texts and the turns."""
    assert set(record) <= {"schemaVersion", "system", "messages"}
    assert record["schemaVersion"] == "bedrock-conversation-2024"
    blocks = [*record.get("system", []), *(b for m in record["messages"] for b in m["content"])]
    for block in blocks:
        assert list(block) == ["text"] and isinstance(block["text"], str) and block["text"]
    turns = []
    for message in record["messages"]:
        assert list(message) == ["role", "content"] and message["content"]
        turns.append((message["role"], [b["text"] for b in message["content"]]))
    return [b["text"] for b in record.get("system", [])], turns


def claude_schema(record: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Asserts Bedrock's documented Claude 3 Haiku record; no key beyond system and messages."""
    assert set(record) <= {"system", "messages"}
    assert isinstance(record.get("system", "x"), str) and record.get("system", "x")
    turns = []
    for message in record["messages"]:
        assert list(message) == ["role", "content"]
        assert isinstance(message["content"], str) and message["content"]
        turns.append((message["role"], [message["content"]]))
    return [record["system"]] if "system" in record else [], turns


SCHEMAS: dict[str, Callable[[dict[str, Any]], tuple[list[str], list[tuple[str, list[str]]]]]] = {
    "bedrock": nova_schema,
    "bedrock-claude": claude_schema,
}


def conversation(fmt: str, record: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The record's system texts and turns, after asserting both formats' shared rules."""
    system, turns = SCHEMAS[fmt](record)
    roles = [role for role, _ in turns]
    assert len(roles) >= 2 and len(roles) % 2 == 0
    assert roles == ["user", "assistant"] * (len(roles) // 2)
    return system, turns


@pytest.mark.parametrize("fmt", FORMATS)
async def test_bedrock_export_is_valid_and_trains_on_the_correction(
    store: Store, seeded: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    result = await export(store, tmp_path / "out", fmt)
    records = result.all_records
    check = get_format(fmt).check
    assert records and all(check(r) == [] for r in records)
    conversations = [conversation(fmt, r) for r in records]
    finals = {turns[-1][1][-1] for _, turns in conversations}
    assert "Lumbago, 3 weeks." in finals
    assert CORRECTION in finals and "Patient has neck pain." not in finals
    assert "ICPC-2 Z99." not in finals  # rejected without a correction
    assert all(system == [SYSTEM] for system, _ in conversations)
    counts = result.manifest["counts"]
    assert counts["dropped_by_reason"]["invalid"] == {
        "rejected_without_correction": 2,
        "tool_calls_unsupported": 1,
    }
    assert counts["records_written"] == len(records) == 7
    assert all("metadata" not in r for r in records)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_multi_turn_conversation_keeps_its_turns(
    store: Store, seeded: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    records = (await export(store, tmp_path / "out", fmt)).all_records
    turns_of = [conversation(fmt, r)[1] for r in records]
    (turns,) = [t for t in turns_of if len(t) > 2]
    assert turns == [
        ("user", ["What is L4?"]),
        ("assistant", ["A lumbar vertebra."]),
        ("user", ["And L5?"]),
        ("assistant", ["The one below it."]),
    ]


_TOOL_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "book", "arguments": "{}"}}
    ],
}
# Conversations OpenAI takes and Bedrock does not, as they are recorded.
AWKWARD = {
    "two_user_turns": (
        {
            "user": "a1",
            "exchange": chat(
                [
                    {"role": "system", "content": SYSTEM},
                    {"role": "developer", "content": "Answer in one line."},
                    {"role": "user", "content": "Context: L5-S1 disc bulge."},
                    {"role": "user", "content": [{"type": "text", "text": "Is it serious?"}]},
                ],
                "Usually not; most resolve in weeks.",
            ),
        },
        [],
    ),
    "image": (
        {
            "user": "a2",
            "exchange": chat(
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What does this X-ray show?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}},
                        ],
                    }
                ],
                "A healthy spine.",
            ),
        },
        [],
    ),
    "tool_result": (
        {
            "user": "a3",
            "exchange": chat(
                [
                    {"role": "user", "content": "Book me."},
                    _TOOL_CALL,
                    {"role": "tool", "tool_call_id": "c1", "content": "booked"},
                ],
                "Booked for Monday.",
            ),
        },
        [],
    ),
    "late_system": (
        {
            "user": "a4",
            "exchange": chat(
                [
                    {"role": "user", "content": "Hi."},
                    {"role": "assistant", "content": "Hello."},
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is C7?"},
                ],
                "A neck vertebra.",
            ),
        },
        [],
    ),
    "reserved_word": (
        {"user": "a5", "exchange": chat("User: said their back hurts.", "Noted.")},
        [],
    ),
}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_conversations_bedrock_cannot_take_are_merged_or_dropped(
    store: Store, tmp_path: Path, fmt: str
) -> None:
    await seed(store, AWKWARD)
    result = await export(store, tmp_path / "out", fmt)
    invalid = {
        "non_text_content": 1,
        "tool_calls_unsupported": 1,
        "system_mid_conversation": 1,
    }
    if fmt == "bedrock":
        # Nova reserves `User:` for its prompt template; Claude's format has no such rule.
        invalid["reserved_keyword"] = 1
    assert result.manifest["counts"]["dropped_by_reason"]["invalid"] == invalid
    records = result.all_records
    assert all(get_format(fmt).check(r) == [] for r in records)
    merged = next(r for r in records if "Usually not" in str(r))
    system, turns = conversation(fmt, merged)
    user = ["Context: L5-S1 disc bulge.", "Is it serious?"]
    if fmt == "bedrock":  # one text block per original message
        assert system == [SYSTEM, "Answer in one line."]
        assert turns[0] == ("user", user)
    else:  # joined by a blank line
        assert system == [f"{SYSTEM}\n\nAnswer in one line."]
        assert turns[0] == ("user", ["\n\n".join(user)])
    assert turns[1] == ("assistant", ["Usually not; most resolve in weeks."])
    assert len(records) == (1 if fmt == "bedrock" else 2)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_too_long_examples_are_dropped(
    store: Store, seeded: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    result = await export(store, tmp_path / "out", fmt, options=FormatOptions(max_tokens=20))
    dropped = result.manifest["counts"]["dropped"]
    assert dropped["too_long"] > 0
    # 8 records were built (11 examples less 3 invalid); each is written, too long or a duplicate.
    assert (
        result.manifest["counts"]["records_written"] + dropped["too_long"] + dropped["duplicate"]
        == 8
    )


def _nova(messages: list[Any], **extra: Any) -> dict[str, Any]:
    return {"schemaVersion": "bedrock-conversation-2024", "messages": messages, **extra}


def _turn(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


@pytest.mark.parametrize(
    ("check", "record", "kinds"),
    [
        (check_nova, [], ["data_type"]),
        (
            check_nova,
            _nova([_turn("user", [{"text": "q"}]), _turn("assistant", [{"text": "a"}])]),
            [],
        ),
        (
            check_nova,
            {"schemaVersion": "v1", "messages": [], "metadata": {}},
            ["schema_version", "unrecognized_key", "missing_messages"],
        ),
        (
            check_nova,
            _nova(
                [_turn("assistant", [{"text": "a"}]), _turn("user", "q")],
                system=[{"text": ""}],
            ),
            ["empty_content", "role_order", "role_order", "content_format", "last_turn"],
        ),
        (
            check_nova,
            _nova(
                [
                    _turn("user", [{"text": "q", "image": {}}]),
                    {"role": "assistant", "content": [{"text": "a"}], "name": "x"},
                ]
            ),
            ["content_format", "message_format"],
        ),
        (
            check_nova,
            _nova([_turn("user", [{"text": "<image> q"}]), _turn("assistant", [{"text": "a"}])]),
            ["reserved_keyword"],
        ),
        (check_claude, {"messages": [_turn("user", "q"), _turn("assistant", "a")]}, []),
        (
            check_claude,
            {"system": "", "messages": [_turn("user", "q")], "schemaVersion": "x"},
            ["system_format", "unrecognized_key", "missing_messages"],
        ),
        (
            check_claude,
            {"messages": [_turn("user", [{"text": "q"}]), _turn("user", " "), _turn("tool", "t")]},
            ["content_format", "role_order", "empty_content", "role_order", "last_turn"],
        ),
    ],
)
def test_bedrock_checks_name_each_problem(
    check: Callable[[Any], list[str]], record: Any, kinds: list[str]
) -> None:
    assert [p.split(":")[0] for p in check(record)] == kinds
