"""Relaying an upstream's answer to the client, then recording it.

Order matters for latency: the answer is written to the client first, and only then is the
interaction completed (tokens, cost, flags) and handed to the recorder, which never blocks. A
translated answer (gateway/proxy/translated.py) is the exception: it must be read to be rewritten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.apis import messages
from gateway.apis.base import Assembler
from gateway.errors import ApiError, InternalError, UpstreamError
from gateway.providers import UpstreamResponse
from gateway.proxy.exchange import DERIVATION_FAILED, Exchange
from gateway.proxy.translated import TranslatedAnswer
from gateway.records.interaction import CLIENT_DISCONNECTED, ERROR

log = logging.getLogger(__name__)


async def relay_body(
    exchange: Exchange, upstream: UpstreamResponse, assembler: Assembler
) -> web.StreamResponse:
    it = exchange.interaction
    body = upstream.body or b""
    content_type = upstream.content_type
    translated = isinstance(assembler, TranslatedAnswer) and upstream.status < 400
    parsed: Any = None
    if isinstance(assembler, TranslatedAnswer) and upstream.status < 400:
        parsed = _parse(body)
        if not isinstance(parsed, dict):
            provider = exchange.route.provider if exchange.route else "unknown"
            return exchange.refuse(UpstreamError(provider, "answered with a body that is not JSON"))
        try:
            assembler.load(parsed)
            body, content_type = assembler.body(), "application/json"
        except Exception:  # a bug in the translation: still answered, logged and recorded
            log.exception("interaction %s: the answer could not be translated", it.id)
            return exchange.refuse(InternalError(it.id))
    elif isinstance(assembler, TranslatedAnswer) and it.endpoint == messages.ENDPOINT:
        # A chat provider's error, in the shape the Messages client reads.
        body = orjson.dumps(messages.error_from_chat(upstream.status, _parse(body)))
        content_type = "application/json"
    response = web.Response(
        body=body,
        status=upstream.status,
        headers={**upstream.headers, **exchange.headers, "Content-Type": content_type},
    )
    try:
        await response.prepare(exchange.request)
        await response.write_eof()
    except ConnectionResetError:
        it.status = CLIENT_DISCONNECTED
    it.http_status = upstream.status
    if translated:
        exchange.record(assembler, answered=True)
        return response
    if _is_binary(content_type):
        # Speech, or an error page: what came back is recorded by its size and type.
        it.response = {"content_type": content_type, "bytes": len(body)}
        if upstream.status >= 400:
            it.status, it.error_type = ERROR, "upstream_client_error"
            it.error_message = body[:500].decode(errors="replace")
        exchange.record(None, answered=upstream.status < 400)
        return response
    parsed = _parse(body)
    if upstream.status >= 400:
        # An upstream 4xx is the provider's verdict on the request: relayed as is, recorded.
        error = parsed.get("error") if isinstance(parsed, dict) else None
        error = error if isinstance(error, dict) else {}
        it.status = ERROR
        it.error_type = str(error.get("type") or "upstream_client_error")
        it.error_message = str(error.get("message") or body[:500].decode(errors="replace"))
        exchange.record(None, answered=False)
        return response
    try:
        assembler.load(parsed if isinstance(parsed, dict) else {})
    except Exception:  # the client has its answer; the record keeps the body as it came
        log.exception("interaction %s: unreadable answer", it.id)
        it.response = parsed if isinstance(parsed, dict) else None
        it.quality_flags = [*it.quality_flags, DERIVATION_FAILED]
        exchange.record(None, answered=True)
        return response
    exchange.record(assembler, answered=True)
    return response


async def relay_stream(
    exchange: Exchange, upstream: UpstreamResponse, assembler: Assembler
) -> web.StreamResponse:
    assert upstream.chunks is not None
    it = exchange.interaction
    response = web.StreamResponse(
        status=200,
        headers={
            **upstream.headers,
            **exchange.headers,
            "Content-Type": "text/event-stream"
            if isinstance(assembler, TranslatedAnswer)
            else upstream.content_type,
            "Cache-Control": "no-cache",
        },
    )
    try:
        await response.prepare(exchange.request)
        exchange.upstream_from = time.perf_counter()
        async for data in upstream.chunks:
            now = time.perf_counter()
            exchange.upstream_wait_ended(now)
            out = _feed(assembler, exchange, data, now)
            if out:
                await response.write(out)
            exchange.upstream_from = time.perf_counter()
        exchange.upstream_wait_ended()
        tail = _feed(assembler, exchange, None, time.perf_counter())
        if tail:
            await response.write(tail)
        await response.write_eof()
    except UpstreamError as error:
        # Headers are gone already: tell the client in-stream, as the providers do, then end.
        exchange.fail(error)
        it.http_status = 200
        await _write_quietly(response, _stream_error(it.endpoint, assembler, error))
    except (ConnectionResetError, asyncio.CancelledError) as exc:
        if not assembler.saw_done:  # after the last event the client had it all: its right
            it.status = CLIENT_DISCONNECTED
            it.error_message = "client disconnected mid-stream"
        exchange.record(assembler, answered=True)
        await _close(upstream)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return response
    await _close(upstream)
    exchange.record(assembler, answered=True)
    return response


def _feed(assembler: Assembler, exchange: Exchange, data: bytes | None, now: float) -> bytes:
    """The assembler's `feed` (or `flush` at the end, for None), with anything it fails on
    turned into an UpstreamError: the client then gets an error event, not a dropped stream."""
    try:
        return assembler.feed(data, now) if data is not None else assembler.flush(now)
    except UpstreamError:
        raise  # a limit the assembler enforces, with its own message
    except Exception as exc:
        log.exception("interaction %s: unreadable stream", exchange.interaction.id)
        provider = exchange.route.provider if exchange.route else "unknown"
        raise UpstreamError(provider, "sent a stream that could not be read") from exc


def _stream_error(endpoint: str, assembler: Assembler, error: ApiError) -> bytes:
    """An error event in the stream's own format."""
    if isinstance(assembler, TranslatedAnswer):
        return assembler.error_event(error.message, error.type)
    if endpoint == messages.ENDPOINT:
        return b"event: error\ndata: " + orjson.dumps(messages.error_body(error)) + b"\n\n"
    if endpoint == "responses":
        event = {
            "type": "error",
            "code": error.code or error.type,
            "message": error.message,
            "param": error.param,
            "sequence_number": 0,
        }
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
    return b"data: " + orjson.dumps(error.to_body()) + b"\n\n"


async def _write_quietly(response: web.StreamResponse, data: bytes) -> None:
    try:
        await response.write(data)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client left too; the record says what happened upstream


async def _close(upstream: UpstreamResponse) -> None:
    aclose = getattr(upstream.chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _is_binary(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith(("audio/", "image/", "video/")) or media == "application/octet-stream"


def _parse(body: bytes | None) -> Any:
    try:
        return orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        pass
    try:  # the stdlib reads what orjson refuses but is still JSON (lone surrogate escapes)
        return json.loads(body or b"")
    except (ValueError, RecursionError):
        return None
