"""Capture: what became of the recorder's interactions (written, spooled, replayed, set aside)
and how many wait in its queue."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.metrics.copies import Copy, CountCopy, GaugeCopy
from gateway.recorder import Recorder

_ROWS = {
    "written": "Interactions written to the store.",
    "spooled": "Interactions written to the local spool (store down, slow or queue full).",
    "replayed": "Spooled interactions replayed into the store.",
    "dead_lettered": "Interactions the store refused even after repair, kept aside in"
    " the spool's dead-letter folder.",
}


class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.depth = Gauge(
            "flywheel_recorder_queue_depth",
            "Interactions waiting in memory for the store (all workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.rows = {
            name: Counter(f"flywheel_recorder_rows_{name}", text, registry=registry)
            for name, text in _ROWS.items()
        }
        self.write_errors = Counter(
            "flywheel_recorder_write_errors",
            "Batch writes that failed or timed out (the batch was spooled).",
            registry=registry,
        )
        self.writer_restarts = Counter(
            "flywheel_recorder_writer_restarts",
            "Times the recorder's writer task failed and was restarted.",
            registry=registry,
        )
        self.replay_failures = Counter(
            "flywheel_recorder_replay_failures",
            "Spool replays interrupted because the store went away (retried later).",
            registry=registry,
        )

    def copies(self, recorder: Recorder) -> list[Copy]:
        """The recorder keeps these counts itself; they are copied when scraped."""
        return [
            CountCopy(self.rows["written"], lambda: recorder.written),
            CountCopy(self.rows["spooled"], lambda: recorder.spooled),
            CountCopy(self.rows["replayed"], lambda: recorder.replayed),
            CountCopy(self.write_errors, lambda: recorder.write_errors),
            CountCopy(self.rows["dead_lettered"], lambda: recorder.dead_lettered),
            CountCopy(self.writer_restarts, lambda: recorder.writer_restarts),
            CountCopy(self.replay_failures, lambda: recorder.replay_failures),
            GaugeCopy(self.depth, lambda: recorder.depth),
        ]
