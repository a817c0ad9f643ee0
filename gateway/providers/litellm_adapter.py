"""Providers that do not speak OpenAI's API (Anthropic, Bedrock, Vertex...), through litellm.

litellm costs ~4 s and ~150 MB to import, so it is imported when the first such provider is
built, never by a gateway that only talks to OpenAI-compatible upstreams. Its answers are turned
back into OpenAI's wire format so the proxy relays and records them like any other.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.config import ProviderConfig
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.providers.base import UpstreamResponse

log = logging.getLogger(__name__)

_CALLS = {
    "chat/completions": "acompletion",
    "completions": "atext_completion",
    "embeddings": "aembedding",
}


def _import_litellm() -> Any:
    # There is no network: never let litellm fetch its price map at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return importlib.import_module("litellm")


class LiteLLMProvider:
    def __init__(self, config: ProviderConfig):
        self.name = config.name
        self._prefix = config.litellm_provider
        self._litellm = _import_litellm()
        self._options: dict[str, Any] = {
            "timeout": config.read_timeout,
            # Retries are the client's decision, as they would be against the provider itself.
            "num_retries": 0,
        }
        if config.api_key:
            self._options["api_key"] = config.api_key
        if config.base_url:
            self._options["api_base"] = config.base_url
        if config.headers:
            self._options["extra_headers"] = dict(config.headers)

    async def send(self, endpoint: str, body: dict[str, Any], stream: bool) -> UpstreamResponse:
        call = getattr(self._litellm, _CALLS[endpoint])
        params = {**body, **self._options, "model": f"{self._prefix}/{body['model']}"}
        try:
            result = await call(**params)
        except Exception as exc:  # litellm raises its own tree; map it by status below
            return self._failure(exc)
        if stream:
            return UpstreamResponse(200, "text/event-stream", chunks=self._sse(result))
        return UpstreamResponse(200, "application/json", body=orjson.dumps(result.model_dump()))

    async def _sse(self, chunks: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield b"data: " + orjson.dumps(chunk.model_dump(exclude_none=True)) + b"\n\n"
        except Exception as exc:  # translated errors mid-stream end the stream as cut off
            raise UpstreamError(self.name, f"stream failed: {exc}") from exc
        yield b"data: [DONE]\n\n"

    def _failure(self, exc: Exception) -> UpstreamResponse:
        litellm = self._litellm
        if isinstance(exc, litellm.Timeout):
            raise UpstreamTimeout(self.name, str(exc)) from exc
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            body = {
                "error": {
                    "message": str(getattr(exc, "message", exc)),
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
            return UpstreamResponse(status, "application/json", body=orjson.dumps(body))
        raise UpstreamError(self.name, str(exc), upstream_status=status) from exc

    async def close(self) -> None:
        pass
