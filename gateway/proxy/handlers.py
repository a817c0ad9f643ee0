"""The `/v1` endpoints: parse once, route, forward, relay, then record.

Every API goes through one path: route the model to an arm, send to that arm's provider in the
request's own wire format when the provider speaks it, else translated to chat completions
(gateway/apis/), relay the answer as it comes, record the interaction. Every response, errors
included, carries `Flywheel-Interaction-Id` and the `Flywheel-Feedback-Token` a browser can post
feedback with (gateway/feedback/).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from aiohttp import web

from gateway.apis import messages, responses
from gateway.apis.base import Assembler
from gateway.appkeys import CONFIG, METRICS, PROVIDERS, ROUTER
from gateway.bodies import read_json
from gateway.errors import ApiError, InternalError, InvalidRequest, NotFound, UpstreamError
from gateway.http_errors import json_response
from gateway.providers import UpstreamResponse
from gateway.proxy.assembler import ResponseAssembler
from gateway.proxy.body_secrets import strip_secrets
from gateway.proxy.exchange import Exchange
from gateway.proxy.metadata import read_metadata
from gateway.proxy.relay import relay_body, relay_stream
from gateway.proxy.translated import TranslatedAnswer
from gateway.records.headers import VARIANT_HEADER
from gateway.records.tags import MAX_ID_LENGTH
from gateway.tokens import count_prompt

log = logging.getLogger(__name__)

# APIs a provider that speaks only chat completions is still asked through, translated.
TRANSLATED = {responses.ENDPOINT: responses, messages.ENDPOINT: messages}
# Endpoints whose answers may stream, and those where the gateway asks for usage in the stream.
STREAMING = frozenset({"chat/completions", "completions", responses.ENDPOINT, messages.ENDPOINT})
_USAGE_ASKED = frozenset({"chat/completions", "completions"})


def proxy_endpoint(endpoint: str):
    """The handler of `POST /v1/<endpoint>` for a JSON API."""
    return partial(_proxy, endpoint=endpoint)


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


async def _proxy(request: web.Request, endpoint: str) -> web.StreamResponse:
    exchange = Exchange(request, endpoint)
    try:
        body, stream, hide_usage = await _prepare(exchange, endpoint)
        exchange.upstream_from = time.perf_counter()
        upstream, assembler = await _send(exchange, endpoint, body, stream, hide_usage)
    except ApiError as error:
        return exchange.refuse(error)
    except Exception:
        # A bug of ours (a translation, an adapter): the client still gets an answer in its
        # API's shape with the interaction id, and the request its row and its metric.
        log.exception("interaction %s: failed before the answer", exchange.interaction.id)
        return exchange.refuse(InternalError(exchange.interaction.id))
    exchange.upstream_wait_ended()  # a body has been read whole; a stream's chunks are timed
    if upstream.chunks is not None:
        return await relay_stream(exchange, upstream, assembler)
    return await relay_body(exchange, upstream, assembler)


async def _prepare(exchange: Exchange, endpoint: str) -> tuple[dict[str, Any], bool, bool]:
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
    it.stream = stream = stream and endpoint in STREAMING
    hide_usage = False
    if stream and endpoint in _USAGE_ASKED:
        options = body.get("stream_options") or {}
        if not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
        if not options.get("include_usage"):
            # Ask for usage so the record has real token counts; the extra chunk (and the
            # `usage: null` it adds to every chunk) is dropped on the way back, so this client
            # sees the stream it asked for.
            body["stream_options"] = {**options, "include_usage": True}
            hide_usage = True
    return body, stream, hide_usage


async def _send(
    exchange: Exchange, endpoint: str, client_body: dict[str, Any], stream: bool, hide_usage: bool
) -> tuple[UpstreamResponse, Assembler]:
    """Send on the chosen route; if its upstream fails before answering, once more on the
    model's fallback arm, recorded as such. Returns the answer and what reads it."""
    it, route = exchange.interaction, exchange.route
    assert route is not None
    providers, headers = exchange.request.app[PROVIDERS], exchange.request.headers
    while True:
        body = dict(client_body)  # each arm rewrites its own copy
        route.apply(body, endpoint)
        it.provider, it.upstream_model = route.provider, route.upstream_model
        it.variant, it.request = route.variant, body
        if route.variant:
            exchange.headers[VARIANT_HEADER] = route.variant
        provider = providers[route.provider]
        try:
            if endpoint in provider.native:
                upstream = await provider.send(endpoint, body, stream, headers)
                return upstream, _assembler(endpoint, hide_usage)
            wire = TRANSLATED.get(endpoint)
            if wire is None:
                raise InvalidRequest(
                    f"Model '{it.requested_model}' is served by provider '{route.provider}', "
                    f"which does not offer /v1/{endpoint}.",
                    param="model",
                )
            chat = wire.to_chat_request(body)
            upstream = await provider.send("chat/completions", chat, stream)
            return upstream, TranslatedAnswer(wire, body)
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


def _assembler(endpoint: str, hide_usage: bool) -> Assembler:
    """What reads an answer given in `endpoint`'s own wire format."""
    if endpoint == responses.ENDPOINT:
        return responses.Assembler()
    if endpoint == messages.ENDPOINT:
        return messages.Assembler()
    return ResponseAssembler(endpoint, hide_usage_chunk=hide_usage)


async def count_tokens(request: web.Request) -> web.Response:
    """`POST /v1/messages/count_tokens`: asked of an Anthropic provider, estimated with tiktoken
    for the others. A question about a request, not an interaction: nothing is recorded."""
    body = await _read_json(request)
    read_metadata(request.headers, body)  # strips the `flywheel` field
    strip_secrets(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required", param="model")
    route = request.app[ROUTER].route(model)
    route.apply(body, messages.ENDPOINT)
    provider = request.app[PROVIDERS][route.provider]
    endpoint = "messages/count_tokens"
    if endpoint in provider.native:
        upstream = await provider.send(endpoint, body, False, request.headers)
        return web.Response(
            body=upstream.body,
            status=upstream.status,
            headers={**upstream.headers, "Content-Type": upstream.content_type},
        )
    chat = messages.to_chat_request(body, strict=False)
    tokens = count_prompt("chat/completions", chat, route.upstream_model)
    return json_response({"input_tokens": tokens})


async def unknown_route(request: web.Request) -> web.Response:
    """Any other `/v1` path: 405 where the path exists with other methods, else a 404 that is
    counted, logged and recorded like any refused request, so turned-away traffic is seen."""
    allowed = _allowed_methods(request)
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    exchange = Exchange(request, "unknown")
    log.info("unknown route %s %s", request.method, request.path)
    error = NotFound(f"Unknown route {request.method} {request.path}")
    exchange.interaction.request = {"method": request.method, "path": request.path[:1024]}
    return exchange.refuse(error)


def _allowed_methods(request: web.Request) -> set[str]:
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        if info.get("path") == request.path or (pattern and pattern.fullmatch(request.path)):
            allowed.update(route.method for route in resource if route.method != "*")
    return allowed


async def _read_json(request: web.Request) -> dict[str, Any]:
    server = request.app[CONFIG].server
    body = await read_json(request, server.max_body_bytes, server.body_read_timeout)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body
