"""`create_app(config)`: builds the whole gateway. No module-level app, no globals.

Each resource has one cleanup context (startup, then bounded cleanup in reverse order):
store -> recorder -> metrics of the recorder and the in-flight cap -> upstream HTTP session and
providers -> price table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import admin, console, openapi, privacy, tuning
from gateway.appkeys import (
    CONFIG,
    FEEDBACK_TOKENS,
    HTTP_SESSION,
    IN_FLIGHT,
    KEYS,
    METRICS,
    METRICS_REGISTRY,
    MIGRATIONS,
    PRICES,
    PROVIDERS,
    RECENT_INTERACTIONS,
    RECORDER,
    ROUTER,
    STORE,
)
from gateway.auth import KeyRing, auth_middleware
from gateway.config import Config
from gateway.errors import StoreError
from gateway.feedback.api import post_feedback
from gateway.feedback.cors import FeedbackCors
from gateway.feedback.recent import RecentInteractions
from gateway.feedback.tokens import FeedbackTokens
from gateway.http_errors import error_middleware, json_response
from gateway.metrics import Metrics
from gateway.overload import InFlightLimit
from gateway.pricing import PriceTable
from gateway.privacy.capture import CaptureRedactor
from gateway.privacy.forgotten import ForgottenSubjects
from gateway.providers import build_providers
from gateway.proxy import handlers
from gateway.proxy.stored_responses import stored_response
from gateway.proxy.uploads import UPLOADS, upload_endpoint
from gateway.recorder import Recorder
from gateway.reload import handle_reload
from gateway.routing import Router
from gateway.spool import Spool
from gateway.store import open_store
from gateway.store.migrator import Migrations

log = logging.getLogger(__name__)

# `POST /v1/<endpoint>` with a JSON body, each served through the proxy (gateway/proxy/).
JSON_ENDPOINTS = (
    "chat/completions",
    "completions",
    "embeddings",
    "responses",
    "messages",
    "moderations",
    "images/generations",
    "audio/speech",
)


def create_app(config: Config) -> web.Application:
    limit = InFlightLimit(config.server.max_in_flight)
    keys = KeyRing(config.auth)
    cors = FeedbackCors(config.server.cors_origins)  # outermost: error answers get CORS too
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        # Auth before the in-flight cap: no slot is spent on a request without a key.
        middlewares=[cors.middleware, error_middleware, auth_middleware(keys), limit.middleware],
    )
    app[CONFIG] = config
    app[KEYS] = keys
    app[IN_FLIGHT] = limit
    app[ROUTER] = Router(config.models, config.providers)
    app[FEEDBACK_TOKENS] = FeedbackTokens.from_config(config)
    app[RECENT_INTERACTIONS] = RecentInteractions(config.feedback.recent_interactions)
    app[METRICS_REGISTRY] = CollectorRegistry(auto_describe=True)  # the app's own, not global
    app[METRICS] = Metrics(config, app[METRICS_REGISTRY])
    app.cleanup_ctx.extend([_store, _recorder, _metrics, _providers, _prices])
    for endpoint in JSON_ENDPOINTS:
        app.router.add_post(f"/v1/{endpoint}", handlers.proxy_endpoint(endpoint))
    for endpoint in UPLOADS:
        app.router.add_post(f"/v1/{endpoint}", upload_endpoint(endpoint))
    app.router.add_post("/v1/messages/count_tokens", handlers.count_tokens)
    for path in ("/v1/responses/{response_id}", "/v1/responses/{response_id}/{action:input_items}"):
        app.router.add_route("GET", path, stored_response)
    app.router.add_route("DELETE", "/v1/responses/{response_id}", stored_response)
    app.router.add_post("/v1/responses/{response_id}/{action:cancel}", stored_response)
    app.router.add_get("/v1/models", handlers.list_models)
    app.router.add_get("/v1/models/{model}", handlers.get_model)
    app.router.add_post("/v1/feedback", post_feedback)
    admin.add_routes(app)
    console.add_routes(app)  # the web console (gateway/console/)
    privacy.install(app)  # the audit middleware; the retention task (after the recorder)
    tuning.install(app)  # fine-tuning runs, rollout; store overrides applied to routing
    # The browser feedback script and its example page (gateway/static/).
    app.router.add_static("/static", Path(__file__).parent / "static", append_version=False)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi.openapi_json)
    app.router.add_post("/admin/reload", handle_reload)
    app.router.add_get("/metrics", app[METRICS].handle)
    app.router.add_route("*", "/v1/{tail:.*}", handlers.unknown_route)  # last: matches any
    return app


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers and the recorder is writing: a worker whose rows would
    only pile up must leave the load balancer's rotation."""
    recorder = request.app[RECORDER]
    problem = recorder.problem() if request.app[CONFIG].capture.enabled else None
    if problem is not None:
        return json_response({"status": "unavailable", "recorder": problem}, status=503)
    migrations = request.app[MIGRATIONS]
    if migrations.pending:
        detail = f"schema not migrated yet: {migrations.last_error}"
        return json_response({"status": "unavailable", "store": detail}, status=503)
    try:
        await request.app[STORE].ping()
    except StoreError as exc:
        return json_response({"status": "unavailable", "store": str(exc)}, status=503)
    return json_response({"status": "ready", "recorder_queue": recorder.depth})


async def _store(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    # Not connected yet: with the database down the worker still starts, and spools.
    store = await open_store(config.storage.url, pool_size=config.storage.pool_size, connect=False)
    app[STORE] = store
    app[MIGRATIONS] = migrations = Migrations(store)
    await migrations.start()
    yield
    await migrations.stop()
    await store.close()


async def _recorder(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    capture = config.capture
    recorder = Recorder(
        app[STORE],
        Spool(capture.spool_dir),
        queue_size=capture.queue_size,
        batch_size=capture.batch_size,
        write_timeout=capture.write_timeout,
        flush_interval=capture.flush_interval,
        stall_timeout=capture.stall_timeout,
        redactor=CaptureRedactor.from_config(capture.redact, config.anonymize),
        forgotten=ForgottenSubjects(app[STORE], config.anonymize.salt),
    )
    app[RECORDER] = recorder
    recorder.start()
    yield
    await recorder.close(drain_seconds=app[CONFIG].server.shutdown_timeout)


async def _metrics(app: web.Application) -> AsyncIterator[None]:
    async with app[METRICS].watching(app[RECORDER], app[IN_FLIGHT]):
        yield


async def _providers(app: web.Application) -> AsyncIterator[None]:
    # One pool for every upstream: connections are reused across requests and providers.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=100, ttl_dns_cache=300)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
    app[HTTP_SESSION] = session
    # On a thread: a litellm provider imports litellm, which takes seconds.
    app[PROVIDERS] = await asyncio.to_thread(build_providers, app[CONFIG].providers, session)
    yield
    for provider in app[PROVIDERS].values():
        await provider.close()
    await session.close()


async def _prices(app: web.Application) -> AsyncIterator[None]:
    # ~3 MB of JSON, parsed on a thread. (The tokenizer is not preloaded: it weighs ~40 MB and
    # is needed only when a provider reports no usage; see gateway/tokens.py.)
    app[PRICES] = await asyncio.to_thread(PriceTable.load, app[CONFIG].pricing)
    yield
