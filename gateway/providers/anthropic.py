"""Raw passthrough to Anthropic's Messages API (api.anthropic.com, or a compatible server).

`/v1/messages` and `/v1/messages/count_tokens` go upstream as bytes, like the OpenAI-compatible
passthrough, authenticated with `x-api-key` and versioned with `anthropic-version`. The client's
own `anthropic-version` and `anthropic-beta` headers are passed on: they choose the wire format
and the beta features (Claude Code sends several), and the answer follows them. Chat
completions to such a provider are translated to Messages (gateway/apis/messages.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from gateway.apis import messages
from gateway.config import ProviderConfig
from gateway.errors import InvalidRequest
from gateway.providers.base import UpstreamResponse
from gateway.providers.openai_compat import OpenAICompatProvider

MESSAGES = "messages"
COUNT_TOKENS = "messages/count_tokens"
DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
DEFAULT_VERSION = "2023-06-01"
# Client headers that are part of Anthropic's API rather than of the client's connection.
_CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")


class AnthropicProvider(OpenAICompatProvider):
    def __init__(self, config: ProviderConfig, session: aiohttp.ClientSession):
        headers = {"anthropic-version": DEFAULT_VERSION, **config.headers}
        if config.api_key and config.api_key_header.lower() == "authorization":
            # Anthropic's key header; `api_key_header` still names another (a proxy's) if set.
            headers["x-api-key"] = config.api_key
            config = dataclasses.replace(config, api_key=None)
        config = dataclasses.replace(
            config, base_url=config.base_url or DEFAULT_BASE_URL, headers=headers
        )
        super().__init__(config, session)
        # Chat completions too: `send` turns them into Messages and the answer back into chat.
        self.native = frozenset({MESSAGES, COUNT_TOKENS, "chat/completions"})
        self._urls = {endpoint: self._url(endpoint) for endpoint in (MESSAGES, COUNT_TOKENS)}

    async def send(
        self,
        endpoint: str,
        body: dict[str, Any],
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        if endpoint not in self._urls:
            return await self._send_as_messages(endpoint, body, stream)
        sent = dict(self._headers)
        for name in _CLIENT_HEADERS:
            if headers and headers.get(name):
                sent[name] = headers[name]
        return await self._request("POST", self._urls[endpoint], orjson.dumps(body), sent, stream)

    async def forward(
        self, method: str, endpoint: str, data: bytes | None, content_type: str | None
    ) -> UpstreamResponse:
        raise InvalidRequest(
            f"Provider '{self.name}' speaks Anthropic's Messages API, which has no /v1/{endpoint}.",
            param="model",
        )

    async def _send_as_messages(
        self, endpoint: str, body: dict[str, Any], stream: bool
    ) -> UpstreamResponse:
        """Chat completions, as a Messages request; the answer is turned back into chat."""
        if endpoint != "chat/completions":
            raise InvalidRequest(
                f"Provider '{self.name}' speaks Anthropic's Messages API, which has no "
                f"/v1/{endpoint}.",
                param="model",
            )
        upstream = await self.send(MESSAGES, messages.from_chat_request(body), stream)
        if upstream.chunks is not None:
            chunks = _chat_events(upstream.chunks, body)
            return UpstreamResponse(
                200, "text/event-stream", chunks=chunks, headers=upstream.headers
            )
        try:
            answer = orjson.loads(upstream.body or b"")
        except orjson.JSONDecodeError:
            return upstream  # not JSON: relayed (and recorded) as it came
        if upstream.status >= 400:
            translated = messages.error_to_chat(upstream.status, answer)
        else:
            translated = messages.to_chat_response(answer)
        return dataclasses.replace(
            upstream, body=orjson.dumps(translated), content_type="application/json"
        )


async def _chat_events(
    chunks: AsyncIterator[bytes], request: dict[str, Any]
) -> AsyncIterator[bytes]:
    """Anthropic's SSE as chat-completion chunks, event by event."""
    events = messages.Assembler()  # splits the bytes into whole events (and keeps the message)
    to_chat = messages.MessagesToChatStream(request)
    try:
        async for data in chunks:
            out = to_chat.feed(events.feed(data, 0.0))
            if out:
                yield out
        tail = to_chat.feed(events.flush(0.0)) + to_chat.finish()
        if tail:
            yield tail
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
