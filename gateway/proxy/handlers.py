"""The OpenAI-compatible endpoints: parse once, route, forward, relay, then record.

Order matters for latency: the answer is written to the client first, and only then is the
interaction completed (tokens, cost, flags) and handed to the recorder, which never blocks.
Every response, errors included, carries `Flywheel-Interaction-Id` and the
`Flywheel-Feedback-Token` a browser can post feedback with (gateway/feedback/).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import (
    CONFIG,
    FEEDBACK_TOKENS,
    METRICS,
    PRICES,
    PROVIDERS,
    RECENT_INTERACTIONS,
    RECORDER,
    ROUTER,
)
from gateway.auth import KEY_NAME
from gateway.bodies import read_json
from gateway.errors import ApiError, InvalidRequest, UpstreamError
from gateway.http_errors import error_response, json_response
from gateway.ids import uuid7
from gateway.providers import UpstreamResponse
from gateway.proxy.assembler import ResponseAssembler
from gateway.proxy.body_secrets import strip_secrets
from gateway.proxy.capture import fill_answer, fill_usage
from gateway.proxy.metadata import read_metadata
from gateway.records.headers import FEEDBACK_TOKEN_HEADER, INTERACTION_HEADER, VARIANT_HEADER
from gateway.records.interaction import CLIENT_DISCONNECTED, ERROR, Interaction
from gateway.records.tags import MAX_ID_LENGTH
from gateway.routing import Route

log = logging.getLogger(__name__)

# Flagged when tokens, cost or the normalized answer could not be derived from what came back.
DERIVATION_FAILED = "derivation_failed"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "completions")


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "embeddings")


async def list_models(request: web.Request) -> web.Response:
    return json_response(
        {"object": "list", "data": [_model_card(n) for n in request.app[ROUTER].model_names]}
    )


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    request.app[ROUTER].route(name)  # raises ModelNotFound
    return json_response(_model_card(name))


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "flywheel"}


class _Exchange:
    """One request in flight: its interaction, its timing, and the headers every answer carries."""

    def __init__(self, request: web.Request, endpoint: str):
        self.request = request
        self.started = time.perf_counter()
        self.interaction = Interaction(
            id=str(uuid7()),
            created_at=datetime.now(UTC),
            endpoint=endpoint,
            api_key_name=request.get(KEY_NAME),
        )
        self.headers = {
            INTERACTION_HEADER: self.interaction.id,
            FEEDBACK_TOKEN_HEADER: request.app[FEEDBACK_TOKENS].issue(self.interaction.id),
        }
        # Feedback may come before the recorder writes the row: this id is known to be coming.
        request.app[RECENT_INTERACTIONS].add(self.interaction.id, self.interaction.api_key_name)
        self.route: Route | None = None
        self.error: ApiError | None = None
        # Time spent waiting on the provider (None: never called), for the overhead metric.
        self.upstream_seconds: float | None = None
        self.upstream_from: float | None = None  # set while a wait on the provider is running

    def elapsed_ms(self, at: float | None = None) -> float:
        return ((at if at is not None else time.perf_counter()) - self.started) * 1000

    def upstream_wait_ended(self, at: float | None = None) -> None:
        if self.upstream_from is not None:
            waited = (at if at is not None else time.perf_counter()) - self.upstream_from
            self.upstream_seconds = (self.upstream_seconds or 0.0) + waited
            self.upstream_from = None

    def fail(self, error: ApiError) -> None:
        self.error = error
        it = self.interaction
        it.status, it.http_status = ERROR, error.status
        it.error_type, it.error_message = error.type, error.message

    def record(self, assembler: ResponseAssembler | None, answered: bool) -> None:
        """Complete the interaction and hand it to the recorder. The row is recorded whatever
        the derivations (answer, tokens, cost, flags, metrics) make of an odd message shape:
        one that fails leaves the raw answer, a flag and a log line, never a lost row."""
        self.upstream_wait_ended()
        it = self.interaction
        it.latency_ms = self.elapsed_ms()
        app = self.request.app
        capture = app[CONFIG].capture.enabled
        try:
            self._derive(assembler, answered, capture)
        except Exception:
            log.exception("interaction %s: deriving its fields failed; recording it raw", it.id)
            it.quality_flags = [*it.quality_flags, DERIVATION_FAILED]
            if capture and answered and assembler is not None and it.response is None:
                it.response = assembler.whole  # a whole body as it came; a stream has none
        try:
            app[METRICS].observe_request(it, self.upstream_seconds, self.error)
        except Exception:
            log.exception("interaction %s: metrics failed", it.id)
        app[RECENT_INTERACTIONS].completed(it)  # feedback may now name its response id
        if capture:
            app[RECORDER].record(it)

    def _derive(self, assembler: ResponseAssembler | None, answered: bool, capture: bool) -> None:
        if assembler is None:
            return
        it, app = self.interaction, self.request.app
        if capture:
            fill_answer(it, assembler, answered)
        if assembler.first_token_at is not None and it.stream:
            it.ttft_ms = self.elapsed_ms(assembler.first_token_at)
        if self.route is not None:  # tokens and cost feed the metrics even without capture
            fill_usage(it, assembler, app[PRICES], self.route)


async def _proxy(request: web.Request, endpoint: str) -> web.StreamResponse:
    exchange = _Exchange(request, endpoint)
    try:
        body, stream, hide_usage = await _prepare(exchange, endpoint)
        exchange.upstream_from = time.perf_counter()
        upstream = await _send(exchange, endpoint, body, stream)
    except ApiError as error:
        exchange.fail(error)
        exchange.record(None, answered=False)
        return error_response(error, headers=exchange.headers)
    exchange.upstream_wait_ended()  # a body has been read whole; a stream's chunks are timed
    if upstream.chunks is not None:
        return await _relay_stream(exchange, upstream, hide_usage)
    return await _relay_body(exchange, upstream)


async def _prepare(exchange: _Exchange, endpoint: str) -> tuple[dict[str, Any], bool, bool]:
    """Validate and rewrite the body for upstream; fills the interaction as it learns."""
    request, it = exchange.request, exchange.interaction
    body = await _read_json(request)
    if stripped := strip_secrets(body):
        log.info("interaction %s: dropped credential fields %s from the body", it.id, stripped)
    meta = read_metadata(request.headers, body)
    it.user, it.session, it.tags = meta.user, meta.session, meta.tags
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model")
    it.requested_model = model[:MAX_ID_LENGTH]  # indexed: a 10 MB "model" must not reach it
    exchange.route = request.app[ROUTER].route(model, meta.user, meta.session)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    it.stream = stream = stream and endpoint != "embeddings"
    hide_usage = False
    if stream:
        options = body.get("stream_options") or {}
        if not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
        if not options.get("include_usage"):
            # Ask for usage so the record has real token counts; the extra chunk is
            # dropped on the way back so this client sees the stream it asked for.
            body["stream_options"] = {**options, "include_usage": True}
            hide_usage = True
    return body, stream, hide_usage


async def _send(
    exchange: _Exchange, endpoint: str, client_body: dict[str, Any], stream: bool
) -> UpstreamResponse:
    """Send on the chosen route; if its upstream fails before answering, once more on the
    model's fallback arm, recorded as such."""
    it, route = exchange.interaction, exchange.route
    assert route is not None
    while True:
        body = dict(client_body)  # each arm rewrites its own copy
        route.apply(body)
        it.provider, it.upstream_model = route.provider, route.upstream_model
        it.variant, it.request = route.variant, body
        if route.variant:
            exchange.headers[VARIANT_HEADER] = route.variant
        try:
            return await exchange.request.app[PROVIDERS][route.provider].send(
                endpoint, body, stream
            )
        except UpstreamError as error:
            if route.fallback is None:
                raise
            log.warning(
                "variant %s failed (%s); falling back to %s",
                route.variant,
                error,
                route.fallback.variant,
            )
            exchange.request.app[METRICS].observe_fallback(route.provider, error)
            it.fallback_from = route.variant
            route = exchange.route = route.fallback


async def _read_json(request: web.Request) -> dict[str, Any]:
    server = request.app[CONFIG].server
    body = await read_json(request, server.max_body_bytes, server.body_read_timeout)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


async def _relay_body(exchange: _Exchange, upstream: UpstreamResponse) -> web.StreamResponse:
    response = web.Response(
        body=upstream.body,
        status=upstream.status,
        headers={**upstream.headers, **exchange.headers, "Content-Type": upstream.content_type},
    )
    assembler = ResponseAssembler(exchange.interaction.endpoint)
    try:
        await response.prepare(exchange.request)
        await response.write_eof()
    except ConnectionResetError:
        exchange.interaction.status = CLIENT_DISCONNECTED
    it = exchange.interaction
    it.http_status = upstream.status
    parsed = _parse(upstream.body)
    if upstream.status >= 400:
        # An upstream 4xx is the provider's verdict on the request: relayed as is, recorded.
        error = parsed.get("error") if isinstance(parsed, dict) else None
        error = error if isinstance(error, dict) else {}
        it.status = ERROR
        it.error_type = str(error.get("type") or "upstream_client_error")
        it.error_message = str(
            error.get("message") or (upstream.body or b"")[:500].decode(errors="replace")
        )
        exchange.record(None, answered=False)
    else:
        try:
            assembler.load(parsed if isinstance(parsed, dict) else {})
        except Exception:  # the client has its answer; `record` keeps the body as it came
            log.exception("interaction %s: unreadable answer", it.id)
            assembler.whole = parsed if isinstance(parsed, dict) else None
        exchange.record(assembler, answered=True)
    return response


async def _relay_stream(
    exchange: _Exchange, upstream: UpstreamResponse, hide_usage: bool
) -> web.StreamResponse:
    assert upstream.chunks is not None
    it = exchange.interaction
    assembler = ResponseAssembler(it.endpoint, hide_usage_chunk=hide_usage)
    response = web.StreamResponse(
        status=200,
        headers={
            **upstream.headers,
            **exchange.headers,
            "Content-Type": upstream.content_type,
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
        # Headers are gone already: tell the client in-stream, as OpenAI does, then end.
        exchange.fail(error)
        it.http_status = 200
        await _write_quietly(response, b"data: " + orjson.dumps(error.to_body()) + b"\n\n")
    except (ConnectionResetError, asyncio.CancelledError) as exc:
        if not assembler.saw_done:  # after [DONE] the client had it all: closing is its right
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


def _feed(
    assembler: ResponseAssembler, exchange: _Exchange, data: bytes | None, now: float
) -> bytes:
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


def _parse(body: bytes | None) -> Any:
    try:
        return orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        pass
    try:  # the stdlib reads what orjson refuses but is still JSON (lone surrogate escapes)
        return json.loads(body or b"")
    except (ValueError, RecursionError):
        return None
