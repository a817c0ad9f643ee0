"""What every provider adapter offers the proxy: send one OpenAI-shaped request, get bytes back.

All adapters answer in OpenAI's wire format (JSON, or SSE for streams), so the proxy has one
relay-and-capture path whatever sits upstream. An adapter raises `UpstreamError` for a 5xx,
a refused or broken connection, and `UpstreamTimeout` when the provider is too slow; an upstream
4xx is returned as a normal response, to be relayed to the client unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

ENDPOINTS = ("chat/completions", "completions", "embeddings")
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

    async def send(self, endpoint: str, body: dict[str, Any], stream: bool) -> UpstreamResponse:
        """Send `body` (already carrying the upstream model name) to `endpoint`."""
        ...

    async def close(self) -> None: ...
