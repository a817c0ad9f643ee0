"""An offline model that answers deterministically, so the gateway works with no API key.

It speaks OpenAI's wire format like any upstream (streams, usage chunk, embeddings), which makes
it useful for the quick start, for demos of the dashboards, and for smoke tests. Its "tokens"
are whitespace-separated words: it is its own tokenizer.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.config import ProviderConfig
from gateway.errors import InvalidRequest
from gateway.providers.base import CHAT_FAMILY, UpstreamResponse

EMBEDDING_DIMENSIONS = 16


def demo_reply(prompt: str) -> str:
    prompt = " ".join(prompt.split()) or "nothing"
    return f"This is Flywheel's offline demo model. You said: {prompt}"


def last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                texts = (part.get("text") for part in content if isinstance(part, dict))
                return " ".join(text for text in texts if isinstance(text, str))
            return str(content or "")
    return ""


def _words(text: str) -> int:
    return max(1, len(text.split()))


class DemoProvider:
    native = CHAT_FAMILY

    def __init__(self, config: ProviderConfig):
        self.name = config.name

    async def send(
        self,
        endpoint: str,
        body: dict[str, Any],
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        model = str(body.get("model", "demo"))
        if endpoint == "embeddings":
            return _json(self._embeddings(model, body))
        if endpoint == "chat/completions":
            prompt, kind = last_user_text(body.get("messages")), "chat.completion"
        else:
            raw = body.get("prompt", "")
            prompt, kind = (
                (" ".join(map(str, raw)) if isinstance(raw, list) else str(raw)),
                ("text_completion"),
            )
        reply = demo_reply(prompt)
        usage = {
            "prompt_tokens": _words(prompt),
            "completion_tokens": _words(reply),
            "total_tokens": _words(prompt) + _words(reply),
        }
        ident = "chatcmpl-demo-" if kind == "chat.completion" else "cmpl-demo-"
        ident += hashlib.sha256(prompt.encode()).hexdigest()[:24]
        head = {"id": ident, "created": int(time.time()), "model": model}
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return UpstreamResponse(
                200, "text/event-stream", chunks=_stream(head, kind, reply, usage, include_usage)
            )
        if kind == "chat.completion":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
        else:
            choice = {"index": 0, "text": reply, "finish_reason": "stop"}
        return _json({**head, "object": kind, "choices": [choice], "usage": usage})

    def _embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise InvalidRequest("'input' must be a string or a non-empty list", param="input")
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            digest = hashlib.sha256(str(text).encode()).digest()
            vector = [(b - 127.5) / 127.5 for b in digest[:EMBEDDING_DIMENSIONS]]
            # The openai SDK asks for base64 (little-endian float32) by default.
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(_words(str(text)) for text in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": model, "usage": usage}

    async def close(self) -> None:
        pass


def _json(payload: dict[str, Any]) -> UpstreamResponse:
    return UpstreamResponse(200, "application/json", body=orjson.dumps(payload))


async def _stream(
    head: dict[str, Any], kind: str, reply: str, usage: dict[str, Any], include_usage: bool
) -> AsyncIterator[bytes]:
    chat = kind == "chat.completion"
    obj = "chat.completion.chunk" if chat else "text_completion"
    extra = {"usage": None} if include_usage else {}

    def event(choice: dict[str, Any]) -> bytes:
        return (
            b"data: "
            + orjson.dumps({**head, "object": obj, "choices": [choice], **extra})
            + b"\n\n"
        )

    if chat:
        yield event(
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        )
    words = reply.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        if chat:
            yield event({"index": 0, "delta": {"content": piece}, "finish_reason": None})
        else:
            yield event({"index": 0, "text": piece, "finish_reason": None})
    yield event(
        {"index": 0, "delta": {}, "finish_reason": "stop"}
        if chat
        else {"index": 0, "text": "", "finish_reason": "stop"}
    )
    if include_usage:
        yield (
            b"data: "
            + orjson.dumps({**head, "object": obj, "choices": [], "usage": usage})
            + b"\n\n"
        )
    yield b"data: [DONE]\n\n"
