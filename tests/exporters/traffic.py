"""Varied chat traffic for measuring what exports make of it: 28 users, about 300 requests,
feedback on most. Deterministic for a given seed (the same cases every run).

What it holds: an A/B model whose arm `b` replaces the system prompt (recorded after
`Route.apply`, as the gateway records it; users stay on one arm, as sticky routing does), common
questions many users ask alongside one-off ones, multi-turn sessions that resend their history,
regenerations (the same prompt sent again by the same user), and feedback of every kind:
thumbs, outcomes, ratings, corrections.
"""

from __future__ import annotations

import random
from typing import Any

from gateway.routing import Route, bucket
from tests.exporters.seed import SYSTEM, chat

ARMS = (
    Route("support", "fake", "model-a", variant="a"),
    Route("support", "fake", "model-b", variant="b", system_prompt="Answer briefly."),
)
OVERRIDING = frozenset({("support", "b")})
COMMON = [f"What helps with {part} pain?" for part in ("neck", "back", "knee", "hip", "jaw")]
COMMON += [f"How long does a {part} sprain take to heal?" for part in ("ankle", "wrist", "knee")]


def cases(seed: int = 18, users: int = 28, requests: int = 300) -> dict[str, Any]:
    rng = random.Random(seed)
    out: dict[str, Any] = {}
    sessions: dict[str, tuple[str, list[dict[str, Any]]]] = {}  # user -> open session, history
    last: dict[str, tuple[str, list[dict[str, Any]]]] = {}  # user -> their last request
    for n in range(requests):
        user = f"user-{rng.randrange(users)}"
        arm = ARMS[bucket("support", f"user:{user}") % 2]
        draw = rng.random()
        if user in last and draw < 0.12:  # regenerate: the same prompt again
            session, messages = last[user]
        elif user in sessions and draw < 0.45:  # continue the open session
            session, history = sessions[user]
            messages = [*history, {"role": "user", "content": f"And then? ({n})"}]
        else:
            session = f"{user}-s{n}"
            prompt = rng.choice(COMMON) if rng.random() < 0.5 else f"Question {n} from {user}?"
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        answer = f"Answer {n}: " + rng.choice(["rest", "ice", "move gently", "see a doctor"])
        request, response = chat([dict(m) for m in messages], answer)
        arm.apply(request)
        last[user] = (session, messages)
        sessions[user] = (session, [*messages, {"role": "assistant", "content": answer}])
        fields = {
            "user": user,
            "session": session,
            "variant": arm.variant,
            "exchange": (request, response),
        }
        out[f"r{n}"] = (fields, feedback(rng))
    return out


def feedback(rng: random.Random) -> list[dict[str, Any]]:
    draw = rng.random()
    if draw < 0.11:
        return []  # about 268 of 300 judged
    if draw < 0.35:
        return [{"thumbs": "up"}]
    if draw < 0.55:
        return [{"thumbs": "down"}]
    if draw < 0.70:
        return [{"rating": rng.randint(1, 5)}]
    if draw < 0.82:
        return [{"outcome": "accepted"}]
    if draw < 0.92:
        return [{"outcome": "rejected"}]
    return [{"outcome": "modified", "correction": f"A better answer {rng.random():.6f}."}]


def judged(case: tuple[dict[str, Any], list[dict[str, Any]]]) -> bool:
    signals = ("thumbs", "outcome", "rating", "score")
    return any(event.get(key) is not None for event in case[1] for key in signals)
