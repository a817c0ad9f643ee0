"""Chat-completions SSE in, Responses API SSE out, for a provider that speaks only chat.

Each Responses event is `event: <type>` plus `data: {"type": <type>, ..., "sequence_number": n}`.
Output items open as the chat deltas of their kind arrive (reasoning, text, each tool call) and
close when another kind begins or the finish_reason comes; `[DONE]` brings `response.completed`
(or `response.incomplete`) with the whole response, the one `from_chat_response` gives for the
same answer. Nothing a chat upstream sends may make it raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.apis import sse
from gateway.apis.responses_output import (
    call_item_id,
    fallback_call_id,
    function_call_item,
    id_base,
    message_id,
    message_item,
    reasoning_id,
    reasoning_item,
    refusal_part,
    response_object,
    status_of,
    text_part,
    usage_from_chat,
)
from gateway.apis.sse import SseSplitter
from gateway.proxy.assembler import _dict, _index, _list, _text

# The error a response.failed carries (its `code` is one of a fixed set in the API).
_CUT_SHORT = "The upstream provider ended the stream before the answer was complete."


@dataclass
class _Part:
    kind: str  # output_text, refusal, reasoning_text
    pieces: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        text = "".join(self.pieces)
        if self.kind == "refusal":
            return refusal_part(text)
        if self.kind == "reasoning_text":
            return {"type": "reasoning_text", "text": text}
        return text_part(text)


@dataclass
class _Item:
    kind: str  # message, reasoning, function_call
    id: str
    output_index: int
    parts: list[_Part] = field(default_factory=list)
    call_id: str = ""
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    status: str = "in_progress"

    def as_dict(self) -> dict[str, Any]:
        if self.kind == "function_call":
            name, arguments = "".join(self.name), "".join(self.arguments)
            return function_call_item(self.id, self.call_id, name, arguments, self.status)
        if self.kind == "reasoning":
            text = "".join(p.as_dict()["text"] for p in self.parts) if self.parts else None
            return reasoning_item(self.id, text, self.status)
        return message_item(self.id, [p.as_dict() for p in self.parts], self.status)


class ChatStreamTranslator:
    """Implements `gateway.apis.base.ChatStreamTranslator` for the Responses API."""

    def __init__(self, request: dict[str, Any]):
        self.request = _dict(request)
        self._sequence = 0
        self._started = False
        self._closed = False
        self._events = SseSplitter()
        self._base = ""
        self._created: Any = None
        self._model: Any = None
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._finish_reason: str | None = None
        self._usage: Any = None

    # -- the protocol ------------------------------------------------------------------------
    def feed(self, events: bytes) -> bytes:
        return b"".join(self._on_event(event) for event in self._events.feed(events))

    def finish(self) -> bytes:
        rest = self._events.rest().strip()
        out = self._on_event(rest) if rest else b""
        if self._closed:
            return out
        if self._finish_reason is not None:  # all there; only [DONE] was missing
            return out + self._complete()
        return out + self._fail(_CUT_SHORT)

    def error_event(self, message: str, error_type: str) -> bytes:
        """An `error` event, then `response.failed` with what was generated so far.

        The error is both at the top level (as the API reference and the SDK's
        ResponseErrorEvent have it) and under `error` (as the API sends it, which makes the
        openai SDKs raise it as an APIError)."""
        if self._closed:
            return b""
        out = self._start()
        error = {"type": error_type, "code": error_type, "message": message, "param": None}
        out += self._event("error", code=error_type, message=message, param=None, error=error)
        return out + self._fail(message)

    # -- chat events in ----------------------------------------------------------------------
    def _on_event(self, event: bytes) -> bytes:
        if self._closed:
            return b""
        _, data = sse.fields(event)
        if not data:
            # A comment (keep-alive) passes on: it keeps idle connections open downstream too.
            comments = [line for line in event.splitlines() if line.startswith(b":")]
            return b"\n".join(comments) + b"\n\n" if comments else b""
        if data.strip() == b"[DONE]":
            return self._complete()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        if isinstance(chunk.get("error"), dict):  # an in-stream error in chat's shape
            error = chunk["error"]
            message = _text(error.get("message")) or "The upstream provider failed."
            return self.error_event(message, _text(error.get("type")) or "upstream_error")
        out = self._start(chunk)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = [c for c in _list(chunk.get("choices")) if isinstance(c, dict)]
        choice = next((c for c in choices if _index(c.get("index")) == 0), None)
        if choice is None:
            return out
        delta = _dict(choice.get("delta"))
        reasoning = _text(delta.get("reasoning_content"))
        if reasoning:
            out += self._text_delta("reasoning", "reasoning_text", reasoning)
        for kind in ("content", "refusal"):
            text = _text(delta.get(kind))
            if text:
                out += self._text_delta("message", _PART_OF[kind], text)
        for call in _list(delta.get("tool_calls")):
            if isinstance(call, dict):
                out += self._call_delta(call)
        if _text(choice.get("finish_reason")):
            self._finish_reason = choice["finish_reason"]
            out += self._close_open(self._final_status()[0])
        return out

    def _start(self, chunk: dict[str, Any] | None = None) -> bytes:
        if self._started:
            return b""
        self._started = True
        chunk = chunk or {}
        self._base = id_base(chunk.get("id"))
        self._created, self._model = chunk.get("created"), chunk.get("model")
        response = self._response("in_progress", [], None)
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def _text_delta(self, kind: str, part_kind: str, text: str) -> bytes:
        out = b""
        item = self._open
        if item is None or item.kind != kind:
            out += self._close_open("completed")
            ordinal = sum(1 for i in self._items if i.kind == kind)
            item_id = (message_id if kind == "message" else reasoning_id)(self._base, ordinal)
            item = self._open_item(_Item(kind, item_id, len(self._items)))
            out += self._item_event("response.output_item.added", item)
        if not item.parts or item.parts[-1].kind != part_kind:
            if item.parts:
                out += self._close_part(item)
            item.parts.append(_Part(part_kind))
            out += self._event(
                "response.content_part.added", **self._at(item), part=item.parts[-1].as_dict()
            )
        if not text:
            return out
        item.parts[-1].pieces.append(text)
        if part_kind == "output_text":
            return out + self._event(
                "response.output_text.delta", **self._at(item), delta=text, logprobs=[]
            )
        name = (
            "response.refusal.delta" if part_kind == "refusal" else "response.reasoning_text.delta"
        )
        return out + self._event(name, **self._at(item), delta=text)

    def _call_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        function = _dict(call.get("function"))
        slot = _index(call.get("index"))
        item = self._calls.get(slot)
        if item is None:
            out += self._close_open("completed")
            ordinal = len(self._calls)
            item = _Item("function_call", call_item_id(self._base, ordinal), len(self._items))
            item.call_id = _text(call.get("id")) or fallback_call_id(self._base, ordinal)
            item.name.append(_text(function.get("name")))
            self._calls[slot] = self._open_item(item)
            out += self._item_event("response.output_item.added", item)
        elif _text(function.get("name")):
            item.name.append(function["name"])
        arguments = _text(function.get("arguments"))
        if arguments:
            item.arguments.append(arguments)
            if item is self._open:  # a late piece of a call already closed is kept, not sent
                out += self._event(
                    "response.function_call_arguments.delta", **self._where(item), delta=arguments
                )
        return out

    # -- closing -----------------------------------------------------------------------------
    def _open_item(self, item: _Item) -> _Item:
        self._items.append(item)
        self._open = item
        return item

    def _close_open(self, status: str) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        out = b""
        if item.kind == "function_call":
            out += self._event(
                "response.function_call_arguments.done",
                **self._where(item),
                name="".join(item.name),
                arguments="".join(item.arguments),
            )
        elif item.parts:
            out += self._close_part(item)
        item.status = status
        return out + self._item_event("response.output_item.done", item)

    def _close_part(self, item: _Item) -> bytes:
        part = item.parts[-1].as_dict()
        if part["type"] == "output_text":
            out = self._event(
                "response.output_text.done", **self._at(item), text=part["text"], logprobs=[]
            )
        elif part["type"] == "refusal":
            out = self._event("response.refusal.done", **self._at(item), refusal=part["refusal"])
        else:
            out = self._event("response.reasoning_text.done", **self._at(item), text=part["text"])
        return out + self._event("response.content_part.done", **self._at(item), part=part)

    def _final_status(self) -> tuple[str, str | None]:
        return status_of(self._finish_reason)

    def _complete(self) -> bytes:
        """The closing events: the last item's, an empty message if nothing was said, and
        response.completed (or response.incomplete) with the whole response."""
        out = self._start()
        status, reason = self._final_status()
        out += self._close_open(status)
        if not any(item.kind in ("message", "function_call") for item in self._items):
            out += self._text_delta("message", "output_text", "")
            out += self._close_open(status)
        self._closed = True
        output = [item.as_dict() for item in self._items]
        response = self._response(status, output, usage_from_chat(self._usage), reason)
        return out + self._event(f"response.{status}", response=response)

    def _fail(self, message: str) -> bytes:
        out = self._start()
        if self._open is not None:
            self._open.status = "incomplete"
            self._open = None
        self._closed = True
        output = [item.as_dict() for item in self._items]
        error = {"code": "server_error", "message": message}
        response = self._response("failed", output, usage_from_chat(self._usage), error=error)
        return out + self._event("response.failed", response=response)

    # -- events out --------------------------------------------------------------------------
    def _response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        reason: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return response_object(
            self.request,
            response_id="resp_" + self._base,
            created_at=self._created,
            model=self._model,
            status=status,
            output=output,
            usage=usage,
            incomplete_reason=reason,
            error=error,
        )

    def _item_event(self, kind: str, item: _Item) -> bytes:
        return self._event(kind, output_index=item.output_index, item=item.as_dict())

    @staticmethod
    def _where(item: _Item) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.output_index}

    @staticmethod
    def _at(item: _Item) -> dict[str, Any]:
        place = {"item_id": item.id, "output_index": item.output_index}
        return {**place, "content_index": len(item.parts) - 1}

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _dumps(payload) + b"\n\n"


_PART_OF = {"content": "output_text", "refusal": "refusal"}


def _dumps(payload: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(payload)
    except TypeError:  # what orjson refuses (an integer past 64 bits echoed from the request)
        return json.dumps(payload, separators=(",", ":"), default=str).encode()
