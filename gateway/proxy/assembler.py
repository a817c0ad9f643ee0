"""Reads an OpenAI-format answer while it is relayed: splits SSE into events, decides what the
client sees, and assembles the message (content, tool calls, finish reason, usage) for capture.

Events are forwarded byte-for-byte as soon as they are complete. The one exception is the usage
chunk the gateway asked for on the client's behalf (`stream_options.include_usage`), which is
dropped so such a client sees exactly the stream it would have had from the provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass
class _Choice:
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None


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
        self._choices: dict[int, _Choice] = {}
        self._buffer = b""

    # -- streams -------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> bytes:
        """Take bytes from upstream; return the bytes to forward to the client now."""
        self._buffer += data
        out = []
        start = 0
        for match in _EVENT_END.finditer(self._buffer):
            event = self._buffer[start : match.end()]
            start = match.end()
            if self._on_event(event, now):
                out.append(event)
        self._buffer = self._buffer[start:]
        return b"".join(out)

    def flush(self, now: float) -> bytes:
        """At end of stream: an unterminated last event is still read, and passed on if sane."""
        rest, self._buffer = self._buffer, b""
        if rest.strip() and self._on_event(rest, now):
            return rest + b"\n\n"
        return b""

    def _on_event(self, event: bytes, now: float) -> bool:
        data = b"\n".join(
            line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")
        )
        if not data:
            return True  # comments and keep-alives pass through
        if data == b"[DONE]":
            self.saw_done = True
            return True
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        self._head(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
            if self.hide_usage_chunk and not chunk.get("choices"):
                return False
        for delta_choice in chunk.get("choices") or []:
            if self._apply_delta(delta_choice) and self.first_token_at is None:
                self.first_token_at = now
        return True

    def _apply_delta(self, payload: dict[str, Any]) -> bool:
        """Merge one streamed choice; True when it carried generated output."""
        choice = self._choices.setdefault(int(payload.get("index") or 0), _Choice())
        if payload.get("finish_reason"):
            choice.finish_reason = payload["finish_reason"]
        if "text" in payload:  # legacy completions
            if payload["text"]:
                choice.content.append(payload["text"])
                return True
            return False
        delta = payload.get("delta") or {}
        produced = False
        if delta.get("role"):
            choice.role = delta["role"]
        for key, parts in (
            ("content", choice.content),
            ("reasoning_content", choice.reasoning),
            ("refusal", choice.refusal),
        ):
            if delta.get(key):
                parts.append(delta[key])
                produced = True
        for call in delta.get("tool_calls") or []:
            produced = True
            slot = choice.tool_calls.setdefault(
                int(call.get("index") or 0),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if call.get("id"):
                slot["id"] = call["id"]
            if call.get("type"):
                slot["type"] = call["type"]
            function = call.get("function") or {}
            slot["function"]["name"] += function.get("name") or ""
            slot["function"]["arguments"] += function.get("arguments") or ""
        return produced

    # -- whole bodies --------------------------------------------------------------------
    def load(self, body: dict[str, Any]) -> None:
        self.whole = body
        self._head(body)
        self.usage = body.get("usage") or None

    def _head(self, chunk: dict[str, Any]) -> None:
        if self.response_id is None and chunk.get("id"):
            self.response_id = str(chunk["id"])
            self.model = chunk.get("model")
            self.created = chunk.get("created")

    # -- what was answered ---------------------------------------------------------------
    @property
    def finish_reason(self) -> str | None:
        if self.whole is not None:
            return self._whole_choice().get("finish_reason")
        streamed = self._choices.get(0)
        return streamed.finish_reason if streamed else None

    def answer_text(self) -> str:
        if self.whole is not None:
            choice = self._whole_choice()
            if "text" in choice:
                return str(choice.get("text") or "")
            return str((choice.get("message") or {}).get("content") or "")
        streamed = self._choices.get(0)
        return "".join(streamed.content) if streamed else ""

    def has_tool_calls(self) -> bool:
        if self.whole is not None:
            return bool((self._whole_choice().get("message") or {}).get("tool_calls"))
        streamed = self._choices.get(0)
        return bool(streamed and streamed.tool_calls)

    def _whole_choice(self) -> dict[str, Any]:
        choices = (self.whole or {}).get("choices") or [{}]
        return choices[0] if isinstance(choices[0], dict) else {}

    def response(self) -> dict[str, Any]:
        """The body to store: the provider's own, or for a stream the message it added up to."""
        if self.whole is not None:
            return self.whole
        chat = self.endpoint == "chat/completions"
        choices = []
        for index, choice in sorted(self._choices.items()):
            if not chat:
                choices.append(
                    {
                        "index": index,
                        "text": "".join(choice.content),
                        "finish_reason": choice.finish_reason,
                    }
                )
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
                message["tool_calls"] = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
            choices.append(
                {"index": index, "message": message, "finish_reason": choice.finish_reason}
            )
        return {
            "id": self.response_id,
            "object": "chat.completion" if chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage,
        }
