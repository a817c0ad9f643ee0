"""Which recorded interactions become examples, and the example each one becomes.

The store is read in pages of `PAGE_SIZE` rows in (created_at, id) order, so memory stays flat
however many rows match. Filters on the interaction itself go to the store as SQL; filters on
feedback (rating, outcome, thumbs...) need the latest value of each field, so they are applied
here, after `latest()`, identically for both engines. Every row read and not kept is counted
under the filter that dropped it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from gateway import quality
from gateway.records.feedback import latest
from gateway.records.interaction import SUCCESS
from gateway.store.base import ExportSource
from gateway.store.queries import Cursor, ExportQuery, Slice, TimeWindow

PAGE_SIZE = 500
# What a model should not learn from: a template that was never filled in, an empty or cut-off
# answer, one the provider's filter stopped.
TRAINING_EXCLUDED_FLAGS = (
    quality.UNRENDERED_TEMPLATE,
    quality.EMPTY_RESPONSE,
    quality.TRUNCATED,
    quality.CONTENT_FILTERED,
)


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    models: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)  # every one must match
    # None: the format's default. Training formats take successful calls without quality
    # flags; the raw and analytics formats take all traffic.
    include_failed: bool | None = None
    outcomes: tuple[str, ...] = ()  # the latest outcome is one of these
    min_rating: int | None = None
    thumbs: str | None = None
    min_score: float | None = None
    exclude_flags: tuple[str, ...] | None = None  # data-quality flags that disqualify a row
    max_examples: int | None = None  # a seeded random sample of this many
    seed: int = 0
    validation_fraction: float = 0.1

    def for_format(self, all_traffic: bool) -> Filters:
        """These filters with the format's defaults filled in where none was given."""
        return replace(
            self,
            include_failed=all_traffic if self.include_failed is None else self.include_failed,
            exclude_flags=(
                (() if all_traffic else TRAINING_EXCLUDED_FLAGS)
                if self.exclude_flags is None
                else self.exclude_flags
            ),
        )

    def describe(self) -> dict[str, Any]:
        """The filters as JSON values, for the manifest and the dataset card."""
        described = {}
        for name, value in asdict(self).items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            described[name] = value
        return described


@dataclass(slots=True)
class Example:
    """One interaction as exporters see it: the stored row, and the latest value of each
    feedback field (`feedback`) over its events."""

    record: dict[str, Any]
    feedback: dict[str, Any]
    # Indices into the prompt's messages of earlier assistant turns the user threw away
    # (`exporters.history`): no format may train on them.
    rejected_turns: frozenset[int] = frozenset()

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def group(self) -> str:
        """What the train/validation split keeps together: the user, else the session, else
        the interaction alone."""
        return str(self.record.get("user") or self.record.get("session") or self.id)

    @property
    def eligible_at(self) -> str:
        """When this example last changed: created, or given its latest feedback."""
        stamps = [self.record["created_at"], *(e["created_at"] for e in self._events)]
        return max(str(s) for s in stamps)

    @property
    def _events(self) -> list[dict[str, Any]]:
        return self.record.get("feedback") or []


async def select(
    store: ExportSource,
    filters: Filters,
    dropped: Counter[str],
    *,
    endpoints: tuple[str, ...] = (),
    changed_since: datetime | None = None,
    observe: Callable[[Example], None] | None = None,
    part: Slice | None = None,
    outside: Callable[[Example], None] | None = None,
    thrown_away: bool = False,
) -> AsyncIterator[Example]:
    """Examples that pass `filters`, oldest first; `dropped` counts the rest by filter.
    `observe` sees every row read, before the filters, kept or not. With `part` (a shard's
    slice), only its rows are observed, filtered, counted and given out; the rows of other
    slices the store gives with them (answers that may have been thrown away) go to `outside`,
    in their place in store order. `thrown_away`: only the rows given feedback that may have
    thrown their answer away (ExportQuery.thrown_away)."""
    query = export_query(filters, endpoints, changed_since, part, thrown_away)
    after: Cursor | None = None
    while True:
        page = await store.export_page(query, after, PAGE_SIZE)
        for record in page:
            example = Example(record, latest(record.get("feedback") or []))
            if part is not None and not part.holds(example.id):
                if outside is not None:
                    outside(example)
                continue
            if observe is not None:
                observe(example)
            reason = rejection(example, filters)
            if reason is None:
                yield example
            else:
                dropped[reason] += 1
        if len(page) < PAGE_SIZE:
            return
        last = page[-1]
        after = Cursor(datetime.fromisoformat(str(last["created_at"])), str(last["id"]))


def export_query(
    filters: Filters,
    endpoints: tuple[str, ...] = (),
    changed_since: datetime | None = None,
    part: Slice | None = None,
    thrown_away: bool = False,
) -> ExportQuery:
    """What `select` asks the store for: the filters the store applies itself."""
    return ExportQuery(
        window=TimeWindow(filters.since, filters.until),
        models=filters.models,
        variants=filters.variants,
        users=filters.users,
        endpoints=endpoints,
        changed_since=changed_since,
        slice=part,
        thrown_away=thrown_away,
    )


def rejection(example: Example, filters: Filters) -> str | None:
    """The first filter `example` fails, by name, or None when it passes them all."""
    record, feedback = example.record, example.feedback
    if not filters.include_failed and record["status"] != SUCCESS:
        return "status"
    tags = record.get("tags") or {}
    if any(tags.get(key) != value for key, value in filters.tags.items()):
        return "tags"
    if filters.outcomes and feedback.get("outcome") not in filters.outcomes:
        return "outcome"
    if filters.min_rating is not None and (feedback.get("rating") or 0) < filters.min_rating:
        return "min_rating"
    if filters.thumbs is not None and feedback.get("thumbs") != filters.thumbs:
        return "thumbs"
    score = feedback.get("score")
    if filters.min_score is not None and (score is None or score < filters.min_score):
        return "min_score"
    flags = set(record.get("quality_flags") or ())
    if flags.intersection(filters.exclude_flags or ()):
        return "quality_flags"
    return None
