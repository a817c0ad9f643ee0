"""Feedback: events by kind and value for each model and variant, and the mean rating."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.metrics.labels import OTHER, LabelBounds

RATING_BUCKETS = (1, 2, 3, 4, 5)
# Feedback event kinds and their values; anything else is counted as `other`.
FEEDBACK_VALUES: Mapping[str, tuple[str, ...]] = {
    "thumbs": ("up", "down"),
    "rating": ("1", "2", "3", "4", "5"),
    "outcome": ("accepted", "modified", "rejected"),
    "score": ("low", "high"),  # score < 0.5, score >= 0.5
    "correction": ("unchanged", "minor_edit", "major_edit", "given"),  # its type when known
    "comment": ("given",),
}


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry, bounds: LabelBounds):
        self._bounds = bounds
        self.events = Counter(
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

    def observe(
        self,
        model: str | None,
        variant: str | None,
        kind: str,
        value: str,
        rating: float | None = None,
    ) -> None:
        """One event; see `Metrics.observe_feedback`."""
        model = self._bounds.model(model)
        variant = self._bounds.variant(model, variant)
        allowed = FEEDBACK_VALUES.get(kind)
        if allowed is None:
            kind, value = OTHER, OTHER
        elif value not in allowed:
            value = OTHER
        self.events.labels(model, variant, kind, value).inc()
        if rating is not None:
            self.rating.labels(model, variant).observe(rating)


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
