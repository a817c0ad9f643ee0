"""ShareGPT-style multi-turn conversations, one JSON object per line:
`{"conversations": [{"from": "system"|"human"|"gpt"|"tool", "value": "..."}], "metadata": {...}}`.

A chat client resends the whole history with every request, so a session is a chain of
requests, each one the previous request plus its answer plus a new user turn. Such a chain
becomes ONE conversation; a request that does not continue the chain (a regeneration, an edited
earlier message, a new topic) closes it and opens the next. Rows arrive oldest first.

Memory stays bounded: one open conversation per session, closed as soon as the session moves
on, when it has been idle for `SESSION_IDLE` (rows arrive in time order, so an idle session is
found at the front of the open ones), or at the end. What a request must start with to continue
is kept as a digest, never as a second copy of the history.

Feedback, turn by turn:
- A correction replaces the model's answer wherever that answer sits in the conversation, so
  every `gpt` turn is one we want the model to learn. The next request normally resends the
  model's original answer (that is what the client showed), so continuation is checked against
  the original answer *or* the correction, whichever the client sent back. The cost: a user turn
  that reacted to the original answer ("no, the other side") now follows the corrected one.
- A turn rejected without a correction (`target_message` raises) is left out and counted as
  invalid, and its session's open conversation is closed before it. A later request built on
  the rejected turn starts a new conversation whose history still holds that answer, as any
  prompt history does in the `openai` format.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from exporters.chat import Unusable, answer_message, prompt_messages, target_message, text_of
from exporters.chat import tools as offered_tools
from exporters.formats import Built, Format, FormatOptions
from exporters.selection import Example
from gateway.tokens import count_text

# OpenAI role -> ShareGPT speaker. `developer` is the newer name for `system`.
SPEAKER = {
    "system": "system",
    "developer": "system",
    "user": "human",
    "assistant": "gpt",
    "tool": "tool",
}
SPEAKERS = frozenset(SPEAKER.values())
# Chat sessions pause for lunch, rarely for a day; a session quiet longer than this is closed so
# that millions of sessions never sit open at once. A session resumed later still exports its
# whole history, as a second conversation.
SESSION_IDLE = timedelta(hours=24)
# Chat formatting overhead per turn and per reply, as `gateway.tokens` counts a chat prompt.
_TOKENS_PER_TURN = 3


@dataclass(slots=True)
class _Open:
    """A session's conversation so far, and what the session's next request must start with."""

    session: str | None
    group: str
    turns: list[dict[str, str]]
    interaction_ids: list[str]
    model: str | None
    tools: list[dict[str, Any]] | None
    last_at: datetime
    history_len: int = 0
    # Digests of the history with the model's answer last, and with the correction last.
    histories: tuple[bytes, ...] = ()
    # False once a turn of the session was unusable: nothing may continue past it.
    extendable: bool = True

    def continued_by(self, keys: list[bytes]) -> bool:
        return (
            self.extendable
            and len(keys) > self.history_len
            and _digest(keys[: self.history_len]) in self.histories
        )

    def record(self) -> Built:
        record: dict[str, Any] = {"conversations": self.turns}
        if self.tools:
            record["tools"] = self.tools
        record["metadata"] = {
            "session": self.session,
            "turns": len(self.turns),
            "interaction_ids": self.interaction_ids,
            "model": self.model,
        }
        return record, self.group


class Conversations(Format):
    name = "conversations"

    def __init__(self, options: FormatOptions | None = None):
        super().__init__(options or FormatOptions())
        # session -> its open conversation, least recently active first.
        self._open: dict[str, _Open] = {}

    def build(self, example: Example) -> list[Built]:
        session = example.record.get("session")
        try:
            messages = prompt_messages(example)
            target = target_message(example)
        except Unusable:
            if session in self._open:
                self._open[session].extendable = False
            raise
        try:
            answer = answer_message(example)
        except Unusable:  # a correction with no answer to correct: the client saw nothing
            answer = target
        at = datetime.fromisoformat(str(example.record["created_at"]))
        # Everything that reads the messages runs before any open conversation changes: a row
        # that raises here (the pipeline skips it) takes no other row's turns with it.
        keys = [_key(m) for m in messages]
        turns = [*(_turn(m) for m in messages), _turn(target)]
        histories = _histories(keys, answer, target)
        built = self._close_idle(at)
        if not session:
            return [*built, self._start(example, None, turns, at).record()]
        current = self._open.pop(session, None)
        if current is not None and current.continued_by(keys):
            # The new turns: what the request added after the history, then the target.
            current.turns += turns[current.history_len :]
            current.interaction_ids.append(example.id)
            current.model = example.record.get("requested_model")
            current.tools = offered_tools(example) or current.tools
            current.last_at = at
        else:
            if current is not None:
                built.append(current.record())
            current = self._start(example, session, turns, at)
        # What the session's next request must start with to continue this conversation.
        current.history_len, current.histories = len(keys) + 1, histories
        self._open[session] = current  # re-inserted: now the most recently active
        return built

    def finish(self) -> list[Built]:
        built = [conversation.record() for conversation in self._open.values()]
        self._open.clear()
        return built

    def check(self, record: dict[str, Any]) -> list[str]:
        return check_conversation(record)

    def tokens(self, record: dict[str, Any]) -> int:
        turns = record.get("conversations") or []
        return _TOKENS_PER_TURN * (len(turns) + 1) + sum(
            count_text(str(turn.get("value") or "")) for turn in turns
        )

    def _start(
        self, example: Example, session: str | None, turns: list[dict[str, str]], at: datetime
    ) -> _Open:
        return _Open(
            session=session,
            group=example.group,
            turns=turns,
            interaction_ids=[example.id],
            model=example.record.get("requested_model"),
            tools=offered_tools(example),
            last_at=at,
        )

    def _close_idle(self, now: datetime) -> list[Built]:
        closed = []
        while self._open:
            session, oldest = next(iter(self._open.items()))
            if now - oldest.last_at < SESSION_IDLE:
                break
            del self._open[session]
            closed.append(oldest.record())
        return closed


def _histories(
    keys: list[bytes], answer: dict[str, Any], target: dict[str, Any]
) -> tuple[bytes, ...]:
    """Digests of the history with the model's answer last, and with the target last."""
    return _digest([*keys, _key(answer)]), _digest([*keys, _key(target)])


def _key(message: dict[str, Any]) -> bytes:
    """One message as a client resends it; whitespace is normalized because clients trim."""
    calls = [
        (call["function"]["name"], call["function"]["arguments"])
        for call in message.get("tool_calls") or ()
    ]
    text = " ".join(text_of(message.get("content")).split())
    return orjson.dumps([message["role"], text, calls])


def _digest(keys: list[bytes]) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for key in keys:
        digest.update(len(key).to_bytes(8, "big"))
        digest.update(key)
    return digest.digest()


def _turn(message: dict[str, Any]) -> dict[str, str]:
    """An OpenAI message as a ShareGPT turn. ShareGPT has no tool-call field, so an assistant's
    calls follow its text, one JSON object per line, as Hermes-style chat templates write them."""
    text = text_of(message.get("content"))
    calls = [_call_text(call) for call in message.get("tool_calls") or ()]
    return {"from": SPEAKER[message["role"]], "value": "\n".join(p for p in [text, *calls] if p)}


def _call_text(call: dict[str, Any]) -> str:
    function = call["function"]
    arguments = function.get("arguments")
    # Arguments that are not JSON stay the string the model wrote.
    with contextlib.suppress(orjson.JSONDecodeError):
        arguments = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    return orjson.dumps({"name": function.get("name"), "arguments": arguments}).decode()


def check_conversation(record: Any) -> list[str]:
    """What a ShareGPT loader would refuse in one record; each problem starts with its kind."""
    if not isinstance(record, dict):
        return ["data_type: a line must be a JSON object"]
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        return ["missing_conversations: `conversations` must be a non-empty list"]
    problems = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            problems.append(f"data_type: conversations[{i}] is not an object")
            continue
        speaker = turn.get("from")
        if speaker not in SPEAKERS:
            problems.append(f"unrecognized_from: conversations[{i}] is from {speaker!r}")
        value = turn.get("value")
        if not isinstance(value, str):
            problems.append(f"data_type: conversations[{i}] has a non-string value")
        elif not value.strip():
            problems.append(f"missing_value: conversations[{i}] ({speaker}) is empty")
    last = turns[-1]
    if not isinstance(last, dict) or last.get("from") != "gpt":
        problems.append("missing_gpt_turn: the last turn must be the model's (`gpt`)")
    return problems


FORMATS = {"conversations": Conversations}
