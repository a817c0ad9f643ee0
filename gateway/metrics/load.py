"""Load: requests in flight, and those the in-flight cap turned away (gateway/overload.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.metrics.copies import Copy, CountCopy, GaugeCopy
from gateway.overload import InFlightLimit


class LoadMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.in_flight = Gauge(
            "flywheel_in_flight_requests",
            "Requests in flight (all workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.rejections = Counter(
            "flywheel_overload_rejections",
            "Requests answered 503 at once because server.max_in_flight was reached.",
            registry=registry,
        )

    def copies(self, limit: InFlightLimit) -> list[Copy]:
        """The cap keeps these counts itself; they are copied when scraped."""
        return [
            CountCopy(self.rejections, lambda: limit.rejected),
            GaugeCopy(self.in_flight, lambda: limit.in_flight),
        ]
