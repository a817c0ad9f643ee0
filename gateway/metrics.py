"""Prometheus metrics: what the gateway counts, and `GET /metrics`, where it is exposed.

Every metric lives on the app's own `CollectorRegistry` (never prometheus-client's global one) and
is named `flywheel_...`. Labels are bounded: model names come from config (anything else is
`other`), providers from config, variants from the router (which only knows configured ones),
endpoints and status classes from small fixed sets. User, session and key names never reach a
label.

The request path pays little: `observe_request` runs after the response's last byte was written
(from the handlers' `_Exchange.record`), and the labelled children of each (model, variant,
provider, endpoint) are looked up once and cached, so no `.labels()` call happens per request.

Counts that other objects already keep (the recorder's rows, the in-flight cap) are copied into
metrics when scraped instead of being counted twice on the hot path.

Several workers: prometheus-client's multiprocess mode. Before forking, the supervisor enters
`multiprocess_metrics()`, which points PROMETHEUS_MULTIPROC_DIR at a fresh folder; every worker's
values then live in per-process mmap files there, and a scrape, whichever worker answers it, adds
up all of them with `MultiProcessCollector`. A scrape reaches one worker only, so in that mode each
worker also copies its recorder and in-flight counts into its files once a second.

For the other engineers' features (documented here, called from there):
- feedback: `Metrics.observe_feedback(model, variant, kind, value, rating)`, one call per event;
  `feedback_events(item)` turns a feedback body into those events;
- exports: `Metrics.observe_export(job, rows)` after each successful run of a job;
- config reloads: `Metrics.observe_config_reload(ok, config)` (wired in gateway/reload.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from gateway import __version__
from gateway.config import Config
from gateway.errors import ApiError, UpstreamError, UpstreamTimeout
from gateway.interaction import CLIENT_DISCONNECTED, ERROR, Interaction
from gateway.overload import InFlightLimit
from gateway.recorder import Recorder

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"  # any model (or provider) not in the config
NONE = "none"  # no variant (a plain passthrough model), or no provider (rejected before routing)

# Whole requests and upstream calls: an embedding or a cached answer takes milliseconds, a chat
# completion seconds, a reasoning model or a long stream minutes (a provider's read_timeout is
# 300 s by default). Prometheus' default buckets stop at 10 s, which would put every long
# completion in +Inf and make its p95 meaningless; these reach 10 minutes.
# fmt: off
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600,
)
# Time to first token: what users feel; densest between 200 ms and a few seconds, where models
# differ, and up to minutes for reasoning models that think before the first visible token.
TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60, 120)
# The gateway's own time (total minus upstream): the budget is well under a millisecond, so the
# buckets resolve a tenth of one; past a second it also holds a slow client's backpressure.
OVERHEAD_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5,
)
# fmt: on
RATING_BUCKETS = (1, 2, 3, 4, 5)

TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
# Feedback event kinds and their values; anything else is counted as `other`.
FEEDBACK_VALUES: Mapping[str, tuple[str, ...]] = {
    "thumbs": ("up", "down"),
    "rating": ("1", "2", "3", "4", "5"),
    "outcome": ("accepted", "modified", "rejected"),
    "score": ("low", "high"),  # score < 0.5, score >= 0.5
    "correction": ("unchanged", "minor_edit", "major_edit", "given"),  # its type when known
    "comment": ("given",),
}
# Seconds between copies of the recorder's and the cap's counts into the shared files.
_SYNC_INTERVAL = 1.0


class Metrics:
    """The gateway's metrics on `registry`, with cached children for the request path."""

    def __init__(self, config: Config, registry: CollectorRegistry):
        self.registry = registry
        self._models = frozenset(config.models)
        self._providers = frozenset(config.providers)
        folder = os.environ.get(MULTIPROC_ENV)
        self.multiprocess = bool(folder) and getattr(values.ValueClass, "_multiprocess", False)
        if self.multiprocess:
            # Values live in every worker's files: expose their sum, not this worker's share.
            self._exposed = CollectorRegistry(auto_describe=True)
            multiprocess.MultiProcessCollector(self._exposed, folder)
        else:
            self._exposed = registry
        request = ("model", "variant", "provider", "endpoint")
        served = ("model", "variant", "provider")
        self.requests = Counter(
            "flywheel_requests",
            "Requests answered, by model, variant, provider, endpoint and status class "
            "(2xx, 4xx, 5xx, disconnected; a stream that fails after its headers is 5xx).",
            (*request, "status_class"),
            registry=registry,
        )
        self.request_duration = Histogram(
            "flywheel_request_duration_seconds",
            "Whole request, first byte in to last byte out, for requests that reached a provider.",
            request,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "flywheel_upstream_duration_seconds",
            "Time spent waiting on the provider: the call, and for streams every chunk's wait.",
            request,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "flywheel_gateway_overhead_seconds",
            "Request duration minus upstream time: what the gateway itself added.",
            ("endpoint",),
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "flywheel_time_to_first_token_seconds",
            "Streams: request start to the first content token relayed.",
            served,
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "flywheel_tokens",
            "Tokens by kind (prompt, completion, cached, reasoning); estimated when the provider "
            "reported no usage.",
            (*served, "kind"),
            registry=registry,
        )
        self.cost = Counter(
            "flywheel_cost_usd",
            "Cost in USD from the price table; requests of unknown price add nothing.",
            served,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "flywheel_upstream_errors",
            "Provider failures by kind: timeout, connection, http_5xx, stream_broken, "
            "http_4xx, rate_limited.",
            ("provider", "kind"),
            registry=registry,
        )
        self.in_flight = Gauge(
            "flywheel_in_flight_requests",
            "Requests in flight (all workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.overload_rejections = Counter(
            "flywheel_overload_rejections",
            "Requests answered 503 at once because server.max_in_flight was reached.",
            registry=registry,
        )
        self.feedback = Counter(
            "flywheel_feedback",
            "Feedback events by model, variant, kind (thumbs, rating, outcome, score, correction, "
            "comment) and value.",
            ("model", "variant", "kind", "value"),
            registry=registry,
        )
        self.rating = Histogram(
            "flywheel_feedback_rating",
            "Ratings (1-5): _sum / _count is the mean rating.",
            ("model", "variant"),
            buckets=RATING_BUCKETS,
            registry=registry,
        )
        self.recorder_depth = Gauge(
            "flywheel_recorder_queue_depth",
            "Interactions waiting in memory for the store (all workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        recorder_counts = {
            "written": "Interactions written to the store.",
            "spooled": "Interactions written to the local spool (store down, slow or queue full).",
            "replayed": "Spooled interactions replayed into the store.",
            "dead_lettered": "Interactions the store refused even after repair, kept aside in"
            " the spool's dead-letter folder.",
        }
        self.recorder_rows = {
            name: Counter(f"flywheel_recorder_rows_{name}", text, registry=registry)
            for name, text in recorder_counts.items()
        }
        self.recorder_write_errors = Counter(
            "flywheel_recorder_write_errors",
            "Batch writes that failed or timed out (the batch was spooled).",
            registry=registry,
        )
        self.recorder_writer_restarts = Counter(
            "flywheel_recorder_writer_restarts",
            "Times the recorder's writer task failed and was restarted.",
            registry=registry,
        )
        self.recorder_replay_failures = Counter(
            "flywheel_recorder_replay_failures",
            "Spool replays interrupted because the store went away (retried later).",
            registry=registry,
        )
        self.export_rows = Counter(
            "flywheel_export_rows",
            "Rows written by export jobs.",
            ("job",),
            registry=registry,
        )
        self.export_last_success = Gauge(
            "flywheel_export_last_success_timestamp_seconds",
            "Unix time of the job's last successful export.",
            ("job",),
            registry=registry,
            multiprocess_mode="max",
        )
        self.config_reloads = Counter(
            "flywheel_config_reloads",
            "Configuration reloads by result (success, failure); each worker counts its own.",
            ("result",),
            registry=registry,
        )
        build_info = Gauge(
            "flywheel_build_info",
            "Always 1; the version label says which Flywheel is running.",
            ("version",),
            registry=registry,
            multiprocess_mode="max",
        )
        build_info.labels(__version__).set(1)
        for result in ("success", "failure"):  # both series exist from the start, at 0
            self.config_reloads.labels(result)
        self._request_counts: dict[tuple[str, str, str, str, str], Counter] = {}
        self._series: dict[tuple[str, str, str, str], _Series] = {}
        self._upstream_error_children: dict[tuple[str, str], Counter] = {}
        self._copies: list[_CountCopy] = []
        self._gauges: list[tuple[Gauge, Callable[[], float]]] = []

    # -- the request path --------------------------------------------------------------------
    def observe_request(
        self, it: Interaction, upstream_seconds: float | None, error: ApiError | None
    ) -> None:
        """One finished request; `upstream_seconds` is None when no provider was called."""
        model = _bounded(it.requested_model, self._models)
        variant = (it.variant or NONE) if model != OTHER else NONE
        provider = NONE if it.provider is None else _bounded(it.provider, self._providers)
        key = (model, variant, provider, it.endpoint)
        counted = (*key, _status_class(it))
        counter = self._request_counts.get(counted)
        if counter is None:
            counter = self._request_counts[counted] = self.requests.labels(*counted)
        counter.inc()
        if upstream_seconds is None:
            return  # rejected before any provider was called: no latency worth a histogram
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, *key)
        total = (it.latency_ms or 0.0) / 1000
        series.duration.observe(total)
        series.upstream.observe(upstream_seconds)
        series.overhead.observe(max(0.0, total - upstream_seconds))
        if it.ttft_ms is not None:
            series.ttft.observe(it.ttft_ms / 1000)
        for counter, value in zip(
            series.tokens,
            (it.prompt_tokens, it.completion_tokens, it.cached_tokens, it.reasoning_tokens),
            strict=True,
        ):
            if value:
                counter.inc(value)
        if it.cost_usd:
            series.cost.inc(it.cost_usd)
        kind = _upstream_error_kind(it, error)
        if kind is not None:
            self._upstream_error(key[2], kind).inc()

    def observe_fallback(self, provider: str, error: UpstreamError) -> None:
        """An A/B arm's upstream failed and the fallback arm answered: the request itself
        succeeded, but the failure still counts against the provider."""
        kind = (
            "timeout"
            if isinstance(error, UpstreamTimeout)
            else ("http_5xx" if error.upstream_status is not None else "connection")
        )
        self._upstream_error(_bounded(provider, self._providers), kind).inc()

    def _upstream_error(self, provider: str, kind: str) -> Counter:
        child = self._upstream_error_children.get((provider, kind))
        if child is None:
            child = self._upstream_error_children[(provider, kind)] = self.upstream_errors.labels(
                provider, kind
            )
        return child

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
        model = _bounded(model, self._models)
        variant = (variant or NONE) if model != OTHER else NONE
        allowed = FEEDBACK_VALUES.get(kind)
        if allowed is None:
            kind, value = OTHER, OTHER
        elif value not in allowed:
            value = OTHER
        self.feedback.labels(model, variant, kind, value).inc()
        if rating is not None:
            self.rating.labels(model, variant).observe(rating)

    def observe_export(self, job: str, rows: int, finished_at: float | None = None) -> None:
        """A successful export run; `job` is its name in config (or `adhoc` for the CLI's)."""
        self.export_rows.labels(job).inc(rows)
        self.export_last_success.labels(job).set(finished_at or time.time())

    def observe_config_reload(self, ok: bool, config: Config | None = None) -> None:
        """A reload, and on success the new config, whose model names become label values."""
        self.config_reloads.labels("success" if ok else "failure").inc()
        if config is not None:
            self._models = frozenset(config.models)
            self._providers = frozenset(config.providers)

    # -- counts other objects keep -----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def watching(self, recorder: Recorder, limit: InFlightLimit) -> AsyncIterator[None]:
        """Export the recorder's and the in-flight cap's counts while the app runs."""
        self._copies = [
            _CountCopy(self.recorder_rows["written"], lambda: recorder.written),
            _CountCopy(self.recorder_rows["spooled"], lambda: recorder.spooled),
            _CountCopy(self.recorder_rows["replayed"], lambda: recorder.replayed),
            _CountCopy(self.recorder_write_errors, lambda: recorder.write_errors),
            _CountCopy(self.recorder_rows["dead_lettered"], lambda: recorder.dead_lettered),
            _CountCopy(self.recorder_writer_restarts, lambda: recorder.writer_restarts),
            _CountCopy(self.recorder_replay_failures, lambda: recorder.replay_failures),
            _CountCopy(self.overload_rejections, lambda: limit.rejected),
        ]
        self._gauges = [
            (self.recorder_depth, lambda: recorder.depth),
            (self.in_flight, lambda: limit.in_flight),
        ]
        task = asyncio.create_task(self._sync_forever()) if self.multiprocess else None
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
        for gauge, read in self._gauges:
            gauge.set(read())

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(_SYNC_INTERVAL)
            self.sync()

    # -- exposition --------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        """`GET /metrics` in Prometheus' text format."""
        self.sync()
        # On a thread: with several workers this reads and merges every worker's files.
        body = await asyncio.to_thread(generate_latest, self._exposed)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


class _Series:
    """The children of one (model, variant, provider, endpoint) served by a provider, made once
    and reused."""

    __slots__ = ("cost", "duration", "overhead", "tokens", "ttft", "upstream")

    def __init__(self, metrics: Metrics, model: str, variant: str, provider: str, endpoint: str):
        self.duration = metrics.request_duration.labels(model, variant, provider, endpoint)
        self.upstream = metrics.upstream_duration.labels(model, variant, provider, endpoint)
        self.overhead = metrics.overhead.labels(endpoint)
        self.ttft = metrics.ttft.labels(model, variant, provider)
        self.tokens = tuple(
            metrics.tokens.labels(model, variant, provider, kind) for kind in TOKEN_KINDS
        )
        self.cost = metrics.cost.labels(model, variant, provider)


class _CountCopy:
    """Adds to a counter what a plain integer kept elsewhere grew by since the last copy."""

    __slots__ = ("counter", "last", "read")

    def __init__(self, counter: Counter, read: Callable[[], int]):
        self.counter = counter
        self.read = read
        self.last = 0

    def sync(self) -> None:
        now = self.read()
        if now > self.last:
            self.counter.inc(now - self.last)
            self.last = now


def _bounded(value: str | None, allowed: frozenset[str]) -> str:
    return value if value is not None and value in allowed else OTHER


def _status_class(it: Interaction) -> str:
    if it.status == CLIENT_DISCONNECTED:
        return "disconnected"
    if it.status == ERROR and it.http_status < 400:
        return "5xx"  # a stream that broke after its 200 headers: the client got an error
    return f"{it.http_status // 100}xx"


def _upstream_error_kind(it: Interaction, error: ApiError | None) -> str | None:
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, UpstreamError):
        if error.upstream_status is not None:
            return "http_5xx"
        return "stream_broken" if it.http_status < 400 else "connection"
    if error is None and it.status == ERROR and 400 <= it.http_status < 500:
        return "rate_limited" if it.http_status == 429 else "http_4xx"  # relayed as is
    return None


def feedback_events(item: Mapping[str, Any] | object) -> Iterator[tuple[str, str, float | None]]:
    """(kind, value, rating) for each field `observe_feedback` counts, from one feedback body (a
    mapping) or event (an object with those attributes, e.g. gateway/feedback's `Feedback`)."""
    fields = item if isinstance(item, Mapping) else None

    def get(name: str) -> Any:
        return fields.get(name) if fields is not None else getattr(item, name, None)

    rating = get("rating")
    if isinstance(rating, int | float) and not isinstance(rating, bool):
        yield "rating", str(round(rating)), float(rating)
    for kind in ("thumbs", "outcome"):
        value = get(kind)
        if isinstance(value, str):
            yield kind, value, None
    score = get("score")
    if isinstance(score, int | float) and not isinstance(score, bool):
        yield "score", "high" if score >= 0.5 else "low", None
    if get("correction") is not None:
        yield "correction", get("correction_type") or "given", None
    if get("comment"):
        yield "comment", "given", None


# -- several workers -------------------------------------------------------------------------
@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[str]:
    """Multiprocess mode for the workers about to be forked, in a fresh folder removed at exit.

    An operator's own PROMETHEUS_MULTIPROC_DIR is used instead, emptied first: values left by an
    earlier run would otherwise be added to this one's.
    """
    preset = os.environ.get(MULTIPROC_ENV)
    if preset:
        os.makedirs(preset, exist_ok=True)
        for path in glob.glob(os.path.join(preset, "*.db")):
            os.remove(path)
        folder = preset
    else:
        folder = tempfile.mkdtemp(prefix="flywheel-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    # prometheus-client picks its value class once, when first imported, from the environment;
    # the gateway imported it before the config said how many workers to run, so pick again
    # now, before any metric exists (metrics are made in the workers, after the fork).
    values.ValueClass = values.get_value_class()
    log.info("metrics: the workers' values are kept in %s", folder)
    try:
        yield folder
    finally:
        if not preset:
            shutil.rmtree(folder, ignore_errors=True)


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (in flight, queue depth); its counters stay in the sums."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        multiprocess.mark_process_dead(pid, folder)
