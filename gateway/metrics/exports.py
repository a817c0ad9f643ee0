"""Exports: rows each export job wrote, and when it last succeeded."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge


class ExportMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.rows = Counter(
            "flywheel_export_rows",
            "Rows written by export jobs.",
            ("job",),
            registry=registry,
        )
        self.last_success = Gauge(
            "flywheel_export_last_success_timestamp_seconds",
            "Unix time of the job's last successful export.",
            ("job",),
            registry=registry,
            multiprocess_mode="max",
        )

    def observe(self, job: str, rows: int, finished_at: float | None = None) -> None:
        self.rows.labels(job).inc(rows)
        self.last_success.labels(job).set(finished_at or time.time())
