"""Reads an OpenAI-format answer while it is relayed: splits SSE into events, decides what the
client sees, and assembles the message (content, tool calls, finish reason, usage) for capture.

Events are forwarded byte-for-byte as soon as they are complete. The one exception is what the
gateway asked for on the client's behalf (`stream_options.include_usage`): the usage chunk is
dropped, and the `"usage":null` it makes the provider add to every chunk is cut, so such a client
sees exactly the stream it would have had from the provider.

Nothing an upstream sends may make it raise: a value of the wrong type is skipped (the bytes
still reach the client as they came) and the rest is assembled. Its work is linear in the bytes
fed; how large an event may grow is bounded before it gets here (gateway/providers/limits.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.apis import sse
from gateway.apis.sse import SseSplitter

# OpenAI allows up to 128 choices (`n`); an index past this is garbage, read as choice 0.
_MAX_CHOICES = 1024
# Text kept of one streamed answer, as much as a whole answer may have by default
# (`max_response_bytes`). Streamed envelopes are ~50x their text, so a stream that reaches
# this is no real answer; the rest is still relayed, only not kept (see `truncated`).
MAX_KEPT_CHARS = 32 * 1024 * 1024
# What one streamed logprobs entry counts against MAX_KEPT_CHARS (a token, its logprob, bytes).
_LOGPROB_CHARS = 64


@dataclass
class _ToolCall:
    # Pieces joined once at the end: `+=` on a string held in a dict copies it each time,
    # which made a long streamed tool call quadratic (50,000 pieces took 30 s).
    id: str | None = None
    type: str = "function"
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        function = {"name": "".join(self.name), "arguments": "".join(self.arguments)}
        return {"id": self.id, "type": self.type, "function": function}


@dataclass
class _Choice:
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    # Streamed logprobs, each list joined across chunks: chat's `content`/`refusal`, legacy
    # completions' `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`.
    logprobs: dict[str, list[Any]] = field(default_factory=dict)


class ResponseAssembler:
    """Accumulates one answer, streamed (`feed`) or whole (`load`)."""

    def __init__(self, endpoint: str, *, hide_usage_chunk: bool = False):
        self.endpoint = endpoint
        self.hide_usage_chunk = hide_usage_chunk
        self.response_id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.usage: dict[str, Any] | None = None
        self.first_token_at: float | None = None
        self.saw_done = False
        self.whole: dict[str, Any] | None = None
        self.truncated = False  # a streamed answer past MAX_KEPT_CHARS: its text was cut there
        self._kept = 0  # characters of streamed text kept so far
        self._choices: dict[int, _Choice] = {}
        self._events = SseSplitter()

    # -- streams -------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> bytes:
        """Take bytes from upstream; return the bytes to forward to the client now."""
        out = []
        for event in self._events.feed(data):
            passed = self._on_event(event, now)
            if passed is not None:
                out.append(passed)
        return b"".join(out)

    def flush(self, now: float) -> bytes:
        """At end of stream: an unterminated last event is still read, and passed on if sane."""
        rest = self._events.rest()
        passed = self._on_event(rest, now) if rest.strip() else None
        return passed + b"\n\n" if passed is not None else b""

    def _on_event(self, event: bytes, now: float) -> bytes | None:
        """Read one event; the bytes to pass on for it, or None to drop it."""
        _, data = sse.fields(event)
        if not data:
            return event  # comments and keep-alives pass through
        if data == b"[DONE]":
            self.saw_done = True
            return event
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event
        if not isinstance(chunk, dict):
            return event
        self._head(chunk)
        if chunk.get("usage"):
            self._take_usage(chunk["usage"])
            if self.hide_usage_chunk and not chunk.get("choices"):
                return None
        for delta_choice in _list(chunk.get("choices")):
            produced = isinstance(delta_choice, dict) and self._apply_delta(delta_choice)
            if produced and self.first_token_at is None:
                self.first_token_at = now
        if self.hide_usage_chunk and "usage" in chunk and chunk["usage"] is None:
            # Asking for usage makes OpenAI add `"usage":null` to every chunk. In JSON text a
            # quote inside a string is escaped, so this byte run can only be that member.
            return event.replace(b',"usage":null', b"", 1)
        return event

    def _apply_delta(self, payload: dict[str, Any]) -> bool:
        """Merge one streamed choice; True when it carried generated output. Runs for every
        chunk of every stream, hence the members read one pass over the delta."""
        index = _index(payload.get("index"))
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
        finish_reason = payload.get("finish_reason")
        if finish_reason and isinstance(finish_reason, str):
            choice.finish_reason = finish_reason
        logprobs = payload.get("logprobs")
        if logprobs and isinstance(logprobs, dict):
            self._keep_logprobs(choice, logprobs)
        if "text" in payload:  # legacy completions
            return self._keep(choice.content, payload["text"])
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return False
        produced = False
        for key, value in delta.items():
            if value is None:
                continue
            if key == "content":
                produced = self._keep(choice.content, value) or produced
            elif key == "role":
                if value and isinstance(value, str):
                    choice.role = value
            elif key == "reasoning_content":
                produced = self._keep(choice.reasoning, value) or produced
            elif key == "refusal":
                produced = self._keep(choice.refusal, value) or produced
            elif key == "tool_calls":
                for call in _list(value):
                    if isinstance(call, dict):
                        self._merge_tool_call(choice, call)
                        produced = True
        return produced

    def _merge_tool_call(self, choice: _Choice, call: dict[str, Any]) -> None:
        """Add one streamed tool-call fragment to the call with the same index."""
        slot = choice.tool_calls.setdefault(_index(call.get("index")), _ToolCall())
        if _text(call.get("id")):
            slot.id = call["id"]
        if _text(call.get("type")):
            slot.type = call["type"]
        function = _dict(call.get("function"))
        self._keep(slot.name, function.get("name"))
        self._keep(slot.arguments, function.get("arguments"))

    def _keep_logprobs(self, choice: _Choice, logprobs: dict[str, Any]) -> None:
        for key, entries in logprobs.items():
            if not isinstance(entries, list) or not entries:
                continue
            # An entry is a token with its alternatives: counted as _LOGPROB_CHARS of text.
            if self._kept + len(entries) * _LOGPROB_CHARS <= MAX_KEPT_CHARS:
                choice.logprobs.setdefault(key, []).extend(entries)
                self._kept += len(entries) * _LOGPROB_CHARS
            else:
                self.truncated = True

    def _keep(self, parts: list[str], value: Any) -> bool:
        """Keep a piece of streamed text while under MAX_KEPT_CHARS; True when there was one."""
        if not value or not isinstance(value, str):
            return False
        if self._kept + len(value) <= MAX_KEPT_CHARS:
            parts.append(value)
            self._kept += len(value)
        else:
            self.truncated = True
        return True

    # -- whole bodies --------------------------------------------------------------------
    def load(self, body: dict[str, Any]) -> None:
        self.whole = body
        self._head(body)
        self._take_usage(body.get("usage"))

    def _head(self, chunk: dict[str, Any]) -> None:
        if self.response_id is None and _text(chunk.get("id")):
            self.response_id = chunk["id"]
            model, created = chunk.get("model"), chunk.get("created")
            self.model = model if isinstance(model, str) else None
            self.created = created if isinstance(created, int) else None

    def _take_usage(self, usage: Any) -> None:
        # Its counts are checked where they become columns (capture); here only its shape.
        if isinstance(usage, dict) and usage:
            self.usage = usage

    # -- what was answered ---------------------------------------------------------------
    @property
    def finish_reason(self) -> str | None:
        if self.whole is not None:
            return _text(self._whole_choice().get("finish_reason")) or None
        streamed = self._choices.get(0)
        return streamed.finish_reason if streamed else None

    def answer_text(self) -> str:
        if self.whole is not None:
            choice = self._whole_choice()
            if "text" in choice:
                return _text(choice["text"])
            return _content_text(_dict(choice.get("message")).get("content"))
        streamed = self._choices.get(0)
        return "".join(streamed.content) if streamed else ""

    def has_tool_calls(self) -> bool:
        if self.whole is not None:
            return bool(_list(_dict(self._whole_choice().get("message")).get("tool_calls")))
        streamed = self._choices.get(0)
        return bool(streamed and streamed.tool_calls)

    def _whole_choice(self) -> dict[str, Any]:
        choices = _list((self.whole or {}).get("choices"))
        return _dict(choices[0]) if choices else {}

    def response(self) -> dict[str, Any]:
        """The body to store: the provider's own, or for a stream the message it added up to."""
        if self.whole is not None:
            return self.whole
        chat = self.endpoint == "chat/completions"
        choices = []
        for index, choice in sorted(self._choices.items()):
            if not chat:
                text: dict[str, Any] = {"index": index, "text": "".join(choice.content)}
                if choice.logprobs:
                    text["logprobs"] = choice.logprobs
                text["finish_reason"] = choice.finish_reason
                choices.append(text)
                continue
            message: dict[str, Any] = {
                "role": choice.role,
                "content": "".join(choice.content) if choice.content else None,
            }
            if choice.reasoning:
                message["reasoning_content"] = "".join(choice.reasoning)
            if choice.refusal:
                message["refusal"] = "".join(choice.refusal)
            if choice.tool_calls:
                calls = [choice.tool_calls[i].as_dict() for i in sorted(choice.tool_calls)]
                message["tool_calls"] = calls
            assembled: dict[str, Any] = {"index": index, "message": message}
            if choice.logprobs:
                assembled["logprobs"] = {"content": None, "refusal": None, **choice.logprobs}
            assembled["finish_reason"] = choice.finish_reason
            choices.append(assembled)
        return {
            "id": self.response_id,
            "object": "chat.completion" if chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage,
        }


# Readers of upstream JSON that answer with an empty value of the expected type when the
# upstream sent another type.
def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _index(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < _MAX_CHOICES else 0


def _content_text(content: Any) -> str:
    """A message's content: a string, or the text of its parts."""
    if isinstance(content, list):
        return "".join(_text(_dict(part).get("text")) for part in content)
    return _text(content)
