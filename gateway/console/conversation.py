"""One stored interaction as what a person reads: messages with roles, tool calls and JSON made
readable, and the answer.

Every API's record (chat, Responses, Anthropic Messages) is read through the chat view
(gateway/apis/chat_view.py), the same one exports and feedback read, so the console shows what
a dataset would contain. Other endpoints (embeddings, completions...) show their prompt.
Pure functions of the stored row: no request, no store.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.apis.chat_view import chat_request, chat_response

# The flag's own pattern, so the placeholders named are exactly those it found.
from gateway.quality import UNRENDERED_TEMPLATE, prompt_text
from gateway.quality import placeholders as unrendered

# Beyond this a raw body is cut on the page (the admin API returns it whole).
RAW_CHARS = 200_000


@dataclass
class ToolCall:
    name: str
    arguments: str  # pretty JSON when it parses, else as sent
    id: str | None = None


@dataclass
class Message:
    role: str
    text: str = ""
    json: str | None = None  # the text pretty-printed, when it is a JSON object or array
    tool_calls: list[ToolCall] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)  # "image", "audio"... not loaded
    name: str | None = None  # a tool message's tool call id, or a participant's name


def messages(endpoint: str, request: Any) -> list[Message]:
    endpoint, request = chat_request(endpoint, request)
    if not isinstance(request, dict):
        return []
    if endpoint != "chat/completions":
        return [Message("prompt", prompt_text(endpoint, request))]
    return [_message(m) for m in request.get("messages") or [] if isinstance(m, dict)]


def answer(response: Any) -> Message | None:
    """The first choice of the stored answer, as an assistant message; None if there is none."""
    response = chat_response(response)
    if not isinstance(response, dict):
        return None
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if isinstance(choice.get("text"), str):
        return _with_json(Message("assistant", choice["text"]))
    message = choice.get("message")
    return _message(message) if isinstance(message, dict) else None


def placeholders(endpoint: str, request: Any, flags: list[str]) -> list[str]:
    """The unrendered `{{ name }}` / `{name}` placeholders behind that quality flag."""
    if UNRENDERED_TEMPLATE not in (flags or []) or not isinstance(request, dict):
        return []
    return unrendered(endpoint, request)


def pretty(value: Any, limit: int = RAW_CHARS) -> str:
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()
    return text if len(text) <= limit else f"{text[:limit]}\n...[+{len(text) - limit} chars]"


def _message(raw: dict[str, Any]) -> Message:
    message = Message(role=str(raw.get("role") or "unknown"))
    content = raw.get("content")
    if isinstance(content, str):
        message.text = content
    elif isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                message.attachments.append(str(part.get("type", "part")))
        message.text = "\n".join(texts)
    for call in raw.get("tool_calls") or []:
        if isinstance(call, dict):
            function = call.get("function") or {}
            message.tool_calls.append(
                ToolCall(
                    name=str(function.get("name", "?")),
                    arguments=_json_text(function.get("arguments")),
                    id=call.get("id"),
                )
            )
    message.name = raw.get("tool_call_id") or raw.get("name")
    return _with_json(message)


def _with_json(message: Message) -> Message:
    stripped = message.text.strip()
    if stripped[:1] in ("{", "["):
        with contextlib.suppress(orjson.JSONDecodeError):
            message.json = pretty(orjson.loads(stripped))
    return message


def _json_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            return pretty(orjson.loads(arguments))
        except orjson.JSONDecodeError:
            return arguments
    return pretty(arguments)
