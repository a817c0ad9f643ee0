"""Prometheus metrics: what the gateway counts, and `GET /metrics`, where it is exposed.

Every metric lives on the app's own `CollectorRegistry` (never prometheus-client's global one) and
is named `flywheel_...`. Labels are bounded: model names come from config (anything else is
`other`), providers from config, variants from the router (which only knows configured ones),
endpoints and status classes from small fixed sets. User, session and key names never reach a
label.

    metrics.py   `Metrics`: every group below on one registry, its `observe_*` calls, `GET /metrics`
    labels.py    bounded label values: configured models and providers, anything else `other`
    requests.py  requests answered: status, latencies, time to first token, tokens, cost,
                 upstream errors (on the hot path: children cached per series)
    load.py      requests in flight, and those the in-flight cap turned away
    feedback.py  feedback events and ratings; `feedback_events` turns a body into them
    capture.py   the recorder's rows (written, spooled, replayed, dead-lettered) and its queue
    exports.py   export jobs' rows and last success
    reloads.py   config reloads and the build's version
    copies.py    counts other objects keep, copied into metrics when scraped
    workers.py   several workers: prometheus-client's multiprocess mode

For the other engineers' features (documented here, called from there):
- feedback: `Metrics.observe_feedback(model, variant, kind, value, rating)`, one call per event;
  `feedback_events(item)` turns a feedback body into those events;
- exports: `Metrics.observe_export(job, rows)` after each successful run of a job;
- config reloads: `Metrics.observe_config_reload(ok, config)` (wired in gateway/reload.py).
A new metric goes in its feature's module (or a new one, composed in `Metrics.__init__`), with
an `observe_*` call on `Metrics` if other code must report to it.
"""

from gateway.metrics.feedback import FEEDBACK_VALUES, feedback_events
from gateway.metrics.metrics import Metrics
from gateway.metrics.workers import MULTIPROC_ENV, mark_worker_dead, multiprocess_metrics

__all__ = [
    "FEEDBACK_VALUES",
    "MULTIPROC_ENV",
    "Metrics",
    "feedback_events",
    "mark_worker_dead",
    "multiprocess_metrics",
]
