"""What every provider adapter offers the proxy: send one request, get bytes back.

An adapter serves each endpoint in `native` in that endpoint's own wire format (JSON, or SSE for
streams). Every adapter serves chat completions (Anthropic's by translating them itself), so an
API it does not speak natively (the Responses API, Anthropic's Messages API) is translated to
chat on the way there and back (gateway/apis/). Adapters that reach an HTTP upstream also
`forward` requests whose bodies are not JSON (audio and image uploads) or that name a stored
object (`GET /v1/responses/{id}`). An adapter raises `UpstreamError` for a 5xx, a refused or
broken connection, and `UpstreamTimeout` when the provider is too slow; an upstream 4xx is
returned as a normal response, to be relayed to the client unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# The endpoints whose requests and answers are OpenAI's chat family, which every adapter serves.
CHAT_FAMILY = frozenset({"chat/completions", "completions", "embeddings"})
# Upstream response headers that clients act on, relayed as they came: the SDKs' retries follow
# `retry-after`/`retry-after-ms`/`x-should-retry`, and `x-request-id` is what a provider's support
# asks for. Hop-by-hop and framing headers are the gateway's own.
_RELAYED_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry", "x-request-id")
_RELAYED_PREFIXES = ("x-ratelimit-", "openai-", "anthropic-")


def client_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream headers to pass on to the client."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower() in _RELAYED_HEADERS or name.lower().startswith(_RELAYED_PREFIXES)
    }


@dataclass
class UpstreamResponse:
    status: int
    content_type: str
    # Exactly one of these is set: the whole body, or the body's bytes as they arrive.
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)  # for the client: `client_headers`

    @property
    def is_stream(self) -> bool:
        return self.chunks is not None


class Provider(Protocol):
    name: str
    # Endpoints `send` takes in their own wire format; chat/completions always. Another API is
    # translated to chat on the way (gateway/apis/).
    native: frozenset[str]

    async def send(
        self,
        endpoint: str,
        body: dict[str, Any],
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send `body` (already carrying the upstream model name) to `endpoint`, with the
        client's `headers` that the upstream's API defines (anthropic-beta...)."""
        ...

    async def close(self) -> None: ...


class Forwarder(Protocol):
    """A provider with an HTTP upstream, which also relays requests it does not read."""

    async def forward(
        self, method: str, endpoint: str, data: bytes | None, content_type: str | None
    ) -> UpstreamResponse:
        """Relay `data` as it came (a multipart upload; None for GET/DELETE), answer read whole."""
        ...
