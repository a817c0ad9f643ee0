"""Reads a Messages answer from a provider that speaks it natively, while it is relayed: the
`Assembler` of gateway/apis/base.py for /v1/messages.

Every event is forwarded byte-for-byte as soon as it is complete (the gateway injects nothing
into a native stream, so nothing is hidden), and read to build the message: content blocks from
`content_block_start` and their deltas (text, tool input JSON, thinking, signatures, citations),
the stop reason from `message_delta`, usage from `message_start` and `message_delta` (whose
counts are running totals). `message_stop` is the stream's end. Nothing an upstream sends makes it
raise, and the text it keeps is bounded by MAX_KEPT_CHARS, as for chat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.apis.messages_common import (
    as_dict,
    as_list,
    count,
    finish_reason,
    parse_object,
    sse_fields,
    sse_json,
    text,
    usage_to_chat,
)
from gateway.apis.sse import SseSplitter
from gateway.proxy.assembler import MAX_KEPT_CHARS

_MAX_BLOCKS = 1024  # a block index past this is garbage, read as block 0
_USAGE_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
# Blocks whose content is generated output (for the time to first token).
_OUTPUT_BLOCKS = ("tool_use", "server_tool_use")


@dataclass
class _Block:
    start: dict[str, Any]  # the block as `content_block_start` gave it
    # Streamed text, thinking or tool-input JSON, joined once at the end (see _ToolCall).
    pieces: list[str] = field(default_factory=list)
    signature: str | None = None
    citations: list[Any] = field(default_factory=list)

    @property
    def kind(self) -> Any:
        return self.start.get("type")

    def as_dict(self) -> dict[str, Any]:
        block = dict(self.start)
        joined = "".join(self.pieces)
        kind = block.get("type")
        if kind == "text":
            block["text"] = text(block.get("text")) + joined
        elif kind == "thinking":
            block["thinking"] = text(block.get("thinking")) + joined
        elif self.pieces:  # a tool's input, streamed as JSON text; {} when cut short
            block["input"] = parse_object(joined)
        if self.signature is not None:
            block["signature"] = self.signature
        if self.citations:
            block["citations"] = as_list(block.get("citations")) + self.citations
        return block


class Assembler:
    """Accumulates one Messages answer, streamed (`feed`) or whole (`load`)."""

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None  # in chat vocabulary
        self.first_token_at: float | None = None
        self.saw_done = False
        self.whole: dict[str, Any] | None = None
        self.truncated = False
        self.error: dict[str, Any] | None = None  # an in-stream `error` event's error
        self._splitter = SseSplitter()
        self._head: dict[str, Any] = {}  # message_start's message, but its content and usage
        self._blocks: dict[int, _Block] = {}
        self._stop: dict[str, Any] = {}  # message_delta's delta: stop_reason, stop_sequence...
        self._usage: dict[str, Any] = {}  # Anthropic's usage, as the events added it up
        self._kept = 0

    # -- streams ---------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> bytes:
        events = self._splitter.feed(data)
        for event in events:
            self._on_event(event, now)
        return b"".join(events)

    def flush(self, now: float) -> bytes:
        rest = self._splitter.rest()
        if not rest.strip():
            return b""
        self._on_event(rest, now)
        return rest + b"\n\n"

    def _on_event(self, event: bytes, now: float) -> None:
        name, data = sse_fields(event)
        payload = sse_json(data) if data else None
        if not isinstance(payload, dict):
            return  # pings without data, comments, garbage: relayed, not read
        kind = payload.get("type") if isinstance(payload.get("type"), str) else name
        if kind == "message_start":
            self._start(as_dict(payload.get("message")), extras=self._charge(len(data)))
        elif kind == "content_block_start":
            block = payload.get("content_block")
            if isinstance(block, dict) and self._charge(len(data)):
                self._blocks[_index(payload.get("index"))] = _Block(block)
                if block.get("type") in _OUTPUT_BLOCKS or text(block.get("text")):
                    self._produced(now)
        elif kind == "content_block_delta":
            self._delta(_index(payload.get("index")), as_dict(payload.get("delta")), now)
        elif kind == "message_delta":
            # Past the budget only what the record needs is kept, not the event's extras.
            extras = self._charge(len(data))
            for key, value in as_dict(payload.get("delta")).items():
                if extras or key in ("stop_reason", "stop_sequence"):
                    self._stop[key] = value
            self._take_usage(payload.get("usage"), extras)
        elif kind == "message_stop":
            self.saw_done = True
        elif kind == "error":
            self.error = as_dict(payload.get("error"))

    def _start(self, message: dict[str, Any], extras: bool) -> None:
        if extras:
            self._head = {k: v for k, v in message.items() if k not in ("content", "usage")}
        if isinstance(message.get("id"), str):
            self.response_id = message["id"]
        if isinstance(message.get("model"), str):
            self.model = message["model"]
        self._take_usage(message.get("usage"), extras)

    def _delta(self, index: int, delta: dict[str, Any], now: float) -> None:
        kind = delta.get("type")
        block = self._blocks.get(index)
        if block is None:  # a delta without its block start: kept under the type it implies
            implied = {"text_delta": "text", "thinking_delta": "thinking"}.get(text(kind))
            block = self._blocks[index] = _Block({"type": implied or "tool_use"})
        piece = {"text_delta": "text", "thinking_delta": "thinking"}.get(text(kind))
        if piece is not None:
            if self._keep(block.pieces, delta.get(piece)):
                self._produced(now)
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            self._keep(block.pieces, delta["partial_json"])
            self._produced(now)
        elif kind == "signature_delta" and isinstance(delta.get("signature"), str):
            if self._charge(len(delta["signature"])):
                block.signature = delta["signature"]
        elif kind == "citations_delta" and isinstance(delta.get("citation"), dict):
            citation = delta["citation"]
            block.citations.extend([citation] if self._charge(len(str(citation))) else [])

    def _take_usage(self, usage: Any, extras: bool) -> None:
        """Counts are running totals: each one given replaces the one before. Other fields
        (cache_creation, server_tool_use...) are kept while under the budget."""
        for key, value in as_dict(usage).items():
            if key in _USAGE_COUNTS:
                if count(value) is not None:
                    self._usage[key] = value
            elif value is not None and extras:
                self._usage[key] = value
        if self._usage:
            self.usage = usage_to_chat(self._usage)

    def _keep(self, parts: list[str], value: Any) -> bool:
        """Keep a piece of streamed text while under MAX_KEPT_CHARS; True when there was one."""
        if not isinstance(value, str) or not value:
            return False
        if self._charge(len(value)):
            parts.append(value)
        return True

    def _charge(self, size: int) -> bool:
        if self._kept + size > MAX_KEPT_CHARS:
            self.truncated = True
            return False
        self._kept += size
        return True

    def _produced(self, now: float) -> None:
        if self.first_token_at is None:
            self.first_token_at = now

    # -- whole bodies ----------------------------------------------------------------------
    def load(self, body: dict[str, Any]) -> None:
        self.whole = body
        body = as_dict(body)
        if isinstance(body.get("id"), str):
            self.response_id = body["id"]
        if isinstance(body.get("model"), str):
            self.model = body["model"]
        self.usage = usage_to_chat(body.get("usage"))

    # -- what was answered -----------------------------------------------------------------
    def response(self) -> dict[str, Any]:
        """The body to store: the provider's own, or for a stream the message it added up to
        (a cut stream's as far as it came: no stop_reason, a half-sent tool input as {})."""
        if self.whole is not None:
            return self.whole
        message: dict[str, Any] = {
            "id": self.response_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            **self._head,
        }
        message["content"] = [self._blocks[i].as_dict() for i in sorted(self._blocks)]
        message.update(self._stop)
        message.setdefault("stop_reason", None)
        message.setdefault("stop_sequence", None)
        message["usage"] = dict(self._usage) if self._usage else None
        return message

    @property
    def finish_reason(self) -> str | None:
        if self.whole is not None:
            return finish_reason(as_dict(self.whole).get("stop_reason"))
        return finish_reason(self._stop.get("stop_reason"))

    def answer_text(self) -> str:
        if self.whole is not None:
            blocks = [as_dict(b) for b in as_list(as_dict(self.whole).get("content"))]
        else:
            blocks = [b.as_dict() for _, b in sorted(self._blocks.items()) if b.kind == "text"]
        return "".join(text(b.get("text")) for b in blocks if b.get("type") == "text")

    def has_tool_calls(self) -> bool:
        if self.whole is not None:
            content = as_list(as_dict(self.whole).get("content"))
            return any(as_dict(block).get("type") == "tool_use" for block in content)
        return any(block.kind == "tool_use" for block in self._blocks.values())


def _index(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < _MAX_BLOCKS else 0
