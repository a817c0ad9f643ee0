"""The other direction: a chat-completions client served by a provider that speaks only
Messages (a provider of type `anthropic`). `from_chat_request` writes the Messages request;
`MessagesToChatStream` turns the Messages SSE answer back into chat SSE, ending with a usage
chunk (`choices: []`, as `stream_options.include_usage` asks; the proxy hides it from clients
that did not) and `data: [DONE]`. A whole answer comes back through `to_chat_response`.

Chat's system and developer messages become the `system` prompt (wherever they stood), tool
messages `tool_result` blocks; what Messages has no word for (audio, files by id, `n`,
penalties, logprobs, seeds) is left out. Neither raises on odd input.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.apis.messages_common import (
    as_dict,
    as_list,
    chat_event,
    content_text,
    count,
    dumps,
    finish_reason,
    parse_object,
    sse_fields,
    sse_json,
    text,
    tool_use_id,
    usage_to_chat,
)
from gateway.apis.sse import SseSplitter

# What Anthropic must be told when the chat request set no limit.
DEFAULT_MAX_TOKENS = 4096
_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def from_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    body = as_dict(body)
    request: dict[str, Any] = {"model": body.get("model")}
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for item in as_list(body.get("messages")):
        message = as_dict(item)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content")))
        elif role == "user":
            _append(messages, "user", _user_blocks(message.get("content")))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": text(message.get("tool_call_id")),
                "content": content_text(message.get("content")),
            }
            _append(messages, "user", [result])
    if system:
        request["system"] = system[0]["text"] if len(system) == 1 else system
    request["messages"] = messages
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    request["max_tokens"] = limit if count(limit) is not None else DEFAULT_MAX_TOKENS
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in as_list(stop) if isinstance(s, str)]
    if stops:
        request["stop_sequences"] = stops
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        request["temperature"] = min(temperature, 1.0)  # chat goes to 2, Anthropic to 1
    top_p = body.get("top_p")
    if isinstance(top_p, int | float) and not isinstance(top_p, bool):
        request["top_p"] = top_p
    if isinstance(body.get("user"), str) and body["user"]:
        request["metadata"] = {"user_id": body["user"]}
    if body.get("stream") is True:
        request["stream"] = True
    response_format = as_dict(body.get("response_format"))
    schema = as_dict(response_format.get("json_schema")).get("schema")
    if response_format.get("type") == "json_schema" and isinstance(schema, dict):
        request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    _tools(body, request)
    return request


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add a turn, joined to the one before when it has the same role (tool results only to
    a turn of tool results: Anthropic wants them first in their turn)."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        previous = messages[-1]["content"]
        tool_results = all(b.get("type") == "tool_result" for b in previous)
        if blocks[0].get("type") != "tool_result" or tool_results:
            previous.extend(blocks)
            return
    messages.append({"role": role, "content": blocks})


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [
        {"type": "text", "text": part["text"]}
        for part in as_list(content)
        if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]
    ]


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return _text_blocks(content)
    blocks = []
    for part in content:
        part = as_dict(part)
        kind = part.get("type")
        if kind == "text":
            blocks.extend(_text_blocks([part]))
        elif kind == "image_url":
            url = as_dict(part.get("image_url")).get("url", part.get("image_url"))
            source = _source(url)
            if source is not None:
                blocks.append({"type": "image", "source": source})
        elif kind == "file":
            source = _source(as_dict(part.get("file")).get("file_data"))
            if source is not None and source["type"] == "base64":
                blocks.append({"type": "document", "source": source})
    return blocks


def _source(url: Any) -> dict[str, Any] | None:
    """A data URL as a base64 source, any other URL as a url source."""
    if not isinstance(url, str) or not url:
        return None
    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        media, _, encoding = head.partition(";")
        if encoding != "base64" or not data:
            return None
        return {"type": "base64", "media_type": media, "data": data}
    return {"type": "url", "url": url}


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.get("content"))
    for index, call in enumerate(as_list(message.get("tool_calls"))):
        call = as_dict(call)
        function = as_dict(call.get("function"))
        call_id = call.get("id")
        blocks.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else tool_use_id("", index),
                "name": text(function.get("name")),
                "input": parse_object(function.get("arguments")),
            }
        )
    return blocks


def _tools(body: dict[str, Any], request: dict[str, Any]) -> None:
    tools = []
    for tool in as_list(body.get("tools")):
        function = as_dict(as_dict(tool).get("function"))
        if as_dict(tool).get("type") != "function" or not text(function.get("name")):
            continue
        entry: dict[str, Any] = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            entry["description"] = function["description"]
        parameters = function.get("parameters")
        entry["input_schema"] = parameters if isinstance(parameters, dict) else _EMPTY_SCHEMA
        if isinstance(function.get("strict"), bool):
            entry["strict"] = function["strict"]
        tools.append(entry)
    if not tools:
        return
    request["tools"] = tools
    choice = body.get("tool_choice")
    named = as_dict(as_dict(choice).get("function")).get("name")
    tool_choice: dict[str, Any] | None = None
    if choice in ("auto", "none"):
        tool_choice = {"type": choice}
    elif choice == "required":
        tool_choice = {"type": "any"}
    elif isinstance(named, str):
        tool_choice = {"type": "tool", "name": named}
    if body.get("parallel_tool_calls") is False and as_dict(tool_choice).get("type") != "none":
        tool_choice = {**(tool_choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if tool_choice is not None:
        request["tool_choice"] = tool_choice


class MessagesToChatStream:
    """Messages SSE in, chat SSE out, for one chat request."""

    def __init__(self, request: dict[str, Any], created: int | None = None):
        model = as_dict(request).get("model")
        self._model = model if isinstance(model, str) else ""
        self._created = created if isinstance(created, int) else int(time.time())
        self._id: str | None = None
        self._splitter = SseSplitter()
        self._started = False
        self._finished = False  # the finish chunk has been sent
        self._closed = False  # [DONE] or an error has been sent
        self._tool_calls: dict[int, int] = {}  # content block index -> tool_calls index
        self._usage: dict[str, Any] = {}

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
            self._close(out, None)
        return b"".join(out)

    def error_event(self, message: str, error_type: str) -> bytes:
        self._closed = True
        error = {"message": message, "type": error_type, "param": None, "code": None}
        return chat_event({"error": error})

    def _event(self, event: bytes, out: list[bytes]) -> None:
        if self._closed:
            return
        name, data = sse_fields(event)
        payload = sse_json(data) if data else None
        if not isinstance(payload, dict):
            return
        kind = payload.get("type") if isinstance(payload.get("type"), str) else name
        if kind == "error":
            error = as_dict(payload.get("error"))
            message = text(error.get("message")) or "The upstream stream failed."
            out.append(self.error_event(message, text(error.get("type")) or "api_error"))
            return
        if kind == "message_start":
            head = as_dict(payload.get("message"))
            if isinstance(head.get("id"), str):
                self._id = head["id"]
            if isinstance(head.get("model"), str) and head["model"]:
                self._model = head["model"]
            self._take_usage(head.get("usage"))
        if not self._started and kind != "ping":
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if kind == "content_block_start":
            self._block_start(payload, out)
        elif kind == "content_block_delta":
            self._delta(payload.get("index"), as_dict(payload.get("delta")), out)
        elif kind == "message_delta":
            self._take_usage(payload.get("usage"))
            stop = as_dict(payload.get("delta")).get("stop_reason")
            if stop is not None:
                self._close(out, stop, done=False)
        elif kind == "message_stop":
            self._close(out, None)

    def _block_start(self, payload: dict[str, Any], out: list[bytes]) -> None:
        block = as_dict(payload.get("content_block"))
        if block.get("type") == "text" and text(block.get("text")):
            out.append(self._chunk({"content": block["text"]}))
        elif block.get("type") == "tool_use" and isinstance(payload.get("index"), int):
            position = len(self._tool_calls)
            self._tool_calls[payload["index"]] = position
            block_input = block.get("input")
            arguments = dumps(block_input) if block_input else ""
            call = {
                "index": position,
                "id": text(block.get("id")) or tool_use_id(self._id, position),
                "type": "function",
                "function": {"name": text(block.get("name")), "arguments": arguments},
            }
            out.append(self._chunk({"tool_calls": [call]}))

    def _delta(self, index: Any, delta: dict[str, Any], out: list[bytes]) -> None:
        kind = delta.get("type")
        if kind == "text_delta" and text(delta.get("text")):
            out.append(self._chunk({"content": delta["text"]}))
        elif kind == "thinking_delta" and text(delta.get("thinking")):
            out.append(self._chunk({"reasoning_content": delta["thinking"]}))
        elif kind == "input_json_delta" and text(delta.get("partial_json")):
            position = self._tool_calls.get(index) if isinstance(index, int) else None
            if position is not None:
                function = {"arguments": delta["partial_json"]}
                out.append(self._chunk({"tool_calls": [{"index": position, "function": function}]}))

    def _take_usage(self, usage: Any) -> None:
        for key, value in as_dict(usage).items():
            if count(value) is not None or (key == "output_tokens_details" and value):
                self._usage[key] = value  # running totals: the latest is the count

    def _close(self, out: list[bytes], stop: Any, done: bool = True) -> None:
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if not self._finished:
            self._finished = True
            reason = finish_reason(stop) or ("tool_calls" if self._tool_calls else "stop")
            out.append(self._chunk({}, reason))
        if not done:
            return
        usage = usage_to_chat(self._usage)
        if usage is not None:
            out.append(chat_event({**self._envelope(), "choices": [], "usage": usage}))
        out.append(b"data: [DONE]\n\n")
        self._closed = True

    def _envelope(self) -> dict[str, Any]:
        return {
            "id": self._id or "",
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return chat_event({**self._envelope(), "choices": [choice]})
