"""What is running: the build's version, and how its config reloads went."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway import __version__


class ReloadMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.reloads = Counter(
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
            self.reloads.labels(result)

    def observe(self, ok: bool) -> None:
        self.reloads.labels("success" if ok else "failure").inc()
