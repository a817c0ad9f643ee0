"""The ShareGPT conversations export: a session's chain of requests becomes one conversation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from exporters.formats.conversations import Conversations, check_conversation
from exporters.selection import Example
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import START, SYSTEM, TOOLS, chat, seed
from tests.exporters.training_seed import CASES as TRAINING


def history(*turns: str) -> list[dict[str, Any]]:
    """System prompt, then user and assistant turns alternating, starting with the user."""
    roles = ("user", "assistant")
    return [
        {"role": "system", "content": SYSTEM},
        *({"role": roles[i % 2], "content": text} for i, text in enumerate(turns)),
    ]


def case(
    session: str, exchange: tuple[dict[str, Any], dict[str, Any]], feedback: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A `seed` case: one request of `session`, with its feedback events."""
    return {"session": session, "exchange": exchange}, feedback


def spoken(*turns: str) -> list[dict[str, str]]:
    speakers = ("human", "gpt")
    return [
        {"from": "system", "value": SYSTEM},
        *({"from": speakers[i % 2], "value": text} for i, text in enumerate(turns)),
    ]


def by_ids(records: list[dict[str, Any]], ids: dict[str, str], *names: str) -> dict[str, Any]:
    wanted = [ids[name] for name in names]
    (found,) = [r for r in records if r["metadata"]["interaction_ids"] == wanted]
    return found


async def test_a_session_becomes_one_conversation(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "out", "conversations")
    records = result.all_records
    assert all(check_conversation(r) == [] for r in records)
    session = by_ids(records, seeded, "session_turn_1", "session_turn_2")
    assert session["conversations"] == spoken(
        "What is L4?", "A lumbar vertebra.", "And L5?", "The one below it."
    )
    assert session["metadata"]["turns"] == 5
    assert session["metadata"]["model"] == "support"
    # The session id is the pipeline's pseudonym, never the raw one.
    assert session["metadata"]["session"] not in (None, "s1")
    # The first turn is inside the merged conversation, not a conversation of its own.
    assert not [
        r for r in records if r["metadata"]["interaction_ids"] == [seeded["session_turn_1"]]
    ]
    # Rows without a session stay single conversations; rejected, failed and flagged rows are
    # left out as in every training format, and the A/B prompt with its duplicate once.
    single = by_ids(records, seeded, "accepted")
    assert single["metadata"]["session"] is None
    assert single["conversations"] == spoken(
        "Summarise: low back pain 3 weeks.", "Lumbago, 3 weeks."
    )
    assert len(records) == result.manifest["counts"]["records_written"] == 7
    assert result.manifest["counts"]["dropped_by_reason"]["invalid"] == {
        "rejected_without_correction": 2
    }
    assert result.dropped["duplicate"] == 1


async def test_corrections_and_tool_calls_are_written(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    records = (await export(store, tmp_path / "out", "conversations")).all_records
    modified = by_ids(records, seeded, "modified")
    assert modified["conversations"][-1] == {
        "from": "gpt",
        "value": "Neck pain for 2 weeks after a car accident.",
    }
    tool = by_ids(records, seeded, "tool_call")
    # LLaMA-Factory's layout: the call is a `function_call` turn, the tools are JSON text.
    assert tool["conversations"][-1] == {
        "from": "function_call",
        "value": '{"name":"book_appointment","arguments":{"day":"Mon"}}',
    }
    assert orjson.loads(tool["tools"])[0]["function"]["name"] == "book_appointment"


async def test_a_request_that_does_not_continue_starts_a_new_conversation(
    store: Store, tmp_path: Path
) -> None:
    ids = await seed(
        store,
        {
            "first": case("s2", chat("What is C1?", "The atlas."), []),
            # A new topic: the history is not the first exchange.
            "new_topic": case("s2", chat("What is T1?", "A thoracic vertebra."), []),
            "follow_up": case(
                "s2",
                chat(history("What is T1?", "A thoracic vertebra.", "Any ribs?"), "Yes."),
                [],
            ),
            # The same prompt again (a regeneration) does not continue either.
            "regenerated": case(
                "s2",
                chat(history("What is T1?", "A thoracic vertebra.", "Any ribs?"), "Two."),
                [],
            ),
        },
    )
    records = (await export(store, tmp_path / "out", "conversations")).all_records
    assert by_ids(records, ids, "first")["conversations"] == spoken("What is C1?", "The atlas.")
    merged = by_ids(records, ids, "new_topic", "follow_up")
    assert merged["conversations"] == spoken(
        "What is T1?", "A thoracic vertebra.", "Any ribs?", "Yes."
    )
    assert by_ids(records, ids, "regenerated")["conversations"][-1]["value"] == "Two."
    assert len(records) == 3


async def test_a_correction_in_the_middle_is_written_and_the_session_still_continues(
    store: Store, tmp_path: Path
) -> None:
    corrected = [{"outcome": "modified", "correction": "The second cervical vertebra."}]
    ids = await seed(
        store,
        {
            # The client resends the model's original answer: still the same conversation.
            "asked": case("s3", chat("What is C2?", "A bone."), corrected),
            "resent_answer": case(
                "s3",
                chat(history("What is C2?", "A bone.", "Its name?"), "Axis."),
                [{"outcome": "modified", "correction": "The axis."}],
            ),
            # The client resends the correction it was given: the same too.
            "asked_again": case("s4", chat("What is C2?", "A bone."), corrected),
            "resent_correction": case(
                "s4",
                chat(
                    history("What is C2?", "The second cervical vertebra.", "Named?"),
                    "Yes, the axis.",
                ),
                [],
            ),
        },
    )
    records = (await export(store, tmp_path / "out", "conversations")).all_records
    # Either way the correction is the turn written, the original answer nowhere.
    assert by_ids(records, ids, "asked", "resent_answer")["conversations"] == spoken(
        "What is C2?", "The second cervical vertebra.", "Its name?", "The axis."
    )
    assert by_ids(records, ids, "asked_again", "resent_correction")["conversations"] == spoken(
        "What is C2?", "The second cervical vertebra.", "Named?", "Yes, the axis."
    )
    assert len(records) == 2


async def test_a_rejected_turn_ends_its_conversation(store: Store, tmp_path: Path) -> None:
    ids = await seed(
        store,
        {
            "good": case("s5", chat("What is S1?", "A sacral segment."), []),
            "rejected": case(
                "s5",
                chat(history("What is S1?", "A sacral segment.", "Its nerve?"), "The ulnar."),
                [{"outcome": "rejected"}],
            ),
            "after": case(
                "s5",
                chat(
                    history(
                        "What is S1?", "A sacral segment.", "Its nerve?", "The ulnar.", "Sure?"
                    ),
                    "The S1 nerve root, sorry.",
                ),
                [],
            ),
        },
    )
    result = await export(store, tmp_path / "out", "conversations")
    records = result.all_records
    # The rejected answer is never a turn of the conversation before it...
    good = by_ids(records, ids, "good")
    assert good["conversations"] == spoken("What is S1?", "A sacral segment.")
    # ...and what followed it would teach it as a `gpt` turn, so it is left out too.
    assert len(records) == 1
    assert result.manifest["counts"]["dropped_by_reason"]["invalid"] == {
        "rejected_turn_in_history": 1,
        "rejected_without_correction": 1,
    }


def example(number: int, session: str | None, hours: float, messages: Any, answer: str) -> Example:
    request, response = chat(messages, answer)
    record = {
        "id": f"id-{number}",
        "created_at": (START + timedelta(hours=hours)).isoformat(),
        "endpoint": "chat/completions",
        "requested_model": "support",
        "session": session,
        "user": None,
        "request": request,
        "response": response,
        "feedback": [],
    }
    return Example(record, {})


def test_memory_holds_one_open_conversation_per_active_session() -> None:
    fmt = Conversations()
    assert fmt.build(example(1, "a", 0, "Hi", "Hello.")) == []
    # Session `a` moves on to a new topic: its conversation leaves at once, not at the end.
    (closed,) = fmt.build(example(2, "a", 1, "New topic", "Sure."))
    assert closed[0]["metadata"]["interaction_ids"] == ["id-1"]
    assert fmt.build(example(3, "b", 2, "Other", "Yes.")) == []
    # A row without a session is its own conversation, written at once.
    (alone,) = fmt.build(example(4, None, 3, "Solo", "Ok."))
    assert alone[0]["metadata"]["interaction_ids"] == ["id-4"]
    # A day later, sessions `a` and `b` are idle: closed by the next row, whatever its session.
    idle = fmt.build(example(5, "c", 28, "Late", "Yes."))
    assert [r["metadata"]["interaction_ids"] for r, _ in idle] == [["id-2"], ["id-3"]]
    assert [r["metadata"]["interaction_ids"] for r, _ in fmt.finish()] == [["id-5"]]
    assert fmt.finish() == []


def test_conversation_checks_name_each_problem() -> None:
    assert check_conversation([])[0].startswith("data_type")
    assert check_conversation({"conversations": []})[0].startswith("missing_conversations")
    problems = check_conversation(
        {
            "conversations": [
                {"from": "user", "value": "x"},
                {"from": "human", "value": 3},
                {"from": "tool", "value": " "},
                "turn",
            ]
        }
    )
    assert [p.split(":")[0] for p in problems] == [
        "unrecognized_from",
        "turn_order",  # LLaMA-Factory skips a row whose turns do not alternate
        "data_type",
        "unrecognized_from",  # a tool's result is an `observation`
        "missing_value",
        "data_type",
        "missing_gpt_turn",
    ]
    assert check_conversation({"conversations": spoken("Q", "A")}) == []


async def test_tool_use_in_llama_factory_layout_with_its_dataset_info(
    store: Store, tmp_path: Path
) -> None:
    await seed(store, TRAINING)
    result = await export(store, tmp_path / "out", "conversations")
    (tool,) = [r for r in result.all_records if r["tools"] and len(r["conversations"]) > 3]
    assert [t["from"] for t in tool["conversations"]] == [
        "system",
        "human",
        "function_call",
        "observation",
        "gpt",
    ]
    call = orjson.loads(tool["conversations"][2]["value"])
    assert call == {"name": "book_appointment", "arguments": {"day": "Mon"}}
    assert orjson.loads(tool["tools"]) == TOOLS  # JSON text, as LLaMA-Factory reads it
    # LLaMA-Factory's own rules (its ShareGPT converter skips a row that breaks them).
    assert all(check_conversation(r) == [] for r in result.all_records)
    info = orjson.loads((result.out / "dataset_info.json").read_bytes())
    assert "dataset_info.json" in result.files
    (entry,) = [e for e in info.values() if e["file_name"] == "train.jsonl"]
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations", "tools": "tools"}
    assert entry["tags"]["observation_tag"] == "observation"
    assert entry["tags"]["function_tag"] == "function_call"


def test_consecutive_user_turns_and_parallel_results_are_merged_to_alternate() -> None:
    fmt = Conversations()
    messages = [
        {"role": "user", "content": "Context."},
        {"role": "user", "content": "Question?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                for i in (1, 2)
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]
    (record, _), *_ = fmt.build(example(1, None, 0, messages, "Done."))
    assert record["conversations"] == [
        {"from": "human", "value": "Context.\n\nQuestion?"},
        {
            "from": "function_call",
            "value": orjson.dumps([{"name": "f", "arguments": {}}] * 2).decode(),
        },
        {"from": "observation", "value": '["one","two"]'},
        {"from": "gpt", "value": "Done."},
    ]
    assert check_conversation(record) == []
