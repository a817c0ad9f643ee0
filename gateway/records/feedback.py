"""One feedback event as stored in `feedback`, and how consumers read several of them.

An interaction can collect many events (a thumb, later a correction, a changed mind). None is
overwritten: each is a row, and the value of a field is the one from the latest event that set
it. `latest()` is that rule, in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

THUMBS = ("up", "down")
OUTCOMES = ("accepted", "modified", "rejected")
# `unchanged`: the "correction" is the answer itself; not an edit, whatever the threshold.
CORRECTION_TYPES = ("unchanged", "minor_edit", "major_edit")


@dataclass(slots=True)
class Feedback:
    id: str
    interaction_id: str
    created_at: datetime
    rating: int | None = None
    thumbs: str | None = None
    score: float | None = None
    outcome: str | None = None
    correction: str | None = None
    comment: str | None = None
    dimensions: dict[str, int] | None = None
    time_to_decision_ms: int | None = None
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    edit_distance: int | None = None
    correction_type: str | None = None
    # Who sent it: the API key's name; None when a feedback token was the only credential.
    api_key_name: str | None = None

    def as_row(self) -> tuple[Any, ...]:
        """Values in `FEEDBACK_COLUMNS` order, for the stores' batched inserts."""
        return tuple(getattr(self, name) for name in FEEDBACK_COLUMNS)


FEEDBACK_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Feedback))
FEEDBACK_JSON_COLUMNS = frozenset({"dimensions", "tags"})
# Fields a later event overrides one by one; the mappings merge key by key instead.
_SCALARS = (
    "rating",
    "thumbs",
    "score",
    "outcome",
    "correction",
    "comment",
    "time_to_decision_ms",
    "source",
    "edit_distance",
    "correction_type",
)
_MERGED = ("dimensions", "tags")


def latest(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The value of each field from the latest event that set it; `events` oldest first.

    `dimensions` and `tags` merge key by key, so a later `{"clarity": 2}` keeps an earlier
    `{"accuracy": 5}`. Fields no event set are absent.
    """
    result: dict[str, Any] = {}
    for event in events:
        for name in _SCALARS:
            if event.get(name) is not None:
                result[name] = event[name]
        for name in _MERGED:
            if event.get(name):
                result[name] = {**result.get(name, {}), **event[name]}
    return result
