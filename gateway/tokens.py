"""Token counts for when a provider reports no usage (a stream without a usage chunk, a client
that left mid-stream). Counted with tiktoken using the encodings litellm ships, so no network;
the interaction is then marked `usage_estimated`.

An encoding is loaded on first use (~0.1 s, once per process) rather than at start: it weighs
~40 MB, and providers that report usage, which the gateway asks of every stream, never need it.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import orjson
import tiktoken

from gateway.litellm_data import tiktoken_cache_dir

# Chat formatting overhead per message and per reply, as in OpenAI's cookbook counting recipe.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


@functools.cache
def encoding_for(model: str | None) -> tiktoken.Encoding:
    # tiktoken would download the encoding; point it at litellm's copy unless the user chose.
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(tiktoken_cache_dir()))
    name = model.rsplit("/", 1)[-1] if model else ""
    if name.startswith(_O200K_PREFIXES):
        return tiktoken.get_encoding("o200k_base")
    return tiktoken.get_encoding("cl100k_base")


def count_text(text: str, model: str | None = None) -> int:
    return len(encoding_for(model).encode(text, disallowed_special=()))


def count_prompt(endpoint: str, body: dict[str, Any] | None, model: str | None = None) -> int:
    """Approximate prompt tokens of a request body for chat, completions or embeddings."""
    if not body:
        return 0
    if endpoint == "chat/completions":
        total = _TOKENS_PER_REPLY
        for message in body.get("messages") or []:
            total += _TOKENS_PER_MESSAGE + count_text(message_text(message), model)
        if body.get("tools"):
            total += count_text(orjson.dumps(body["tools"]).decode(), model)
        return total
    raw = body.get("prompt" if endpoint == "completions" else "input")
    items = raw if isinstance(raw, list) else [raw]
    return sum(count_text(item, model) for item in items if isinstance(item, str))


def message_text(message: Any) -> str:
    """The text of one chat message: string content, text parts, and tool-call arguments."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    parts = []
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts.append(f"{function.get('name', '')} {function.get('arguments', '')}")
    return "\n".join(p for p in parts if p)


def count_completion(response: dict[str, Any], model: str | None = None) -> int:
    """Tokens generated in an OpenAI-shaped response: text, reasoning and tool-call arguments."""
    total = 0
    for choice in response.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        if "text" in choice:
            total += count_text(str(choice.get("text") or ""), model)
            continue
        message = choice.get("message") or {}
        total += count_text(message_text(message), model)
        if message.get("reasoning_content"):
            total += count_text(str(message["reasoning_content"]), model)
    return total
