"""The Responses API's `response` object built from a chat.completion, for a provider that speaks
only chat (read back as chat by gateway/apis/responses_to_chat.py).

Ids are derived from the chat completion's id, so one chat answer always becomes the same
`resp_...`, `msg_...` and `fc_...` ids, whether it was translated whole or streamed.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from gateway.proxy.assembler import _dict, _list, _text

# What a chat finish_reason makes of a response: its status and incomplete_details.reason.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


# -- ids -------------------------------------------------------------------------------------
def id_base(chat_id: Any) -> str:
    """48 hex digits derived from the chat completion's id (random when it has none)."""
    if isinstance(chat_id, str) and chat_id:
        return hashlib.sha256(chat_id.encode(errors="replace")).hexdigest()[:48]
    return (uuid.uuid4().hex + uuid.uuid4().hex)[:48]


def derived_id(prefix: str, base: str, key: str = "") -> str:
    """`prefix` + the base, or for a `key` (the n-th call, a second message) a hash of both."""
    if not key:
        return prefix + base
    return prefix + hashlib.sha256(f"{base}:{key}".encode()).hexdigest()[:48]


def message_id(base: str, ordinal: int = 0) -> str:
    return derived_id("msg_", base, f"msg{ordinal}" if ordinal else "")


def reasoning_id(base: str, ordinal: int = 0) -> str:
    return derived_id("rs_", base, f"rs{ordinal}" if ordinal else "")


def call_item_id(base: str, ordinal: int) -> str:
    return derived_id("fc_", base, f"fc{ordinal}")


def fallback_call_id(base: str, ordinal: int) -> str:
    """A call_id for a chat tool call that came without an id."""
    return "call_" + derived_id("", base, f"call{ordinal}")[:24]


# -- output items ----------------------------------------------------------------------------
def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def reasoning_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content, "status": status}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def chat_output(message: dict[str, Any], base: str, incomplete: bool) -> list[dict[str, Any]]:
    """A chat message's output items: its reasoning, its text (or refusal), its tool calls.

    There is always a message item unless the answer is tool calls only; the last item is
    `incomplete` when the answer was cut (length, content filter), the others `completed`.
    """
    items: list[dict[str, Any]] = []
    reasoning = _text(message.get("reasoning_content"))
    if reasoning:
        items.append(reasoning_item(reasoning_id(base), reasoning, "completed"))
    text, refusal = _content_text(message.get("content")), _text(message.get("refusal"))
    calls = [call for call in _list(message.get("tool_calls")) if isinstance(call, dict)]
    parts = [text_part(text)] if text else []
    if refusal:
        parts.append(refusal_part(refusal))
    if parts or not calls:
        items.append(message_item(message_id(base), parts or [text_part("")], "completed"))
    for ordinal, call in enumerate(calls):
        function = _dict(call.get("function"))
        items.append(
            function_call_item(
                call_item_id(base, ordinal),
                _text(call.get("id")) or fallback_call_id(base, ordinal),
                _text(function.get("name")),
                _text(function.get("arguments")),
                "completed",
            )
        )
    if incomplete:
        items[-1]["status"] = "incomplete"
    return items


# -- the response object ---------------------------------------------------------------------
def response_object(
    request: Any,
    *,
    response_id: str,
    created_at: Any,
    model: Any,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `response` object, echoing the request's settings as OpenAI's does."""
    request = _dict(request)
    text = _dict(request.get("text"))
    reasoning = _dict(request.get("reasoning"))
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if _is_number(created_at) else 0,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "instructions": _str_or_list(request.get("instructions")),
        "max_output_tokens": _int_or_none(request.get("max_output_tokens")),
        "max_tool_calls": None,
        "model": model if isinstance(model, str) else _text(request.get("model")),
        "output": output,
        "parallel_tool_calls": _bool(request.get("parallel_tool_calls"), True),
        "previous_response_id": _text(request.get("previous_response_id")) or None,
        "prompt_cache_key": _text(request.get("prompt_cache_key")) or None,
        "reasoning": {
            "effort": _text(reasoning.get("effort")) or None,
            "summary": _text(reasoning.get("summary")) or None,
        },
        "safety_identifier": _text(request.get("safety_identifier")) or None,
        "service_tier": _text(request.get("service_tier")) or None,
        "store": _bool(request.get("store"), True),
        "temperature": _number(request.get("temperature"), 1.0),
        "text": {
            "format": _echo_format(text.get("format")),
            "verbosity": _text(text.get("verbosity")) or "medium",
        },
        "tool_choice": _echo_tool_choice(request.get("tool_choice")),
        "tools": _echo_tools(request.get("tools")),
        "top_logprobs": _int_or_none(request.get("top_logprobs")) or 0,
        "top_p": _number(request.get("top_p"), 1.0),
        "truncation": "auto" if request.get("truncation") == "auto" else "disabled",
        "usage": usage,
        "user": _text(request.get("user")) or None,
        "metadata": {k: v for k, v in _dict(request.get("metadata")).items() if isinstance(v, str)},
    }


def status_of(finish_reason: Any) -> tuple[str, str | None]:
    """A chat finish_reason as the response's status and incomplete_details.reason."""
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", reason) if reason else ("completed", None)


def from_chat_response(chat: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A whole chat.completion (first choice) as a Responses `response` object. Never raises."""
    chat = _dict(chat)
    choices = _list(chat.get("choices"))
    choice = _dict(choices[0]) if choices else {}
    base = id_base(chat.get("id"))
    status, reason = status_of(choice.get("finish_reason"))
    output = chat_output(_dict(choice.get("message")), base, status == "incomplete")
    return response_object(
        request,
        response_id="resp_" + base,
        created_at=chat.get("created"),
        model=chat.get("model"),
        status=status,
        incomplete_reason=reason,
        output=output,
        usage=usage_from_chat(chat.get("usage")),
    )


# -- usage -----------------------------------------------------------------------------------
def usage_from_chat(usage: Any) -> dict[str, Any] | None:
    """Chat usage as the Responses usage a client reads: every count an integer (0 if absent)."""
    if not isinstance(usage, dict) or not usage:
        return None
    prompt, completion = (
        _dict(usage.get("prompt_tokens_details")),
        _dict(usage.get("completion_tokens_details")),
    )
    input_tokens, output_tokens = (
        _count(usage.get("prompt_tokens")),
        _count(usage.get("completion_tokens")),
    )
    total = usage.get("total_tokens")
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": _count(prompt.get("cached_tokens")),
            "cache_write_tokens": _count(prompt.get("cache_write_tokens")),
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": _count(completion.get("reasoning_tokens"))},
        "total_tokens": _count(total) if _count(total) else input_tokens + output_tokens,
    }


# -- echoes of the request -------------------------------------------------------------------
def _echo_format(fmt: Any) -> dict[str, Any]:
    fmt = _dict(fmt)
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if (
        fmt.get("type") == "json_schema"
        and isinstance(fmt.get("name"), str)
        and isinstance(fmt.get("schema"), dict)
    ):
        return fmt
    return {"type": "text"}


def _echo_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    choice = _dict(choice)
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "name": choice["name"]}
    if choice.get("type") == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        return {
            "type": "allowed_tools",
            "mode": choice["mode"],
            "tools": _list(choice.get("tools")),
        }
    return "auto"


def _echo_tools(tools: Any) -> list[dict[str, Any]]:
    echoed = []
    for tool in _list(tools):
        if isinstance(tool, dict) and tool.get("type") == "function" and _text(tool.get("name")):
            parameters = tool.get("parameters")
            echoed.append(
                {
                    "type": "function",
                    "name": tool["name"],
                    "description": tool.get("description")
                    if isinstance(tool.get("description"), str)
                    else None,
                    "parameters": parameters if isinstance(parameters, dict) else None,
                    "strict": tool.get("strict") if isinstance(tool.get("strict"), bool) else None,
                }
            )
    return echoed


# -- small readers ---------------------------------------------------------------------------
def _content_text(content: Any) -> str:
    """A chat message's content: a string, or the text of its parts."""
    if isinstance(content, list):
        return "".join(_text(_dict(part).get("text")) for part in content)
    return _text(content)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _number(value: Any, default: float) -> float:
    return value if _is_number(value) else default


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _bool(value: Any, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def _str_or_list(value: Any) -> Any:
    return value if isinstance(value, str | list) else None
