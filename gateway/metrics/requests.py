"""Requests answered: how many, how long, how many tokens, what they cost, and what failed upstream.

The request path pays little: `RequestMetrics.observe` runs after the response's last byte was
written (from the handlers' `_Exchange.record`), and the labelled children of each (model,
variant, provider, endpoint) are looked up once and cached, so no `.labels()` call happens per
request.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.errors import ApiError, UpstreamError, UpstreamTimeout
from gateway.metrics.labels import NONE, LabelBounds
from gateway.records.interaction import CLIENT_DISCONNECTED, ERROR, Interaction

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
TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")

REQUEST_LABELS = ("model", "variant", "provider", "endpoint")
SERVED_LABELS = ("model", "variant", "provider")

_Key = tuple[str, str, str, str]  # (model, variant, provider, endpoint), bounded


class RequestMetrics:
    """Every request answered, by status class, and the providers' failures."""

    def __init__(self, registry: CollectorRegistry, bounds: LabelBounds):
        self._bounds = bounds
        self.requests = Counter(
            "flywheel_requests",
            "Requests answered, by model, variant, provider, endpoint and status class "
            "(2xx, 4xx, 5xx, disconnected; a stream that fails after its headers is 5xx).",
            (*REQUEST_LABELS, "status_class"),
            registry=registry,
        )
        self.served = ServedMetrics(registry)
        self.upstream_errors = Counter(
            "flywheel_upstream_errors",
            "Provider failures by kind: timeout, connection, http_5xx, stream_broken, "
            "http_4xx, rate_limited.",
            ("provider", "kind"),
            registry=registry,
        )
        self._counts: dict[tuple[str, str, str, str, str], Counter] = {}
        self._errors: dict[tuple[str, str], Counter] = {}

    def observe(
        self, it: Interaction, upstream_seconds: float | None, error: ApiError | None
    ) -> None:
        """One finished request; `upstream_seconds` is None when no provider was called."""
        model = self._bounds.model(it.requested_model)
        variant = self._bounds.variant(model, it.variant)
        provider = NONE if it.provider is None else self._bounds.provider(it.provider)
        key = (model, variant, provider, it.endpoint)
        counted = (*key, _status_class(it))
        counter = self._counts.get(counted)
        if counter is None:
            counter = self._counts[counted] = self.requests.labels(*counted)
        counter.inc()
        if upstream_seconds is None:
            return  # rejected before any provider was called: no latency worth a histogram
        self.served.observe(key, it, upstream_seconds)
        kind = _upstream_error_kind(it, error)
        if kind is not None:
            self._upstream_error(provider, kind).inc()

    def observe_fallback(self, provider: str, error: UpstreamError) -> None:
        """An A/B arm's upstream failed and the fallback arm answered: the request itself
        succeeded, but the failure still counts against the provider."""
        kind = (
            "timeout"
            if isinstance(error, UpstreamTimeout)
            else ("http_5xx" if error.upstream_status is not None else "connection")
        )
        self._upstream_error(self._bounds.provider(provider), kind).inc()

    def _upstream_error(self, provider: str, kind: str) -> Counter:
        child = self._errors.get((provider, kind))
        if child is None:
            child = self._errors[(provider, kind)] = self.upstream_errors.labels(provider, kind)
        return child


class ServedMetrics:
    """Requests a provider served: latencies, time to first token, tokens and cost."""

    def __init__(self, registry: CollectorRegistry):
        self.duration = Histogram(
            "flywheel_request_duration_seconds",
            "Whole request, first byte in to last byte out, for requests that reached a provider.",
            REQUEST_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream = Histogram(
            "flywheel_upstream_duration_seconds",
            "Time spent waiting on the provider: the call, and for streams every chunk's wait.",
            REQUEST_LABELS,
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
            SERVED_LABELS,
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "flywheel_tokens",
            "Tokens by kind (prompt, completion, cached, reasoning); estimated when the provider "
            "reported no usage.",
            (*SERVED_LABELS, "kind"),
            registry=registry,
        )
        self.cost = Counter(
            "flywheel_cost_usd",
            "Cost in USD from the price table; requests of unknown price add nothing.",
            SERVED_LABELS,
            registry=registry,
        )
        self._series: dict[_Key, _Series] = {}

    def observe(self, key: _Key, it: Interaction, upstream_seconds: float) -> None:
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


class _Series:
    """The children of one (model, variant, provider, endpoint) served by a provider, made once
    and reused."""

    __slots__ = ("cost", "duration", "overhead", "tokens", "ttft", "upstream")

    def __init__(
        self, served: ServedMetrics, model: str, variant: str, provider: str, endpoint: str
    ):
        self.duration = served.duration.labels(model, variant, provider, endpoint)
        self.upstream = served.upstream.labels(model, variant, provider, endpoint)
        self.overhead = served.overhead.labels(endpoint)
        self.ttft = served.ttft.labels(model, variant, provider)
        self.tokens = tuple(
            served.tokens.labels(model, variant, provider, kind) for kind in TOKEN_KINDS
        )
        self.cost = served.cost.labels(model, variant, provider)


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
