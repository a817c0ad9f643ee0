"""Providers that do not speak OpenAI's API (Anthropic, Bedrock, Vertex...), through litellm.

litellm costs ~4 s and ~150 MB to import, so it is imported when the first such provider is
built, never by a gateway that only talks to OpenAI-compatible upstreams. Its answers are turned
back into OpenAI's wire format so the proxy relays and records them like any other.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx  # a dependency of litellm (and openai); this module is only loaded with litellm
import orjson

from gateway.config import ProviderConfig
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.providers.base import CHAT_FAMILY, UpstreamResponse
from gateway.providers.limits import Limits

log = logging.getLogger(__name__)

_CALLS = {
    "chat/completions": "acompletion",
    "completions": "atext_completion",
    "embeddings": "aembedding",
}

# Body fields that litellm reads as its own settings rather than as the request: where to
# connect (`api_base`), with which key, extra headers, a canned answer (`mock_response`),
# callbacks... A client must not set them; they are dropped before the call (the stored request
# keeps them). litellm's own list (`all_litellm_params`) is added at import.
_CLIENT_SETTINGS = frozenset(
    {
        "api_base",
        "api_key",
        "api_version",
        "base_url",
        "organization",
        "deployment_id",
        "default_headers",
        "extra_headers",
        "extra_body",
        "headers",
        "timeout",
        "request_timeout",
        "stream_timeout",
        "num_retries",
        "max_retries",
        "custom_llm_provider",
        "callbacks",
        "success_callback",
        "failure_callback",
        "logger_fn",
        "drop_params",
        "additional_drop_params",
        "allowed_openai_params",
        "client",
        "shared_session",
        "ssl_verify",
        "model_list",
        "fallbacks",
        "context_window_fallback_dict",
        "azure_ad_token",
        "azure_ad_token_provider",
    }
)
_CLIENT_SETTING_PREFIXES = ("litellm", "mock_", "aws_", "vertex_", "azure_", "_")

# litellm's loggers: at WARNING unless `LITELLM_LOG` says otherwise, since it logs every call.
_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


def _import_litellm() -> Any:
    # There is no network: litellm must use the copies it ships of its price map (fetched at
    # import otherwise) and of its Anthropic beta-header table (fetched with a blocking 5 s
    # GET, on the event loop, by the first request carrying an `anthropic-beta` header).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    if not os.environ.get("LITELLM_LOG"):
        # Before the import, which already logs (at DEBUG) what it cannot find.
        for name in _LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    litellm: Any = importlib.import_module("litellm")
    # Otherwise every failed call prints "Give Feedback / Get Help" banners to stdout; the
    # gateway reports the error itself.
    litellm.suppress_debug_info = True
    _quiet_logging(importlib.import_module("litellm._logging"))
    return litellm


def _quiet_logging(litellm_logging: Any) -> None:
    """Send litellm's log records through the gateway's logging, warnings and up.

    litellm hangs its own stderr handler on its loggers, so with the gateway's root handler
    every record is printed twice, and it logs each call at INFO. Its redaction filters move
    from that handler onto the loggers, where they apply before records propagate.
    """
    own = getattr(litellm_logging, "handler", None)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if own is not None and own in logger.handlers:
            for log_filter in own.filters:
                if log_filter not in logger.filters:
                    logger.addFilter(log_filter)
            logger.removeHandler(own)


class LiteLLMProvider:
    native = CHAT_FAMILY  # litellm answers in OpenAI's chat shapes, whatever it calls

    def __init__(self, config: ProviderConfig):
        self.name = config.name
        self._prefix = config.litellm_provider
        self._limits = Limits.of(config)
        self._litellm = _import_litellm()
        self._blocked = _CLIENT_SETTINGS | frozenset(
            getattr(importlib.import_module("litellm.types.utils"), "all_litellm_params", ())
        )
        # Every exception litellm maps is one of openai's (a litellm dependency); anything else
        # is a bug in the translation, worth a traceback in the log.
        self._litellm_errors = importlib.import_module("openai").OpenAIError
        self._options: dict[str, Any] = {
            # Read timeout as for openai_compat: seconds without a byte, not for the whole answer.
            "timeout": httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            # Retries are the client's decision, as they would be against the provider itself.
            "num_retries": 0,
        }
        if config.api_key:
            self._options["api_key"] = config.api_key
        if config.base_url:
            self._options["api_base"] = config.base_url
        if config.headers:
            self._options["extra_headers"] = dict(config.headers)

    async def send(
        self,
        endpoint: str,
        body: dict[str, Any],
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        call = getattr(self._litellm, _CALLS[endpoint])
        request = {k: v for k, v in body.items() if not self._is_setting(k)}
        params = {**request, **self._options, "model": f"{self._prefix}/{body['model']}"}
        deadline = self._limits.deadline()
        async with self._limits.until(deadline):
            try:
                result = await call(**params)
            except Exception as exc:  # litellm raises its own tree; map it by status below
                return self._failure(exc)
        if stream:
            chunks = self._limits.stream(self._sse(result), deadline)
            return UpstreamResponse(200, "text/event-stream", chunks=chunks)
        # litellm has read the whole body already; what is relayed and stored is still bounded.
        payload = orjson.dumps(_whole(result))
        self._limits.check_body_size(len(payload))
        return UpstreamResponse(200, "application/json", body=payload)

    def _is_setting(self, key: str) -> bool:
        return key in self._blocked or key.startswith(_CLIENT_SETTING_PREFIXES)

    async def _sse(self, chunks: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield b"data: " + orjson.dumps(_chunk(chunk)) + b"\n\n"
        except Exception as exc:  # translated errors mid-stream end the stream as cut off
            if isinstance(exc, self._litellm.Timeout):
                raise UpstreamTimeout(self.name, "stream stalled past the read timeout") from exc
            raise UpstreamError(self.name, f"stream failed: {_detail(exc)[0]}") from exc
        finally:
            # Also when our client left half-way: release the upstream connection now.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # closing a broken stream may fail again; nothing to do
                    log.debug("closing the litellm stream failed", exc_info=True)
        yield b"data: [DONE]\n\n"

    def _failure(self, exc: Exception) -> UpstreamResponse:
        if isinstance(exc, self._litellm.Timeout):
            raise UpstreamTimeout(self.name, "no answer before the timeout") from exc
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else None
        message, kind = _detail(exc)
        if status is not None and 400 <= status < 500:
            # The provider's (or litellm's) verdict on the request, relayed in OpenAI's shape.
            body = {
                "error": {
                    "message": message,
                    "type": kind or "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
            return UpstreamResponse(status, "application/json", body=orjson.dumps(body))
        if not isinstance(exc, self._litellm_errors):
            log.warning("provider %s: unexpected error from litellm", self.name, exc_info=exc)
        detail = f"HTTP {status}: {message}" if status else message
        raise UpstreamError(self.name, detail, upstream_status=status) from exc

    async def close(self) -> None:
        """Close the HTTP clients litellm cached for this event loop (it never does itself)."""
        try:
            await _close_loop_clients(self._litellm)
        except Exception:  # litellm internals changed: fall back to its own global cleanup
            log.debug("closing litellm's cached clients failed", exc_info=True)
            await self._litellm.close_litellm_async_clients()


def _whole(result: Any) -> dict[str, Any]:
    """A litellm response (ModelResponse, TextCompletionResponse...) as OpenAI's JSON body."""
    body: dict[str, Any] = result.model_dump(mode="json")
    for choice in body.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            # litellm's extras (citations, thinking_blocks) are kept only when they say something.
            extras = message.get("provider_specific_fields")
            if isinstance(extras, dict) and not any(v is not None for v in extras.values()):
                del message["provider_specific_fields"]
    return body


def _chunk(chunk: Any) -> dict[str, Any]:
    """One streamed litellm chunk as OpenAI's `chat.completion.chunk` JSON."""
    data: dict[str, Any] = chunk.model_dump(mode="json", exclude_none=True)
    choices = data.get("choices") or []
    if data.get("usage") and all(_empty_choice(c) for c in choices):
        # litellm sends the usage asked for by `include_usage` with an empty delta; OpenAI
        # sends it with `"choices": []`, which is how the proxy recognises it.
        data["choices"] = []
    return data


def _empty_choice(choice: Any) -> bool:
    if not isinstance(choice, dict) or choice.get("finish_reason"):
        return False
    return not choice.get("delta") and not choice.get("text")


def _detail(exc: Exception) -> tuple[str, str | None]:
    """The provider's own error message and type, dug out of litellm's exception text.

    litellm words it `litellm.BadRequestError: AnthropicException - {"type": "error", "error":
    {"type": ..., "message": ...}}` and keeps the provider's body nowhere else.
    """
    text = str(getattr(exc, "message", None) or exc)
    start = text.find("{")
    if start >= 0:
        try:
            payload, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict) and error.get("message"):
            kind = error.get("type")
            return str(error["message"]), kind if isinstance(kind, str) else None
        if isinstance(error, str):
            return error, None
    # No body: keep the text, without litellm's class-name prefix and advice suffix.
    head, sep, rest = text.partition(": ")
    if sep and head.startswith("litellm."):
        text = rest
    return text.split(". Handle with `litellm.")[0], None


async def _close_loop_clients(litellm: Any) -> None:
    """Close the HTTP clients litellm made on the running loop, so no session outlives it.

    Its client cache keys end in the loop's id; those entries are dropped, and the next call
    (another loop, another app) builds fresh ones. `module_level_aclient`, which Anthropic
    streams use, is one global made on first use: closed too, it reopens itself when next used.
    """
    cache = litellm.in_memory_llm_clients_cache
    suffix = f"-{id(asyncio.get_running_loop())}"
    clients = []
    for key in [k for k in cache.cache_dict if k.endswith(suffix)]:
        clients.append(cache.cache_dict.pop(key, None))
        cache.ttl_dict.pop(key, None)
    clients.append(vars(litellm).get("module_level_aclient"))  # vars(): reading it creates it
    closed: set[int] = set()
    for client in clients:
        close = getattr(client, "close", None) or getattr(client, "aclose", None)
        if close is None or id(client) in closed:
            continue
        closed.add(id(client))
        result = close()
        if asyncio.iscoroutine(result):
            await result
