"""Token counts for when a provider reports no usage (a stream without a usage chunk, a client
that left mid-stream). Counted with tiktoken using the encodings litellm ships, so no network;
the interaction is then marked `usage_estimated`.

An encoding is loaded on first use (~0.1 s, once per process) rather than at start: it weighs
~40 MB, and providers that report usage, which the gateway asks of every stream, never need it.

The estimates run on the event loop after an answer, so they are bounded: past
`MAX_COUNTED_CHARS` the count is extrapolated. The upstream's bodies can have any shape; a part
of the wrong type counts as no text.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import orjson
import tiktoken

from gateway.litellm_data import tiktoken_cache_dir

# Chat formatting overhead per message and per reply, as in OpenAI's cookbook counting recipe.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
# tiktoken counts 2-10 MB/s, slowest on long runs of letters (20 MB of them took 19 s, stalling
# every request in the worker). This many characters cost at most ~30 ms; the rest of a longer
# text is counted at the rate measured on them, close enough for an estimate.
MAX_COUNTED_CHARS = 64 * 1024
# Shorter texts are counted each time: hashing one costs about what counting it does.
CACHED_FROM_CHARS = 256
# Distinct texts whose counts a process keeps (~150 bytes each: ~10 MB).
COUNT_CACHE_TEXTS = 65_536


@functools.cache
def encoding_for(model: str | None) -> tiktoken.Encoding:
    # tiktoken would download the encoding; point it at litellm's copy unless the user chose.
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(tiktoken_cache_dir()))
    name = model.rsplit("/", 1)[-1] if model else ""
    if name.startswith(_O200K_PREFIXES):
        return tiktoken.get_encoding("o200k_base")
    return tiktoken.get_encoding("cl100k_base")


def count_text(text: str, model: str | None = None) -> int:
    """Exact tokens in `text`, however long it is (for exports, off the request path).
    A text of `CACHED_FROM_CHARS` or more is counted once per process (`_counts`)."""
    encoding = encoding_for(model)
    if len(text) < CACHED_FROM_CHARS:
        return len(encoding.encode(text, disallowed_special=()))
    return _counts().count(encoding, text)


class _CountCache:
    """Token counts of the texts counted lately, least recently used first out. An export
    counts the same system prompt, few-shot block or conversation history in row after row;
    hashing a text costs ~1 µs per KB where counting it costs 100-500 µs. Keyed by a 128-bit
    digest, not the text: an entry is ~150 bytes however long the text was."""

    def __init__(self, size: int):
        self.size = size
        self._counts: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, encoding: tiktoken.Encoding, text: str) -> int:
        data = encoding.name.encode() + b"\x00" + text.encode("utf-8", "surrogatepass")
        key = hashlib.blake2b(data, digest_size=16).digest()
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                self._counts.move_to_end(key)
                return found
        counted = len(encoding.encode(text, disallowed_special=()))
        with self._lock:
            self._counts[key] = counted
            if len(self._counts) > self.size:
                self._counts.popitem(last=False)
        return counted


@functools.cache
def _counts() -> _CountCache:
    """The process's count cache, made on first use."""
    return _CountCache(COUNT_CACHE_TEXTS)


def estimate_texts(texts: Iterable[str], model: str | None = None) -> int:
    """Tokens in `texts`: their first MAX_COUNTED_CHARS characters counted, the rest
    extrapolated at the same tokens per character."""
    budget = MAX_COUNTED_CHARS
    tokens = skipped = 0
    for text in texts:
        counted = text[:budget]
        if counted:
            tokens += count_text(counted, model)
            budget -= len(counted)
        skipped += len(text) - len(counted)
    if skipped:
        tokens += round(skipped * tokens / (MAX_COUNTED_CHARS - budget))
    return tokens


def count_prompt(
    endpoint: str, body: dict[str, Any] | None, model: str | None = None, *, exact: bool = False
) -> int:
    """Prompt tokens of a request body for chat, completions or embeddings: bounded and
    extrapolated past MAX_COUNTED_CHARS on the request path, `exact` for exports, whose
    `max_tokens` cut must not move with an estimate."""
    count = _count_exactly if exact else estimate_texts
    if not body:
        return 0
    if endpoint == "chat/completions":
        messages = _list(body.get("messages"))
        texts = [message_text(message) for message in messages]
        if body.get("tools"):
            texts.append(orjson.dumps(body["tools"]).decode())
        overhead = _TOKENS_PER_REPLY + _TOKENS_PER_MESSAGE * len(messages)
        return overhead + count(texts, model)
    raw = body.get("prompt" if endpoint == "completions" else "input")
    items = raw if isinstance(raw, list) else [raw]
    return count([item for item in items if isinstance(item, str)], model)


def _count_exactly(texts: Iterable[str], model: str | None = None) -> int:
    return sum(count_text(text, model) for text in texts)


def message_text(message: Any) -> str:
    """The text of one chat message: string content, text parts, and tool-call arguments."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    parts = []
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts.extend(_text(p.get("text")) for p in content if isinstance(p, dict))
    for call in _list(message.get("tool_calls")):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(f"{_text(function.get('name'))} {_text(function.get('arguments'))}")
    return "\n".join(p for p in parts if p)


def count_completion(response: dict[str, Any], model: str | None = None) -> int:
    """Tokens generated in an OpenAI-shaped response: text, reasoning and tool-call arguments."""
    texts = []
    for choice in _list(response.get("choices")):
        if not isinstance(choice, dict):
            continue
        if "text" in choice:
            texts.append(_text(choice["text"]))
            continue
        message = choice.get("message")
        texts.append(message_text(message))
        if isinstance(message, dict):
            texts.append(_text(message.get("reasoning_content")))
    return estimate_texts(texts, model)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
