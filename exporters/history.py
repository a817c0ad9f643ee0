"""Which assistant turns in a prompt's history the user threw away, so no format trains on them.

A chat client resends the whole conversation with every request, so an answer the user threw
away (outcome `rejected`, thumbs down, or rewritten by a correction) comes back as an assistant
turn in the prompt of every later request of that conversation. The example built from such a
request must not teach that turn: `openai` gives it `weight: 0`, formats that train on every
assistant turn and cannot mask one leave the example out, and the preference formats keep it,
since a trainer never learns from a prompt.

A history turn is matched to an earlier answer by what the client resends: the answer's text
(whitespace normalized, as clients trim) and its tool calls, within the same user (else session).
It is matched on the stored text, before the privacy step: pseudonyms are numbered per example,
so one answer may read `[PERSON_1]` in one example and `[PERSON_2]` in the next.

What it sees: every row the export's query reads, oldest first, including rows that the feedback
filters then drop (`--outcome accepted` still learns which answers were rejected), and, when the
export starts later than the beginning (`since`, or an incremental job's previous run), the
answers of the `LOOKBACK` before that start that may have been thrown away (`learn_before`): a
conversation continued across the boundary still has its earlier rejections known. A rejection
older than that is not seen. A shard (exporters.shards) sees the other slices' such answers too.
Memory: one 16-byte digest per thrown-away answer.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson

from exporters.chat import Unusable, answer_message, prompt_messages, text_of, was_corrected
from exporters.selection import Example, Filters, select
from gateway.store.base import ExportSource

# How far before an export's start rejections are looked for: a chat session rarely pauses
# longer than a day (the `conversations` format closes one after 24 idle hours too). Reading a
# day of rows more is the cost, paid only by exports that do not start at the beginning.
LOOKBACK = timedelta(hours=24)


def thrown_away(example: Example) -> bool:
    """The user did not keep the model's answer as it was."""
    feedback = example.feedback
    return (
        feedback.get("outcome") == "rejected"
        or feedback.get("thumbs") == "down"
        or was_corrected(example)
    )


class RejectedAnswers:
    """Fed every row in order; marks each example's history turns the user threw away."""

    def __init__(self) -> None:
        self._digests: set[bytes] = set()
        self._scopes: set[bytes] = set()  # the users (else sessions) with a digest

    def observe(self, example: Example) -> None:
        """Set `example.rejected_turns` from the answers seen so far, then remember the
        example's own answer if the user threw it away."""
        scope = _scope(example)
        # Most people never throw an answer away: no need to read their prompts (reading and
        # hashing every prompt was nearly half the exporting process's own work, issue 21).
        if scope in self._scopes:
            self._mark(example, scope)
        if not thrown_away(example):
            return
        try:
            prompt_messages(example)  # not a chat: no answer to remember
            answer = answer_message(example)
        except Unusable:
            return
        self._scopes.add(scope)
        self._digests.add(_digest(scope, answer))

    def _mark(self, example: Example, scope: bytes) -> None:
        try:
            messages = prompt_messages(example)
        except Unusable:
            return  # not a chat: no history to mark
        example.rejected_turns = frozenset(
            i
            for i, message in enumerate(messages)
            if message["role"] == "assistant" and _digest(scope, message) in self._digests
        )


def _scope(example: Example) -> bytes:
    # The user, else the session: a client may start a new session id for a conversation it
    # continues, but one person's history holds only that person's answers.
    record = example.record
    return orjson.dumps(record.get("user") or record.get("session"))


def _digest(scope: bytes, message: dict[str, Any]) -> bytes:
    calls = [
        (call["function"]["name"], call["function"]["arguments"])
        for call in message.get("tool_calls") or ()
    ]
    text = " ".join(text_of(message.get("content")).split())
    key = orjson.dumps([text, calls])
    return hashlib.blake2b(scope + b"\x00" + key, digest_size=16).digest()


async def learn_before(
    store: ExportSource,
    learn: Callable[[Example], None],
    start: datetime,
    filters: Filters,
    endpoints: tuple[str, ...],
) -> None:
    """Show `learn` (a `RejectedAnswers.observe`) the rows of the `LOOKBACK` before `start`
    that may have been thrown away, the only ones it learns from: same models, users and
    endpoints as the export; any variant, feedback or status. None of them is exported. (Until
    2026-12-01 every row of the day was read: an hourly incremental job read 24 hours of rows
    to export one.)"""
    earlier = Filters(
        since=start - LOOKBACK, until=start, models=filters.models, users=filters.users
    )
    rows = select(store, earlier, Counter(), endpoints=endpoints, observe=learn, thrown_away=True)
    async for _ in rows:
        pass
