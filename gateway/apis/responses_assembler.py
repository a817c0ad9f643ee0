"""Reads a Responses API answer relayed from a provider that speaks it natively: a whole body
(`load`), or its SSE stream (`feed`), forwarded byte for byte as each event is complete.

A stream's answer is the response object of its last event (`response.completed`,
`response.incomplete` or `response.failed`); a stream cut before that adds up to a partial
response built from its output items and their deltas. As in the chat assembler
(gateway/proxy/assembler.py) nothing an upstream sends may make it raise, its work is linear in
the bytes fed, and no more than MAX_KEPT_CHARS of generated text is kept (`truncated`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.apis import sse
from gateway.apis.responses_to_chat import to_chat_response, usage_to_chat
from gateway.apis.sse import SseSplitter
from gateway.proxy.assembler import (
    MAX_KEPT_CHARS,
    _dict,
    _list,
    _text,
)

_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
_HEAD_EVENTS = ("response.created", "response.in_progress", "response.queued")
# Output items of one answer past this index are garbage, not kept.
_MAX_ITEMS = 1024
# Deltas kept, by event type: the piece's key in the item, and the field that numbers it.
_DELTAS = {
    "response.output_text.delta": ("text", "content_index"),
    "response.refusal.delta": ("refusal", "content_index"),
    "response.function_call_arguments.delta": ("arguments", None),
    "response.reasoning_text.delta": ("reasoning", "content_index"),
    "response.reasoning_summary_text.delta": ("summary", "summary_index"),
}


@dataclass
class _Partial:
    """One output item of a stream not (yet) finished: as added, plus its deltas."""

    item: dict[str, Any]
    pieces: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)  # content_part.added
    done: dict[str, Any] | None = None  # the item of output_item.done, whole

    def as_dict(self) -> dict[str, Any]:
        if self.done is not None:
            return self.done
        item = dict(self.item)
        joined = {key: "".join(pieces) for key, pieces in self.pieces.items()}
        kind = item.get("type")
        if kind == "function_call":
            item["arguments"] = _text(item.get("arguments")) + joined.get(("arguments", 0), "")
        elif kind == "message":
            indexes = sorted({i for _, i in joined} | set(self.parts))
            item["content"] = [self._part(i, joined) for i in indexes]
        elif kind == "reasoning":
            for key, part_type, name in (
                ("reasoning", "reasoning_text", "content"),
                ("summary", "summary_text", "summary"),
            ):
                texts = sorted((i, text) for (k, i), text in joined.items() if k == key)
                if texts:
                    item[name] = [{"type": part_type, "text": text} for _, text in texts]
        return item

    def _part(self, index: int, joined: dict[tuple[str, int], str]) -> dict[str, Any]:
        if ("refusal", index) in joined:
            return {
                **self.parts.get(index, {}),
                "type": "refusal",
                "refusal": joined[("refusal", index)],
            }
        part = {"type": "output_text", "annotations": [], **self.parts.get(index, {})}
        return {**part, "text": _text(part.get("text")) + joined.get(("text", index), "")}


class Assembler:
    """Implements `gateway.apis.base.Assembler` for the Responses API."""

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.usage: dict[str, Any] | None = None
        self.first_token_at: float | None = None
        self.saw_done = False
        self.whole: dict[str, Any] | None = None
        self.truncated = False
        # What an `error` event, or a failed response, said (the record's error, if any).
        self.error: dict[str, Any] | None = None
        self._head: dict[str, Any] | None = None  # the response as response.created gave it
        self._final: dict[str, Any] | None = None  # the response of the stream's last event
        self._items: dict[int, _Partial] = {}
        self._kept = 0
        self._events = SseSplitter()
        # The answer read as a chat.completion, made once when capture first asks (capture
        # asks four questions of it; each conversion was ~10 us); forgotten on new input.
        self._as_chat: dict[str, Any] | None = None

    # -- streams -----------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> bytes:
        self._as_chat = None
        events = self._events.feed(data)
        for event in events:
            self._on_event(event, now)
        return b"".join(events)

    def flush(self, now: float) -> bytes:
        self._as_chat = None
        rest = self._events.rest()
        if not rest.strip():
            return b""
        self._on_event(rest, now)
        return rest + b"\n\n"

    def _on_event(self, event: bytes, now: float) -> None:
        name, data = sse.fields(event)
        if not data:
            return
        if data.strip() == b"[DONE]":
            self.saw_done = True
            return
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        kind = _text(payload.get("type")) or (name or b"").decode(errors="replace")
        delta = _DELTAS.get(kind)
        if delta is not None:  # nearly every event of a stream: first, and in few steps
            if self.first_token_at is None:
                self.first_token_at = now
            self._delta(payload, *delta)
        elif kind.endswith(".delta"):
            if self.first_token_at is None:
                self.first_token_at = now
        elif kind in _HEAD_EVENTS or kind in _FINAL_EVENTS:
            self._on_response(kind, payload.get("response"))
        elif kind == "response.output_item.added":
            self._item_added(payload, len(data))
        elif kind == "response.output_item.done":
            self._item_done(payload, len(data))
        elif kind == "response.content_part.added":
            partial = self._partial(payload)
            part = payload.get("part")
            index = max(_number(payload.get("content_index")), 0)
            if partial is not None and isinstance(part, dict) and self._charge(len(data)):
                partial.parts[index] = part
        elif kind == "error":
            error = payload.get("error")
            self.error = error if isinstance(error, dict) else payload

    def _on_response(self, kind: str, response: Any) -> None:
        if not isinstance(response, dict):
            return
        if self.response_id is None and _text(response.get("id")):
            self.response_id = response["id"]
        if kind in _HEAD_EVENTS:
            self._head = {k: v for k, v in response.items() if k != "output"}
            return
        self.saw_done = True
        self._final = response
        self._take_usage(response.get("usage"))
        if isinstance(response.get("error"), dict):
            self.error = response["error"]
        if isinstance(response.get("output"), list):
            self._items.clear()  # all there, whole, in the final response
            self._kept = 0

    def _partial(self, payload: dict[str, Any]) -> _Partial | None:
        return self._items.get(_number(payload.get("output_index")))

    def _item_added(self, payload: dict[str, Any], size: int) -> None:
        index, item = _number(payload.get("output_index")), payload.get("item")
        if index < 0 or not isinstance(item, dict) or index in self._items:
            return
        if self._charge(size):
            self._items[index] = _Partial(item)

    def _item_done(self, payload: dict[str, Any], size: int) -> None:
        index, item = _number(payload.get("output_index")), payload.get("item")
        if index < 0 or not isinstance(item, dict):
            return
        partial = self._items.get(index)
        if partial is None:
            if not self._charge(size):
                return
            partial = self._items[index] = _Partial(item)
        # The whole item replaces its pieces, which are let go.
        released = sum(len(piece) for pieces in partial.pieces.values() for piece in pieces)
        self._kept -= released
        if self._charge(size):
            partial.done, partial.pieces = item, {}
        else:
            self._kept += released

    def _delta(self, payload: dict[str, Any], key: str, numbered_by: str | None) -> None:
        index = payload.get("output_index")
        # Only valid indexes are keys of `_items`; `type` keeps an unhashable one out.
        partial = self._items.get(index) if type(index) is int else None
        delta = payload.get("delta")
        if partial is None or partial.done is not None or type(delta) is not str or not delta:
            return
        slot = (key, max(_number(payload.get(numbered_by)), 0) if numbered_by else 0)
        if self._charge(len(delta)):
            partial.pieces.setdefault(slot, []).append(delta)

    def _charge(self, size: int) -> bool:
        """Count `size` characters against MAX_KEPT_CHARS; False (and `truncated`) past it."""
        if self._kept + size > MAX_KEPT_CHARS:
            self.truncated = True
            return False
        self._kept += size
        return True

    # -- whole bodies ------------------------------------------------------------------------
    def load(self, body: dict[str, Any]) -> None:
        self._as_chat = None
        self.whole = body
        if isinstance(body, dict):
            if self.response_id is None and _text(body.get("id")):
                self.response_id = body["id"]
            self._take_usage(body.get("usage"))

    def _take_usage(self, usage: Any) -> None:
        chat = usage_to_chat(usage)
        if chat:
            self.usage = chat

    # -- what was answered -------------------------------------------------------------------
    def response(self) -> dict[str, Any]:
        """The provider's response object; for a stream cut short, what it added up to."""
        if self.whole is not None:
            return self.whole
        items = [self._items[i].as_dict() for i in sorted(self._items)]
        if self._final is not None:
            if isinstance(self._final.get("output"), list) or not items:
                return self._final
            return {**self._final, "output": items}
        head = self._head or {"id": self.response_id, "object": "response", "model": None}
        return {**head, "status": _text(head.get("status")) or "in_progress", "output": items}

    def _chat(self) -> dict[str, Any]:
        if self._as_chat is None:
            self._as_chat = to_chat_response(self.response())
        return self._as_chat

    def _message(self) -> dict[str, Any]:
        choices = _list(self._chat().get("choices"))
        return _dict(_dict(choices[0]).get("message")) if choices else {}

    @property
    def finish_reason(self) -> str | None:
        choices = _list(self._chat().get("choices"))
        return _text(_dict(choices[0]).get("finish_reason")) or None if choices else None

    def answer_text(self) -> str:
        return _text(self._message().get("content"))

    def has_tool_calls(self) -> bool:
        return bool(_list(self._message().get("tool_calls")))


def _number(value: Any) -> int:
    """An index the upstream sent: a small non-negative integer, else -1 (garbage)."""
    return value if type(value) is int and 0 <= value < _MAX_ITEMS else -1
