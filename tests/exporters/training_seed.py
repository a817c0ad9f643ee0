"""Traffic that exercises what a training set must get right: multi-turn sessions whose
earlier answers were rejected, thumbed down or corrected; an A/B split whose arm `b` replaces the
system prompt (recorded as the gateway records it: after `Route.apply`); a user who regenerated
an answer; and a row with every optional field null.
"""

from __future__ import annotations

from typing import Any

from gateway.routing import Route
from tests.exporters.seed import SYSTEM, TOOLS, chat

OVERRIDE = "Answer in one short sentence."
ARM_A = Route("support", "fake", "model-a", variant="a")
ARM_B = Route("support", "fake", "model-b", variant="b", system_prompt=OVERRIDE)
# (model, variant) of every arm that replaces the system prompt, as the config would say.
OVERRIDING = frozenset({("support", "b")})

CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "book_appointment", "arguments": '{"day":"Mon"}'},
        }
    ],
}
WRONG = "L4 is a cervical vertebra."
RIGHT = "L4 is the fourth lumbar vertebra."
ORIGINAL = "Rest it."
CORRECTED = "Rest it for two days, then move gently."


def system_user(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def routed(route: Route, prompt: str, answer: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An exchange as recorded for `route`: the request after the arm's overrides."""
    request, response = chat(prompt, answer)
    route.apply(request)
    return request, response


def turn(user: str, session: str, exchange: Any, *feedback: dict[str, Any]) -> Any:
    return {"user": user, "session": session, "exchange": exchange}, list(feedback)


CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    # Session r: the first answer is thumbed down, the user says so, the second is kept.
    "r1": turn("ur", "r", chat("What is L4?", WRONG), {"thumbs": "down"}),
    "r2": turn(
        "ur",
        "r",
        chat(
            [
                *system_user("What is L4?"),
                {"role": "assistant", "content": WRONG},
                {"role": "user", "content": "That is wrong."},
            ],
            RIGHT,
        ),
        {"thumbs": "up"},
    ),
    # Session c: the first answer was corrected; the client resends the model's original.
    "c1": turn(
        "uc",
        "c",
        chat("Knee sprain, what now?", ORIGINAL),
        {"outcome": "modified", "correction": CORRECTED, "correction_type": "major_edit"},
    ),
    "c2": turn(
        "uc",
        "c",
        chat(
            [
                *system_user("Knee sprain, what now?"),
                {"role": "assistant", "content": ORIGINAL},
                {"role": "user", "content": "And after a week?"},
            ],
            "Start light exercise.",
        ),
        {"outcome": "accepted"},
    ),
    # Session k: an earlier answer that was kept stays a turn to learn from.
    "k1": turn("uk", "k", chat("What is C1?", "The atlas."), {"thumbs": "up"}),
    "k2": turn(
        "uk",
        "k",
        chat(
            [
                *system_user("What is C1?"),
                {"role": "assistant", "content": "The atlas."},
                {"role": "user", "content": "And C2?"},
            ],
            "The axis.",
        ),
        {"thumbs": "up"},
    ),
    # A/B: arm b replaced the client's system prompt, so the recorded prompts differ.
    "ab_a": (
        {
            "user": "ua",
            "variant": "a",
            "exchange": routed(ARM_A, "Explain sciatica.", "Nerves."),
        },
        [{"thumbs": "up", "rating": 5}],
    ),
    "ab_b": (
        {"user": "ub", "variant": "b", "exchange": routed(ARM_B, "Explain sciatica.", "Pain.")},
        [{"thumbs": "down"}],
    ),
    # One user asked the same thing twice and judged the answers differently.
    "regen_1": turn("ug", "g", chat("Define ROM.", "Range."), {"thumbs": "down"}),
    "regen_2": turn("ug", "g", chat("Define ROM.", "Range of motion."), {"thumbs": "up"}),
    # A judged answer nobody else gave: held for a pair that never comes.
    "lonely": turn("ul", "l", chat("What is TMJ?", "The jaw joint."), {"rating": 4}),
    # A tool call, its result, and the answer that uses it, with the tools offered.
    "tool_1": turn("ut", "t", chat("Book me for Monday.", CALL, tools=TOOLS), {"thumbs": "up"}),
    "tool_2": turn(
        "ut",
        "t",
        chat(
            [
                *system_user("Book me for Monday."),
                CALL,
                {"role": "tool", "tool_call_id": "call_1", "content": "Booked: Monday 09:00."},
            ],
            "You are booked for Monday at 9.",
            tools=TOOLS,
        ),
        {"thumbs": "up"},
    ),
    # Every optional field null: no user, session, variant, tags, and no feedback but a score.
    "bare": ({"exchange": chat("Hello?", "Hello.")}, [{"score": 0.9}]),
}
