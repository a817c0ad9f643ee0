"""The storage contract every engine implements, split by role, and the migration file layout.

Engines are small: they translate `Interaction` and `Feedback` rows to their database and back;
the queries are written once, in sql.py, against each engine's dialect. Nothing here is called
on the inference path; the recorder batches writes in the background. Feedback and review calls
are awaited by their own routes.

The contract is split by who uses it, so each caller's type says what it may touch (and a test
double implements only that). The engines implement every role; `Store` is their union.

    Reachable        ping                          /readyz; POST /admin/exports before it starts
    InteractionSink  + insert_interactions         the recorder
    Migratable       migrate                       the migrator at start; `flywheel migrate`
    FeedbackStore    feedback in, interactions it  POST /v1/feedback
                     refers to
    ReviewStore      listings, one interaction     the admin API's interaction routes
    StatsStore       aggregates, readout rows      /admin/stats, /admin/experiments, the CLI,
                                                   the console
    ExportSource     export_page                   exporters/selection.py, run.py
    ExportRuns       the export_runs table         the admin export routes
    ExportJobs       ExportSource + ExportRuns     exporters/jobs.py (recorded runs, named jobs)
                     + job_lock
    PrivacyStore     forgetting, retention, the    gateway/privacy/ (forget, retention, audit)
                     audit log
    TuningStore      tuning runs, model versions, gateway/tuning/ (launchers, rollout)
                     routing overrides
    SearchIndex      the text-search index         gateway/store/indexer.py (search.py)
    Store            all of them, engine, close    app wiring, the CLI, the benchmark
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Protocol

from gateway.records.feedback import Feedback
from gateway.records.interaction import Interaction
from gateway.store.queries import Cursor, ExportQuery, InteractionQuery, TimeWindow

EXPORT_RUN_COLUMNS = (
    "id",
    "job",
    "format",
    "status",
    "started_at",
    "finished_at",
    "watermark",
    "rows",
    "out_dir",
    "files",
    "manifest",
    "error",
    "progress",  # a running export's counters (exporters.progress)
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


class Reachable(Protocol):
    """Whether the database answers: `/readyz`, and a check before work it must record."""

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...


class InteractionSink(Reachable, Protocol):
    """What the recorder writes to (and pings while it replays its spool)."""

    async def insert_interactions(self, rows: Sequence[Interaction]) -> None:
        """Insert rows in one batch; ids already stored are skipped (replays are safe)."""
        ...


class Migratable(Protocol):
    """What the migrator at start, and `flywheel migrate`, run."""

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...

    async def migrate(self) -> list[str]:
        """Apply pending migrations in order; return the names applied now."""
        ...


class FeedbackStore(Protocol):
    """What `POST /v1/feedback` reads and writes (awaited: the caller wants to know)."""

    async def insert_feedback(self, rows: Sequence[Feedback]) -> list[str]:
        """Insert in one transaction; the stored id of each row, in order. A row whose
        (interaction_id, idempotency_key) is already stored is skipped and that row's id is
        returned instead: a retried request gets its first result."""
        ...

    async def get_interaction(self, interaction_id: str) -> dict[str, Any] | None:
        """One interaction as a plain dict (JSON columns decoded), or None."""
        ...

    async def interaction_models(
        self, ids: Sequence[str], made_by: str | None = None
    ) -> dict[str, tuple[str | None, str | None]]:
        """Which of these interaction ids have a row (made with the API key named `made_by`,
        when given): id -> (requested model, variant)."""
        ...

    async def interactions_for_responses(self, response_ids: Sequence[str]) -> dict[str, str]:
        """Upstream response id -> interaction id, for those stored (the latest on a tie)."""
        ...

    async def responses(self, ids: Sequence[str]) -> dict[str, Any]:
        """Interaction id -> stored response body, for the rows that exist."""
        ...


class ReviewStore(Protocol):
    """What the admin API's interaction routes read: listings and one interaction whole."""

    async def get_interaction(self, interaction_id: str) -> dict[str, Any] | None:
        """One interaction as a plain dict (JSON columns decoded), or None."""
        ...

    async def get_feedback(self, interaction_id: str) -> list[dict[str, Any]]:
        """An interaction's feedback events, oldest first."""
        ...

    async def list_interactions(self, query: InteractionQuery) -> list[dict[str, Any]]:
        """Newest first, after `query.after`, at most `query.limit` rows, each with its
        `feedback_count`."""
        ...

    async def flagged(
        self, window: TimeWindow, flags: Sequence[str], per_flag: int
    ) -> list[dict[str, Any]]:
        """The newest `per_flag` interactions in the window with each of `flags` among their
        quality flags: flag, id, created_at, requested_model; by flag, newest first."""
        ...


class StatsStore(Protocol):
    """The aggregates behind `/admin/stats` and the A/B readouts (admin API and CLI)."""

    async def usage_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        """Per (model, variant): counts by status, cost, tokens, latency percentiles."""
        ...

    async def latency_percentiles(self, window: TimeWindow) -> dict[str, float | None]:
        """Latency percentiles (`PERCENTILES`) over every interaction in the window."""
        ...

    async def feedback_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        """Per (model, variant): feedback events, interactions with feedback, and the
        distribution of the latest value of each `FEEDBACK_DISTRIBUTIONS` field."""
        ...

    async def usage_over_time(self, window: TimeWindow, seconds: int) -> list[dict[str, Any]]:
        """Per `seconds`-long bucket with traffic, oldest first: `bucket` (its start, epoch
        seconds), interactions, error, with_feedback, cost_usd, tokens and `latency_ms`
        percentiles (the console's charts)."""
        ...

    async def overview(self, window: TimeWindow, seconds: int) -> dict[str, Any]:
        """`usage` (as `usage_by_variant`), `latency` (as `latency_percentiles`) and
        `over_time` (as `usage_over_time`) of one window, from one read of the rollups."""
        ...

    async def experiment_figures(self, model: str, window: TimeWindow) -> list[dict[str, Any]]:
        """Per variant of `model` in the window, what an A/B readout needs, aggregated:
        requests, errors; n/total/squares/low/high of latency (`latency_*`), cost (`cost_*`)
        and the latest ratings (`rating_*`); tokens_n/tokens_total; latency p50/p95 and TTFT
        p50 (interpolated); `judged` and `positive` interactions by their latest feedback."""
        ...

    async def experiment_rows(
        self, model: str, window: TimeWindow
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """An A/B readout's inputs: the model's interactions in the window (numbers only) and
        the feedback events on them, oldest first."""
        ...


class ExportSource(Protocol):
    """What an export reads: interactions with their feedback, page by page."""

    async def export_page(
        self, query: ExportQuery, after: Cursor | None, limit: int
    ) -> list[dict[str, Any]]:
        """The next `limit` interactions after `after`, oldest first by (created_at, id), each
        with `feedback`: its events, oldest first. Exporters call this in a loop, so memory
        stays at one page however many rows match, and no transaction is held open between
        pages (the recorder never waits on an export)."""
        ...

    async def export_count(self, query: ExportQuery) -> int:
        """How many interactions `export_page` gives for `query` in all (of a slice, its own
        rows only): an export's total, for its progress."""
        ...


class ExportRuns(Protocol):
    """The `export_runs` table: written by runs, read by the admin API."""

    async def save_export_run(self, run: Mapping[str, Any]) -> None:
        """Insert or update one `export_runs` row (every column of `EXPORT_RUN_COLUMNS`)."""
        ...

    async def export_runs(
        self, job: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Runs newest first, optionally of one job and one status; times as ISO strings."""
        ...

    async def get_export_run(self, run_id: str) -> dict[str, Any] | None: ...


class ExportJobs(ExportSource, ExportRuns, Protocol):
    """What a recorded export run or a named job needs: read, record, and hold its lock."""

    def job_lock(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Hold a lock named `name` while the block runs, if nobody else holds it: yields
        False at once when another process (another replica) has it. PostgreSQL: an advisory
        lock on a connection held for the block; SQLite: a file lock next to the database."""
        ...


class PrivacyStore(Protocol):
    """Forgetting a person, enforcing retention, and the audit log (gateway/privacy/).
    Deletes work in batches of at most `limit` interactions; callers loop."""

    async def delete_subject_batch(self, kind: str, value: str, limit: int) -> tuple[int, int]:
        """Up to `limit` interactions whose `kind` (user or session) is `value`, with their
        feedback: (interactions, feedback) deleted."""
        ...

    async def runs_containing(self, kind: str, subject_hash: str) -> list[dict[str, Any]]:
        """Export runs whose manifest lists the salted hash under `<kind>_hashes`."""
        ...

    async def add_forgotten(self, kind: str, subject_hash: str, at: datetime) -> None: ...

    async def forgotten(self) -> list[dict[str, Any]]:
        """Every forgotten (kind, subject_hash, forgotten_at)."""
        ...

    async def expire_interactions(self, before: datetime, limit: int) -> tuple[int, int]: ...

    async def expire_feedback(self, before: datetime, limit: int) -> int: ...

    async def expire_export_runs(self, before: datetime, limit: int) -> list[dict[str, Any]]:
        """The deleted runs' id and out_dir."""
        ...

    async def expire_audit(self, before: datetime, limit: int) -> int: ...

    async def insert_audit(self, entry: Mapping[str, Any]) -> None: ...

    async def audit_entries(
        self, action: str | None = None, before: Cursor | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first, optionally of one action, strictly before the cursor."""
        ...

    def job_lock(self, name: str) -> AbstractAsyncContextManager[bool]: ...


class TuningStore(Protocol):
    """Fine-tuning runs, model versions and routing overrides (gateway/tuning/)."""

    async def save_tuning_run(self, run: Mapping[str, Any]) -> None:
        """Insert or update one `tuning_runs` row (every column of `TUNING_RUN_COLUMNS`)."""
        ...

    async def tuning_runs(
        self, statuses: Sequence[str] | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first; only those in `statuses` when given."""
        ...

    async def get_tuning_run(self, run_id: str) -> dict[str, Any] | None: ...

    async def save_model_version(self, version: Mapping[str, Any]) -> None:
        """Insert or update one version, keyed by (model, variant)."""
        ...

    async def model_versions(self, model: str | None = None) -> list[dict[str, Any]]: ...

    async def route_overrides(self) -> list[dict[str, Any]]:
        """Every model's override: model, revision, arms, control, updated_at, updated_by."""
        ...

    async def save_route_override(self, row: Mapping[str, Any], expected_revision: int) -> bool:
        """Write if the stored revision is `expected_revision` (0: none); else False."""
        ...

    async def delete_route_override(self, model: str) -> bool: ...

    def job_lock(self, name: str) -> AbstractAsyncContextManager[bool]: ...


class SearchIndex(Protocol):
    """The text-search index's upkeep, off the recorder's path (search.py)."""

    # Whether a batch is CPU of this process (SQLite: a store thread) or of the database
    # server (PostgreSQL): the indexer takes only its own work off the process's load.
    indexes_in_process: bool

    async def index_search(self, limit: int) -> int:
        """Index up to `limit` rows written since the last batch; how many were taken."""
        ...

    async def search_backlog(self, up_to: int | None = None) -> int:
        """How many rows wait to be indexed, counted up to `up_to` (None: all of them)."""
        ...

    def job_lock(self, name: str) -> AbstractAsyncContextManager[bool]: ...


class Store(
    InteractionSink,
    Migratable,
    FeedbackStore,
    ReviewStore,
    StatsStore,
    ExportJobs,
    PrivacyStore,
    TuningStore,
    SearchIndex,
    Protocol,
):
    """Every role: what an engine implements and what the app, the CLI and the benchmark open."""

    engine: str

    async def close(self) -> None: ...


def load_migrations(engine: str) -> list[Migration]:
    """The numbered `NNNN_name.sql` files of one engine, in order. Append-only: never edit one."""
    folder = resources.files("gateway.store") / "migrations" / engine
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    return found
