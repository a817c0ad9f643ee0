"""A store seeded with known traffic and feedback, for the exporter tests.

Each interaction is named for what it tests; `SEED` maps the name to its id. Timestamps are an
hour apart from `START`, in the order below.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.records.feedback import Feedback
from gateway.records.interaction import Interaction
from gateway.store.base import Store

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SYSTEM = "You are a clinical assistant for chiropractors."


def chat(
    prompt: str | list[dict[str, Any]], answer: str | dict[str, Any], **request: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    messages = (
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        if isinstance(prompt, str)
        else prompt
    )
    message = {"role": "assistant", "content": answer} if isinstance(answer, str) else answer
    body = {"model": "support", "messages": messages, **request}
    response = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    return body, response


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "book_appointment",
            "description": "Book a time",
            "parameters": {"type": "object", "properties": {"day": {"type": "string"}}},
        },
    }
]

# name -> (interaction fields, feedback events as field dicts)
CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "accepted": (
        {"user": "u1", "exchange": chat("Summarise: low back pain 3 weeks.", "Lumbago, 3 weeks.")},
        [{"outcome": "accepted", "thumbs": "up", "rating": 5}],
    ),
    "modified": (
        {"user": "u2", "exchange": chat("Write the subjective.", "Patient has neck pain.")},
        [
            {"thumbs": "down"},
            {
                "outcome": "modified",
                "correction": "Neck pain for 2 weeks after a car accident.",
                "correction_type": "major_edit",
            },
        ],
    ),
    "rejected": (
        {"user": "u3", "exchange": chat("Suggest a code.", "ICPC-2 Z99.")},
        [{"outcome": "rejected", "rating": 1}],
    ),
    "failed": (
        {"user": "u4", "status": "error", "http_status": 502, "exchange": chat("Hi", "")},
        [],
    ),
    "duplicate": (
        # Same content as `accepted` but for whitespace and case: an exact duplicate.
        {"user": "u5", "exchange": chat("summarise:  low back pain 3 weeks.", "lumbago, 3 weeks.")},
        [{"thumbs": "up"}],
    ),
    "tool_call": (
        {
            "user": "u6",
            "exchange": chat(
                "Book me for Monday.",
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "book_appointment", "arguments": '{"day":"Mon"}'},
                        }
                    ],
                },
                tools=TOOLS,
            ),
        },
        [{"thumbs": "up"}],
    ),
    "personal": (
        {
            "user": "kari@example.no",
            "tags": {"patient_age": "47", "clinic": "oslo"},
            "exchange": chat(
                "My name is Kari Nordmann, call me on +47 912 34 567 or kari@example.no."
                " Ømhet L4-L5, ICPC-2 L03, 500 mg.",
                "Thank you Kari Nordmann. Dr. Hansen will call +47 912 34 567.",
            ),
        },
        [{"outcome": "accepted"}],
    ),
    "truncated": (
        {"user": "u8", "quality_flags": ["truncated"], "exchange": chat("Long one", "Cut")},
        [{"thumbs": "up"}],
    ),
    "ab_control": (
        {"user": "u9", "variant": "a", "exchange": chat("Explain sciatica.", "Nerve pain.")},
        [{"thumbs": "down", "rating": 2}],
    ),
    "ab_candidate": (
        {
            "user": "u10",
            "variant": "b",
            "exchange": chat(
                "Explain sciatica.", "Pain along the sciatic nerve, from the lower back."
            ),
        },
        [{"thumbs": "up", "rating": 5}],
    ),
    "session_turn_1": (
        {"user": "u11", "session": "s1", "exchange": chat("What is L4?", "A lumbar vertebra.")},
        [],
    ),
    "session_turn_2": (
        {
            "user": "u11",
            "session": "s1",
            "exchange": chat(
                [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "What is L4?"},
                    {"role": "assistant", "content": "A lumbar vertebra."},
                    {"role": "user", "content": "And L5?"},
                ],
                "The one below it.",
            ),
        },
        [{"thumbs": "up"}],
    ),
    "other_model": (
        {"user": "u12", "model": "other", "exchange": chat("Other model", "Other answer.")},
        [{"thumbs": "up"}],
    ),
}


async def seed(store: Store, cases: dict[str, Any] = CASES) -> dict[str, str]:
    """Insert every case; returns name -> interaction id."""
    ids: dict[str, str] = {}
    interactions, events = [], []
    for i, (name, (fields, feedback)) in enumerate(cases.items()):
        fields = dict(fields)
        request, response = fields.pop("exchange")
        interaction_id = str(uuid.uuid4())
        ids[name] = interaction_id
        created = START + timedelta(hours=i)
        interactions.append(
            Interaction(
                id=interaction_id,
                created_at=created,
                endpoint="chat/completions",
                requested_model=fields.pop("model", "support"),
                provider="fake",
                upstream_model="fake-model",
                request=request,
                response=response,
                response_id=response["id"],
                prompt_tokens=20,
                completion_tokens=10,
                cost_usd=fields.pop("cost_usd", 0.0001),
                latency_ms=100.0 + i,
                finish_reason="stop",
                api_key_name="secret-key-name",
                **fields,
            )
        )
        for j, values in enumerate(feedback):
            events.append(
                Feedback(
                    id=str(uuid.uuid4()),
                    interaction_id=interaction_id,
                    created_at=created + timedelta(minutes=10 + j),
                    **values,
                )
            )
    await store.insert_interactions(interactions)
    await store.insert_feedback(events)
    return ids
