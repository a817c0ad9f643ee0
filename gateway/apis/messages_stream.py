"""Chat-completions SSE turned into Messages SSE, for a /v1/messages client served by a chat
provider.

Each chat chunk becomes its Messages events as soon as it arrives: `message_start` at the first
chunk, then one content block at a time (text, thinking when the client asked for it, one
`tool_use` block per tool call with its arguments as `input_json_delta`s), each closed before the
next opens. The finish reason closes the last block; `[DONE]` (or the end of the body without it)
sends `message_delta` with the stop reason and the usage the final chunk reported, then
`message_stop`.

A chat stream has no usage until its end, so `message_start` says 0 input tokens and the real
counts (input, cache reads, output) come in `message_delta`, whose counts the SDKs take as the
totals. Nothing a chunk holds makes it raise; what it keeps is a few ids, not the answer.
"""

from __future__ import annotations

from typing import Any

from gateway.apis.messages_common import (
    anthropic_event,
    as_dict,
    as_list,
    message_id,
    sse_fields,
    sse_json,
    stop_reason,
    stop_sequences,
    text,
    thinking_enabled,
    tool_names,
    tool_use_id,
    usage_from_chat,
)
from gateway.apis.sse import SseSplitter

_MAX_TOOL_CALLS = 1024  # a tool-call index past this is garbage, read as call 0

# Error types the gateway uses (OpenAI's vocabulary and its own) in Anthropic's.
_ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit_error": "rate_limit_error",
    "timeout_error": "timeout_error",
    "api_error": "api_error",
    "overloaded_error": "overloaded_error",
    "upstream_timeout": "timeout_error",
    "rate_limit_exceeded": "rate_limit_error",
    "insufficient_quota": "rate_limit_error",
}


def anthropic_error_type(error_type: Any) -> str:
    """Any error type as one of Anthropic's (api_error when it has no better word)."""
    return _ERROR_TYPES.get(text(error_type), "api_error")


def error_event(message: str, error_type: str) -> bytes:
    error = {"type": anthropic_error_type(error_type), "message": message}
    return anthropic_event({"type": "error", "error": error})


class ChatStreamTranslator:
    """Chat SSE in, Messages SSE out, for one request (the client's Messages body)."""

    def __init__(self, request: dict[str, Any]):
        request = as_dict(request)
        self._thinking = thinking_enabled(request)
        self._names = tool_names(request)
        self._stops = stop_sequences(request)
        model = request.get("model")
        self._model = model if isinstance(model, str) else ""
        self._splitter = SseSplitter()
        self._started = False
        self._closed = False  # message_stop or an error event has been sent: nothing follows
        self._chat_id: Any = None
        self._next_index = 0  # of the next content block
        self._open: tuple[str, int] | None = None  # the open block: its kind and index
        self._tools: dict[int, int] = {}  # chat tool-call index -> its block's index
        self._finish: Any = None
        self._matched: Any = None
        self._usage: dict[str, Any] | None = None

    def feed(self, events: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._splitter.feed(events):
            self._event(event, out)
        return b"".join(out)

    def finish(self) -> bytes:
        out: list[bytes] = []
        rest = self._splitter.rest()
        if rest.strip():
            self._event(rest, out)
        if not self._closed:
            self._close_message(out)
        return b"".join(out)

    def error_event(self, message: str, error_type: str) -> bytes:
        self._closed = True
        return error_event(message, error_type)

    # -- reading chat ----------------------------------------------------------------------
    def _event(self, event: bytes, out: list[bytes]) -> None:
        if self._closed:
            return
        _, data = sse_fields(event)
        if not data:
            return
        if data.strip() == b"[DONE]":
            self._close_message(out)
            return
        chunk = sse_json(data)
        if not isinstance(chunk, dict):
            return
        error = chunk.get("error")
        if error is not None and not chunk.get("choices"):
            # An in-stream error (vLLM, the gateway's own): Anthropic's error event ends it.
            error = as_dict(error)
            message = text(error.get("message")) or "The upstream stream failed."
            out.append(self.error_event(message, text(error.get("type"))))
            return
        if not self._started:
            self._start(chunk, out)
        if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
            self._usage = chunk["usage"]
        for choice in as_list(chunk.get("choices")):
            # Anthropic answers with one message: choices past the first (`n`) are left out.
            position = as_dict(choice).get("index")
            if isinstance(choice, dict) and not (isinstance(position, int) and position != 0):
                self._choice(choice, out)

    def _start(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        self._started = True
        self._chat_id = chunk.get("id")
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._model = chunk["model"]
        usage = usage_from_chat(chunk.get("usage"))
        usage.pop("output_tokens_details", None)
        message: dict[str, Any] = {
            "id": message_id(self._chat_id),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        out.append(anthropic_event({"type": "message_start", "message": message}))

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = as_dict(choice.get("delta"))
        reasoning = text(delta.get("reasoning_content")) or text(delta.get("reasoning"))
        if reasoning and self._thinking:
            start = {"type": "thinking", "thinking": "", "signature": ""}
            index = self._block("thinking", out, start)
            self._delta(index, {"type": "thinking_delta", "thinking": reasoning}, out)
        answer = text(delta.get("content")) + text(delta.get("refusal"))
        if answer:
            index = self._block("text", out, {"type": "text", "text": ""})
            self._delta(index, {"type": "text_delta", "text": answer}, out)
        for call in as_list(delta.get("tool_calls")):
            if isinstance(call, dict):
                self._tool_call(call, out)
        if text(choice.get("finish_reason")):
            self._finish = choice["finish_reason"]
            self._matched = choice.get("stop_reason")
            self._close_block(out)  # the answer is complete; the usage chunk may follow

    def _tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        position = call.get("index")
        if not (isinstance(position, int) and 0 <= position < _MAX_TOOL_CALLS):
            position = 0
        function = as_dict(call.get("function"))
        if position not in self._tools:
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                call_id = tool_use_id(self._chat_id, position)
            name = text(function.get("name"))
            block = {"type": "tool_use", "id": call_id, "name": self._names.get(name, name)}
            self._tools[position] = self._block("tool", out, {**block, "input": {}}, new=True)
        arguments = text(function.get("arguments"))
        if arguments:
            # A call continued after another began (never from OpenAI) still reaches its block.
            delta = {"type": "input_json_delta", "partial_json": arguments}
            self._delta(self._tools[position], delta, out)

    # -- writing Messages ------------------------------------------------------------------
    def _block(self, kind: str, out: list[bytes], start: dict[str, Any], new: bool = False) -> int:
        """The index of the open block of this kind, opening one (and closing the open one)
        when needed; each tool call has a block of its own (`new`)."""
        if self._open is not None and self._open[0] == kind and not new:
            return self._open[1]
        self._close_block(out)
        index = self._next_index
        self._next_index += 1
        self._open = (kind, index)
        out.append(
            anthropic_event({"type": "content_block_start", "index": index, "content_block": start})
        )
        return index

    def _delta(self, index: int, delta: dict[str, Any], out: list[bytes]) -> None:
        out.append(anthropic_event({"type": "content_block_delta", "index": index, "delta": delta}))

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(anthropic_event({"type": "content_block_stop", "index": self._open[1]}))
            self._open = None

    def _close_message(self, out: list[bytes]) -> None:
        if not self._started:
            self._start({}, out)
        self._close_block(out)
        reason, sequence = stop_reason(self._finish, self._matched, self._stops, bool(self._tools))
        usage = usage_from_chat(self._usage)
        if self._usage is None:  # no usage chunk: nothing better to say than 0 generated
            usage = {"output_tokens": 0}
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        out.append(anthropic_event({"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(anthropic_event({"type": "message_stop"}))
        self._closed = True
