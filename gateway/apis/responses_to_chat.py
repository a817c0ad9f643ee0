"""A Responses API `response` object read as a chat.completion: the one shape feedback, review
and exports read, whichever API an answer came in on. Nothing in it may raise.
"""

from __future__ import annotations

from typing import Any

from gateway.proxy.assembler import _dict, _list, _text

_FINISH_OF_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def usage_to_chat(usage: Any) -> dict[str, Any] | None:
    """Responses usage in chat vocabulary. Counts are passed on as they came: whether they are
    plausible is decided where they become columns (gateway/proxy/capture.py)."""
    if not isinstance(usage, dict) or not usage:
        return None
    if "input_tokens" not in usage and "prompt_tokens" in usage:
        return usage  # a server that answers Responses with chat usage
    chat: dict[str, Any] = {
        "prompt_tokens": usage.get("input_tokens"),
        "completion_tokens": usage.get("output_tokens"),
        "total_tokens": usage.get("total_tokens"),
    }
    details = _dict(usage.get("input_tokens_details"))
    prompt = {k: details[k] for k in ("cached_tokens", "cache_write_tokens") if k in details}
    if prompt:
        chat["prompt_tokens_details"] = prompt
    details = _dict(usage.get("output_tokens_details"))
    if "reasoning_tokens" in details:
        chat["completion_tokens_details"] = {"reasoning_tokens": details["reasoning_tokens"]}
    return {k: v for k, v in chat.items() if v is not None}


def to_chat_response(response: dict[str, Any]) -> dict[str, Any]:
    """A Responses `response` object as a chat.completion. Never raises."""
    response = _dict(response)
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    has_message = False
    for item in _list(response.get("output")):
        item = _dict(item)
        kind = item.get("type")
        if kind == "message":
            has_message = True
            for part in _list(item.get("content")):
                part = _dict(part)
                if part.get("type") == "refusal":
                    refusals.append(_text(part.get("refusal")))
                else:
                    texts.append(_text(part.get("text")))
        elif kind == "function_call":
            function = {"name": _text(item.get("name")), "arguments": _text(item.get("arguments"))}
            call_id = _text(item.get("call_id")) or _text(item.get("id"))
            calls.append({"id": call_id, "type": "function", "function": function})
        elif kind == "reasoning":
            reasoning.append(_reasoning_text(item))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if has_message and (texts or not refusals) else None,
    }
    if refusals:
        message["refusal"] = "".join(refusals)
    if any(reasoning):
        message["reasoning_content"] = "\n\n".join(text for text in reasoning if text)
    if calls:
        message["tool_calls"] = calls
    created = response.get("created_at")
    chat: dict[str, Any] = {
        "id": response.get("id") if isinstance(response.get("id"), str) else None,
        "object": "chat.completion",
        "created": int(created)
        if isinstance(created, int | float) and _is_number(created)
        else None,
        "model": response.get("model") if isinstance(response.get("model"), str) else None,
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish_reason(response, calls)}
        ],
    }
    usage = usage_to_chat(response.get("usage"))
    if usage is not None:
        chat["usage"] = usage
    return chat


def _finish_reason(response: dict[str, Any], calls: list[Any]) -> str | None:
    status = response.get("status")
    if status == "completed":
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        reason = _dict(response.get("incomplete_details")).get("reason")
        return _FINISH_OF_INCOMPLETE.get(reason) if isinstance(reason, str) else None
    return None  # in_progress (a stream cut short), failed, cancelled, queued


def _reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's text: its raw reasoning if it has it, else its summary."""
    for key in ("content", "summary"):
        parts = [_text(_dict(part).get("text")) for part in _list(item.get(key))]
        if any(parts):
            return "\n\n".join(part for part in parts if part)
    return ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
