"""One request in flight: its interaction, its timing, the headers every answer carries, and the
hand-over to the recorder once the client has its answer."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiohttp import web

from gateway.apis.base import Assembler
from gateway.appkeys import (
    CONFIG,
    FEEDBACK_TOKENS,
    METRICS,
    PRICES,
    RECENT_INTERACTIONS,
    RECORDER,
)
from gateway.auth import KEY_NAME
from gateway.errors import ApiError
from gateway.http_errors import error_response
from gateway.ids import uuid7
from gateway.proxy.capture import fill_answer, fill_usage
from gateway.records.headers import FEEDBACK_TOKEN_HEADER, INTERACTION_HEADER
from gateway.records.interaction import ERROR, Interaction
from gateway.routing import Route

log = logging.getLogger(__name__)

# Flagged when tokens, cost or the normalized answer could not be derived from what came back.
DERIVATION_FAILED = "derivation_failed"


class Exchange:
    def __init__(self, request: web.Request, endpoint: str):
        self.request = request
        self.started = time.perf_counter()
        self.interaction = Interaction(
            id=uuid7(),
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

    def refuse(self, error: ApiError) -> web.Response:
        """Record a request that ends in our own error, and answer it in its API's shape."""
        self.fail(error)
        self.record(None, answered=False)
        return error_response(error, self.request.path, headers=self.headers)

    def record(self, assembler: Assembler | None, answered: bool) -> None:
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

    def _derive(self, assembler: Assembler | None, answered: bool, capture: bool) -> None:
        if assembler is None:
            return
        it, app = self.interaction, self.request.app
        if capture:
            fill_answer(it, assembler, answered)
        if assembler.first_token_at is not None and it.stream:
            it.ttft_ms = self.elapsed_ms(assembler.first_token_at)
        if self.route is not None:  # tokens and cost feed the metrics even without capture
            fill_usage(it, assembler, app[PRICES], self.route)
