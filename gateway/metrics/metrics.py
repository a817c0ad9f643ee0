"""`Metrics`: every feature's metrics on the app's registry, behind one `observe_*` call each,
and `GET /metrics`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from gateway.config import Config
from gateway.errors import ApiError, UpstreamError
from gateway.metrics import workers
from gateway.metrics.capture import CaptureMetrics
from gateway.metrics.copies import Copy
from gateway.metrics.exports import ExportMetrics
from gateway.metrics.feedback import FeedbackMetrics
from gateway.metrics.labels import LabelBounds
from gateway.metrics.load import LoadMetrics
from gateway.metrics.reloads import ReloadMetrics
from gateway.metrics.requests import RequestMetrics
from gateway.overload import InFlightLimit
from gateway.recorder import Recorder
from gateway.records.interaction import Interaction


class Metrics:
    """The gateway's metrics on `registry`, one group per feature."""

    def __init__(self, config: Config, registry: CollectorRegistry):
        self.registry = registry
        folder = workers.shared_folder()
        self.multiprocess = folder is not None
        # With several workers, values live in every worker's files: expose their sum.
        self._exposed = registry if folder is None else workers.summed(folder)
        self._bounds = LabelBounds(config)
        # In the exposition's order, which is the order of registration.
        self.requests = RequestMetrics(registry, self._bounds)
        self.load = LoadMetrics(registry)
        self.feedback = FeedbackMetrics(registry, self._bounds)
        self.capture = CaptureMetrics(registry)
        self.exports = ExportMetrics(registry)
        self.reloads = ReloadMetrics(registry)
        self._copies: list[Copy] = []

    # -- the request path --------------------------------------------------------------------
    def observe_request(
        self, it: Interaction, upstream_seconds: float | None, error: ApiError | None
    ) -> None:
        """One finished request; `upstream_seconds` is None when no provider was called."""
        self.requests.observe(it, upstream_seconds, error)

    def observe_fallback(self, provider: str, error: UpstreamError) -> None:
        """An A/B arm's upstream failed and the fallback arm answered: the request itself
        succeeded, but the failure still counts against the provider."""
        self.requests.observe_fallback(provider, error)

    # -- other features' events --------------------------------------------------------------
    def observe_feedback(
        self,
        model: str | None,
        variant: str | None,
        kind: str,
        value: str,
        rating: float | None = None,
    ) -> None:
        """One feedback event, e.g. ("thumbs", "up") or ("rating", "4", rating=4).

        `model` is the interaction's requested model and `variant` its variant (None for a
        plain model). Kinds and values outside `FEEDBACK_VALUES` are counted as `other`;
        `rating` (1-5) also feeds the mean-rating histogram.
        """
        self.feedback.observe(model, variant, kind, value, rating)

    def observe_export(self, job: str, rows: int, finished_at: float | None = None) -> None:
        """A successful export run; `job` is its name in config (or `adhoc` for the CLI's)."""
        self.exports.observe(job, rows, finished_at)

    def observe_config_reload(self, ok: bool, config: Config | None = None) -> None:
        """A reload, and on success the new config, whose model names become label values."""
        self.reloads.observe(ok)
        if config is not None:
            self._bounds.update(config)

    # -- counts other objects keep -----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def watching(self, recorder: Recorder, limit: InFlightLimit) -> AsyncIterator[None]:
        """Export the recorder's and the in-flight cap's counts while the app runs."""
        self._copies = [*self.capture.copies(recorder), *self.load.copies(limit)]
        task = asyncio.create_task(workers.sync_forever(self.sync)) if self.multiprocess else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.sync()

    def sync(self) -> None:
        for copy in self._copies:
            copy.sync()

    # -- exposition --------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        """`GET /metrics` in Prometheus' text format."""
        self.sync()
        # On a thread: with several workers this reads and merges every worker's files.
        body = await asyncio.to_thread(generate_latest, self._exposed)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
