"""Whole answers between the two shapes: a chat.completion as a Messages `message`
(`from_chat_response`, for a client of /v1/messages served by a chat provider), and a `message`
as a chat.completion (`to_chat_response`, the shape feedback, review and exports read). Neither
raises, whatever the upstream sent.
"""

from __future__ import annotations

from typing import Any

from gateway.apis.messages_common import (
    as_dict,
    as_list,
    content_text,
    dumps,
    finish_reason,
    message_id,
    parse_object,
    stop_reason,
    stop_sequences,
    text,
    thinking_enabled,
    tool_names,
    tool_use_id,
    usage_from_chat,
    usage_to_chat,
)


def from_chat_response(chat: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A whole chat.completion as a Messages `message`, for the Messages `request` it answers
    (its tool names, stop sequences and thinking setting shape the answer)."""
    chat, request = as_dict(chat), as_dict(request)
    choices = as_list(chat.get("choices"))
    choice = as_dict(choices[0]) if choices else {}
    message = as_dict(choice.get("message"))
    content: list[dict[str, Any]] = []
    if thinking_enabled(request):
        content.extend(_thinking_blocks(message))
    answer = content_text(message.get("content")) + text(message.get("refusal"))
    if answer:  # Anthropic refuses empty text blocks when the answer is sent back
        content.append({"type": "text", "text": answer})
    names = tool_names(request)
    for index, call in enumerate(as_list(message.get("tool_calls"))):
        function = as_dict(as_dict(call).get("function"))
        call_id = as_dict(call).get("id")
        name = text(function.get("name"))
        content.append(
            {
                "type": "tool_use",
                "id": call_id
                if isinstance(call_id, str) and call_id
                else tool_use_id(chat.get("id"), index),
                "name": names.get(name, name),
                "input": parse_object(function.get("arguments")),
            }
        )
    tool_use = any(block["type"] == "tool_use" for block in content)
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), stop_sequences(request), tool_use
    )
    model = chat.get("model") if isinstance(chat.get("model"), str) else request.get("model")
    return {
        "id": message_id(chat.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model if isinstance(model, str) else "",
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_from_chat(chat.get("usage")),
    }


def _thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The reasoning of a chat answer as thinking blocks: litellm's `thinking_blocks` (signed,
    from Claude on Bedrock or Vertex) as they are, else `reasoning_content` unsigned."""
    blocks = []
    for block in as_list(message.get("thinking_blocks")):
        block = as_dict(block)
        if block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
            signature = text(block.get("signature"))
            blocks.append(
                {"type": "thinking", "thinking": block["thinking"], "signature": signature}
            )
        elif block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
    if blocks:
        return blocks
    reasoning = text(message.get("reasoning_content")) or text(message.get("reasoning"))
    return [{"type": "thinking", "thinking": reasoning, "signature": ""}] if reasoning else []


def to_chat_response(message: dict[str, Any], created: int = 0) -> dict[str, Any]:
    """A Messages `message` as a chat.completion: its text, tool calls (arguments as JSON
    text) and thinking (`reasoning_content`), finish reason and usage in chat vocabulary.
    Blocks chat has no word for (server tools and their results) are left out."""
    message = as_dict(message)
    texts, reasoning, calls = [], [], []
    for block in as_list(message.get("content")):
        block = as_dict(block)
        block_type = block.get("type")
        if block_type == "text":
            texts.append(text(block.get("text")))
        elif block_type == "thinking":
            reasoning.append(text(block.get("thinking")))
        elif block_type == "tool_use":
            function = {"name": text(block.get("name")), "arguments": dumps(block.get("input", {}))}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    chat_message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if reasoning:
        chat_message["reasoning_content"] = "".join(reasoning)
    if calls:
        chat_message["tool_calls"] = calls
    model = message.get("model")
    return {
        "id": message.get("id") if isinstance(message.get("id"), str) else None,
        "object": "chat.completion",
        "created": created,
        "model": model if isinstance(model, str) else None,
        "choices": [
            {
                "index": 0,
                "message": chat_message,
                "finish_reason": finish_reason(message.get("stop_reason")),
            }
        ],
        "usage": usage_to_chat(message.get("usage")),
    }
