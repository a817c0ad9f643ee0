"""ShareGPT multi-turn conversations, as LLaMA-Factory and axolotl load them, one per line:
`{"conversations": [{"from", "value"}], "tools": "<JSON text>", "metadata": {...}}`.

Speakers: `system` (first turn only), `human`, `gpt`, `function_call` (the model's tool calls:
`{"name", "arguments"}` as JSON text, a list of them for parallel calls) and `observation`
(a tool's result; parallel results become one turn holding a JSON list). After the optional
system turn, turns alternate human/observation then gpt/function_call, and end with the
model's: LLaMA-Factory skips any other row. Consecutive user turns are joined by a blank line so
that they alternate; an assistant's text that came with tool calls is not kept (a
`function_call` turn holds calls only). `tools` is the offered tools list as JSON text, which
is what LLaMA-Factory reads. `dataset_info.json`, written beside the files, declares the
dataset to LLaMA-Factory with these tags.

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
  invalid, and its session's open conversation is closed before it. A later request whose
  history holds an answer the user threw away (`exporters.history`) would start a conversation
  that teaches it, since every `gpt` turn is trained on: it is left out too
  (`rejected_turn_in_history`).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from exporters.chat import Unusable, answer_message, prompt_messages, target_message, text_of
from exporters.chat import tools as offered_tools
from exporters.formats import Built, Format, FormatOptions
from exporters.selection import Example
from exporters.writers import JsonlSplits, Writer
from gateway.tokens import count_text

# OpenAI role -> ShareGPT speaker. `developer` is the newer name for `system`.
SPEAKER = {
    "system": "system",
    "developer": "system",
    "user": "human",
    "assistant": "gpt",
    "tool": "observation",
}
FUNCTION_CALL = "function_call"
SPEAKERS = frozenset({*SPEAKER.values(), FUNCTION_CALL})
# LLaMA-Factory's rule: after the system turn, even positions are these, odd the model's.
_ASKING = ("human", "observation")
_ANSWERING = ("gpt", FUNCTION_CALL)
# How LLaMA-Factory is told to read the files (`dataset_info.json`, one entry per split).
DATASET_INFO = "dataset_info.json"
_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": FUNCTION_CALL,
    "system_tag": "system",
}
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
        turns = alternating(self.turns)
        # `tools` on every line, null when none: LLaMA-Factory reads the column of every row,
        # and a file where no line had it would have no such column.
        tools = orjson.dumps(self.tools).decode() if self.tools else None
        record: dict[str, Any] = {"conversations": turns, "tools": tools}
        record["metadata"] = {
            "session": self.session,
            "turns": len(turns),
            "interaction_ids": self.interaction_ids,
            "model": self.model,
        }
        return record, self.group


class Conversations(Format):
    name = "conversations"
    schema = {
        "conversations": [{"from": "string", "value": "string"}],
        "tools": "string",
        "metadata": {
            "session": "string",
            "turns": "int64",
            "interaction_ids": ["string"],
            "model": "string",
        },
    }

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
            if example.rejected_turns:
                raise Unusable("rejected_turn_in_history")
            return [*built, self._start(example, None, turns, at).record()]
        current = self._open.get(session)
        continues = current is not None and current.continued_by(keys)
        if not continues and example.rejected_turns:
            # Checked before anything changes: the open conversation stays as it is.
            raise Unusable("rejected_turn_in_history")
        current = self._open.pop(session, None)
        if current is not None and continues:
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

    def open_writer(self, out_dir: Any) -> Writer:
        return ShareGptFiles(Path(out_dir))

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
    """An OpenAI message as a ShareGPT turn: tool calls become a `function_call` turn."""
    calls = [_call(call) for call in message.get("tool_calls") or ()]
    if calls:
        value = calls[0] if len(calls) == 1 else calls
        return {"from": FUNCTION_CALL, "value": orjson.dumps(value).decode()}
    return {"from": SPEAKER[message["role"]], "value": text_of(message.get("content"))}


def _call(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"]
    arguments = function.get("arguments")
    # LLaMA-Factory writes the arguments out as JSON itself, so they go in parsed; arguments
    # that are not JSON stay the string the model wrote.
    with contextlib.suppress(orjson.JSONDecodeError):
        arguments = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    return {"name": function.get("name"), "arguments": arguments}


def alternating(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """Turns as LLaMA-Factory reads them: consecutive user turns joined by a blank line,
    parallel tool results as one `observation` holding a JSON list."""
    merged: list[dict[str, str]] = []
    results: list[str] = []
    for turn in turns:
        last = merged[-1] if merged else None
        if last is not None and turn["from"] == last["from"] == "human":
            last["value"] = f"{last['value']}\n\n{turn['value']}"
        elif last is not None and turn["from"] == last["from"] == "observation":
            results.append(turn["value"])
            last["value"] = orjson.dumps(results).decode()
        else:
            results = [turn["value"]]
            merged.append(dict(turn))
    return merged


class ShareGptFiles(JsonlSplits):
    """The splits, then `dataset_info.json`: how LLaMA-Factory is told to read them."""

    def close(self) -> list[Path]:
        files = super().close()
        entries = {
            f"flywheel_{split}": {
                "file_name": path.as_posix(),
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "tools": "tools"},
                "tags": _TAGS,
            }
            for split, (path, _) in self.split_files().items()
        }
        info = self.dir / DATASET_INFO
        info.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2) + b"\n")
        return [*files, info]


def check_conversation(record: Any) -> list[str]:
    """What a ShareGPT loader would refuse in one record; each problem starts with its kind."""
    if not isinstance(record, dict):
        return ["data_type: a line must be a JSON object"]
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        return ["missing_conversations: `conversations` must be a non-empty list"]
    problems = []
    start = 1 if isinstance(turns[0], dict) and turns[0].get("from") == "system" else 0
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            problems.append(f"data_type: conversations[{i}] is not an object")
            continue
        speaker = turn.get("from")
        if speaker not in SPEAKERS:
            problems.append(f"unrecognized_from: conversations[{i}] is from {speaker!r}")
        elif i >= start and speaker not in (_ASKING, _ANSWERING)[(i - start) % 2]:
            expected = " or ".join((_ASKING, _ANSWERING)[(i - start) % 2])
            problems.append(f"turn_order: conversations[{i}] is {speaker!r}, not {expected}")
        value = turn.get("value")
        if not isinstance(value, str):
            problems.append(f"data_type: conversations[{i}] has a non-string value")
        elif not value.strip():
            problems.append(f"missing_value: conversations[{i}] ({speaker}) is empty")
    last = turns[-1]
    if not isinstance(last, dict) or last.get("from") not in _ANSWERING:
        problems.append("missing_gpt_turn: the last turn must be the model's (`gpt`)")
    if record.get("tools") is not None and not isinstance(record["tools"], str):
        problems.append("data_type: `tools` must be the tools list as JSON text")
    return problems


FORMATS = {"conversations": Conversations}
