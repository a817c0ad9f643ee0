"""The PostgreSQL store's feedback writes and review queries (mixed into `PostgresStore`).

Idiomatic PostgreSQL where it helps: `= ANY($1)` arrays instead of long IN lists, `@>` on the
GIN-indexed tags, `?` for a quality flag, `DISTINCT ON` for the latest value of a field, and
`percentile_disc`, which is the same nearest-rank percentile the SQLite engine computes by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC
from typing import Any

import asyncpg

from gateway.errors import StoreError
from gateway.feedback.event import FEEDBACK_COLUMNS, Feedback
from gateway.store.base import EXPORT_RUN_COLUMNS
from gateway.store.queries import (
    FEEDBACK_DISTRIBUTIONS,
    PERCENTILES,
    Cursor,
    ExportQuery,
    InteractionQuery,
    TimeWindow,
    feedback_groups,
    like_pattern,
    usage_groups,
)

_INSERT_FEEDBACK = (
    f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)})"
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(FEEDBACK_COLUMNS) + 1))})"
    " ON CONFLICT DO NOTHING"
)
_KEYED_IDS = (
    "SELECT f.interaction_id, f.idempotency_key, f.id FROM feedback f"
    " JOIN unnest($1::uuid[], $2::text[]) AS k(interaction_id, idempotency_key)"
    " USING (interaction_id, idempotency_key)"
)
_LATEST = (
    "(SELECT f.{field} FROM feedback f WHERE f.interaction_id = i.id AND f.{field} IS NOT NULL"
    " ORDER BY f.created_at DESC, f.id DESC LIMIT 1)"
)
_PICKS = ", ".join(
    f"percentile_disc({percent / 100}) WITHIN GROUP (ORDER BY latency_ms) AS {name}"
    for name, percent in PERCENTILES.items()
)
_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def interaction_record(row: asyncpg.Record) -> dict[str, Any]:
    record = dict(row)
    record["id"] = str(record["id"])
    record["created_at"] = record["created_at"].astimezone(UTC).isoformat()
    return record


@contextlib.asynccontextmanager
async def _store_errors(what: str) -> AsyncIterator[None]:
    try:
        yield
    except _ERRORS as exc:
        raise StoreError(f"postgres {what} failed: {exc}") from exc


class PostgresReview:
    _pool: asyncpg.Pool

    # -- feedback ---------------------------------------------------------------------------
    async def insert_feedback(self, rows: Sequence[Feedback]) -> list[str]:
        params = [_feedback_params(row) for row in rows]
        keyed = [row for row in rows if row.idempotency_key is not None]
        async with (
            _store_errors("feedback insert"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            await conn.executemany(_INSERT_FEEDBACK, params)
            found = await conn.fetch(
                _KEYED_IDS,
                [row.interaction_id for row in keyed],
                [row.idempotency_key for row in keyed],
            )
        first = {(str(r[0]), r[1]): str(r[2]) for r in found}
        return [
            row.id
            if row.idempotency_key is None
            else first[(row.interaction_id, row.idempotency_key)]
            for row in rows
        ]

    async def interaction_models(
        self, ids: Sequence[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        sql = "SELECT id, requested_model, variant FROM interactions WHERE id = ANY($1::uuid[])"
        async with _store_errors("lookup"):
            rows = await self._pool.fetch(sql, list(ids))
        return {str(row[0]): (row[1], row[2]) for row in rows}

    async def interactions_for_responses(self, response_ids: Sequence[str]) -> dict[str, str]:
        sql = (
            "SELECT response_id, id FROM interactions WHERE response_id = ANY($1::text[])"
            " ORDER BY created_at, id"
        )
        async with _store_errors("lookup"):
            rows = await self._pool.fetch(sql, list(response_ids))
        return {row[0]: str(row[1]) for row in rows}  # later rows win: the latest

    async def responses(self, ids: Sequence[str]) -> dict[str, Any]:
        sql = "SELECT id, response FROM interactions WHERE id = ANY($1::uuid[])"
        async with _store_errors("lookup"):
            return {str(row[0]): row[1] for row in await self._pool.fetch(sql, list(ids))}

    async def get_feedback(self, interaction_id: str) -> list[dict[str, Any]]:
        sql = "SELECT * FROM feedback WHERE interaction_id = $1 ORDER BY created_at, id"
        async with _store_errors("feedback read"):
            rows = await self._pool.fetch(sql, interaction_id)
        return [_feedback_record(row) for row in rows]

    # -- exports ----------------------------------------------------------------------------
    async def export_page(
        self, query: ExportQuery, after: Cursor | None, limit: int
    ) -> list[dict[str, Any]]:
        p = _Params()
        clauses = _window_clauses(query.window, p)
        for column, values in (
            ("requested_model", query.models),
            ("variant", query.variants),
            ('"user"', query.users),
            ("endpoint", query.endpoints),
            ("status", query.statuses),
        ):
            if values:
                clauses.append(f"i.{column} = ANY({p(list(values))}::text[])")
        if query.changed_since is not None:
            since = p(query.changed_since)
            clauses.append(
                f"(i.created_at >= {since} OR EXISTS (SELECT 1 FROM feedback f"
                f" WHERE f.interaction_id = i.id AND f.created_at >= {since}))"
            )
        if after is not None:
            clauses.append(f"(i.created_at, i.id) > ({p(after.created_at)}, {p(after.id)}::uuid)")
        sql = (
            f"SELECT i.* FROM interactions i WHERE {' AND '.join(clauses)}"
            f" ORDER BY i.created_at, i.id LIMIT {p(limit)}"
        )
        feedback_sql = (
            "SELECT * FROM feedback WHERE interaction_id = ANY($1::uuid[]) ORDER BY created_at, id"
        )
        async with _store_errors("export read"), self._pool.acquire() as conn:
            records = [interaction_record(row) for row in await conn.fetch(sql, *p.values)]
            rows = await conn.fetch(feedback_sql, [record["id"] for record in records])
        events: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            event = _feedback_record(row)
            events.setdefault(event["interaction_id"], []).append(event)
        for record in records:
            record["feedback"] = events.get(record["id"], [])
        return records

    # -- review -----------------------------------------------------------------------------
    async def list_interactions(self, query: InteractionQuery) -> list[dict[str, Any]]:
        where, params = _where(query)
        params.append(query.limit)
        sql = (
            "SELECT i.*, (SELECT count(*) FROM feedback f WHERE f.interaction_id = i.id)"
            f" AS feedback_count FROM interactions i WHERE {where}"
            f" ORDER BY i.created_at DESC, i.id DESC LIMIT ${len(params)}"
        )
        async with _store_errors("query"):
            rows = await self._pool.fetch(sql, *params)
        return [interaction_record(row) for row in rows]

    async def usage_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        where, params = _window(window)
        totals = (
            "SELECT requested_model AS model, variant, count(*) AS interactions,"
            " count(*) FILTER (WHERE status = 'success') AS success,"
            " count(*) FILTER (WHERE status = 'error') AS error,"
            " count(*) FILTER (WHERE status = 'client_disconnected') AS client_disconnected,"
            " sum(cost_usd) AS cost_usd, sum(prompt_tokens)::bigint AS prompt_tokens,"
            " sum(completion_tokens)::bigint AS completion_tokens"
            f" FROM interactions i WHERE {where} GROUP BY requested_model, variant"
            " ORDER BY requested_model, variant"
        )
        latencies = (
            f"SELECT requested_model AS model, variant, {_PICKS} FROM interactions i"
            f" WHERE latency_ms IS NOT NULL AND {where} GROUP BY requested_model, variant"
        )
        async with _store_errors("query"):
            rows = await self._pool.fetch(totals, *params)
            latency_rows = await self._pool.fetch(latencies, *params)
        return usage_groups(map(dict, rows), map(dict, latency_rows))

    async def latency_percentiles(self, window: TimeWindow) -> dict[str, float | None]:
        where, params = _window(window)
        sql = f"SELECT {_PICKS} FROM interactions i WHERE latency_ms IS NOT NULL AND {where}"
        async with _store_errors("query"):
            row = await self._pool.fetchrow(sql, *params)
        return {name: row[name] if row else None for name in PERCENTILES}

    async def feedback_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        where, params = _window(window)
        counts = (
            "SELECT i.requested_model AS model, i.variant, count(*) AS events,"
            " count(DISTINCT f.interaction_id) AS interactions"
            f" FROM feedback f JOIN interactions i ON i.id = f.interaction_id WHERE {where}"
            " GROUP BY i.requested_model, i.variant"
        )
        latest = " UNION ALL ".join(
            f"(SELECT DISTINCT ON (interaction_id) '{name}' AS field, interaction_id,"
            f" {name}::text AS value FROM feedback WHERE {name} IS NOT NULL"
            " ORDER BY interaction_id, created_at DESC, id DESC)"
            for name in FEEDBACK_DISTRIBUTIONS
        )
        values = (
            "SELECT i.requested_model AS model, i.variant, l.field, l.value, count(*) AS count"
            f" FROM ({latest}) l JOIN interactions i ON i.id = l.interaction_id"
            f" WHERE {where} GROUP BY i.requested_model, i.variant, l.field, l.value"
        )
        async with _store_errors("query"):
            count_rows = await self._pool.fetch(counts, *params)
            value_rows = await self._pool.fetch(values, *params)
        return feedback_groups(map(dict, count_rows), map(dict, value_rows))


class PostgresExportRuns:
    """`export_runs` rows and the job lock, for the PostgreSQL store (many replicas)."""

    _pool: asyncpg.Pool

    async def save_export_run(self, run: Mapping[str, Any]) -> None:
        columns = ", ".join(EXPORT_RUN_COLUMNS)
        values = ", ".join(f"${i}" for i in range(1, len(EXPORT_RUN_COLUMNS) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in EXPORT_RUN_COLUMNS[1:])
        sql = (
            f"INSERT INTO export_runs ({columns}) VALUES ({values})"
            f" ON CONFLICT (id) DO UPDATE SET {updates}"
        )
        params = [run.get(name) for name in EXPORT_RUN_COLUMNS]
        params[EXPORT_RUN_COLUMNS.index("files")] = run.get("files") or []
        async with _store_errors("export run write"):
            await self._pool.execute(sql, *params)

    async def export_runs(
        self, job: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        p = _Params()
        clauses = ["TRUE"]
        if job is not None:
            clauses.append(f"job = {p(job)}")
        if status is not None:
            clauses.append(f"status = {p(status)}")
        sql = (
            f"SELECT * FROM export_runs WHERE {' AND '.join(clauses)}"
            f" ORDER BY started_at DESC, id DESC LIMIT {p(limit)}"
        )
        async with _store_errors("export run read"):
            rows = await self._pool.fetch(sql, *p.values)
        return [_export_run(row) for row in rows]

    async def get_export_run(self, run_id: str) -> dict[str, Any] | None:
        try:
            uuid.UUID(run_id)
        except ValueError:
            return None
        async with _store_errors("export run read"):
            row = await self._pool.fetchrow("SELECT * FROM export_runs WHERE id = $1", run_id)
        return None if row is None else _export_run(row)

    @contextlib.asynccontextmanager
    async def job_lock(self, name: str) -> AsyncIterator[bool]:
        # A session-level advisory lock lives as long as its connection: holding the
        # connection for the run means a crashed runner releases it by disconnecting.
        key = int.from_bytes(hashlib.sha256(f"flywheel-job:{name}".encode()).digest()[:8], "big")
        key -= 1 << 63 if key >= 1 << 63 else 0
        async with self._pool.acquire() as conn:
            acquired = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
            try:
                yield bool(acquired)
            finally:
                if acquired:
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)


def _export_run(row: asyncpg.Record) -> dict[str, Any]:
    run = dict(row)
    run["id"] = str(run["id"])
    for name in ("started_at", "finished_at", "watermark"):
        if run[name] is not None:
            run[name] = run[name].astimezone(UTC).isoformat()
    return run


def _feedback_record(row: asyncpg.Record) -> dict[str, Any]:
    event = dict(row)
    event["id"], event["interaction_id"] = str(event["id"]), str(event["interaction_id"])
    event["created_at"] = event["created_at"].astimezone(UTC).isoformat()
    return event


def _feedback_params(row: Feedback) -> tuple[Any, ...]:
    # text cannot hold U+0000 in PostgreSQL (see postgres._without_nul); JSON goes through
    # the jsonb codec, which already replaces it.
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row.as_row())


class _Params:
    """Numbered placeholders ($1, $2...) handed out as values are added."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _window_clauses(window: TimeWindow, p: _Params) -> list[str]:
    clauses = ["TRUE"]
    if window.since is not None:
        clauses.append(f"i.created_at >= {p(window.since)}")
    if window.until is not None:
        clauses.append(f"i.created_at < {p(window.until)}")
    return clauses


def _window(window: TimeWindow) -> tuple[str, list[Any]]:
    p = _Params()
    return " AND ".join(_window_clauses(window, p)), p.values


def _where(query: InteractionQuery) -> tuple[str, list[Any]]:
    p = _Params()
    clauses = _window_clauses(query.window, p)
    for column, value in (
        ("requested_model", query.model),
        ("variant", query.variant),
        ("status", query.status),
        ('"user"', query.user),
        ("session", query.session),
    ):
        if value is not None:
            clauses.append(f"i.{column} = {p(value)}")
    if query.tags:
        clauses.append(f"i.tags @> {p(dict(query.tags))}::jsonb")
    if query.has_feedback is not None:
        exists = "EXISTS (SELECT 1 FROM feedback f WHERE f.interaction_id = i.id)"
        clauses.append(exists if query.has_feedback else f"NOT {exists}")
    if query.outcome is not None:
        clauses.append(f"{_LATEST.format(field='outcome')} = {p(query.outcome)}")
    if query.min_rating is not None:
        clauses.append(f"{_LATEST.format(field='rating')} >= {p(query.min_rating)}")
    if query.quality_flag is not None:
        clauses.append(f"i.quality_flags ? {p(query.quality_flag)}")
    if query.text is not None:
        pattern = p(like_pattern(query.text))
        clauses.append(f"(i.request::text ILIKE {pattern} OR i.response::text ILIKE {pattern})")
    if query.after is not None:
        after = query.after
        clauses.append(f"(i.created_at, i.id) < ({p(after.created_at)}, {p(after.id)}::uuid)")
    return " AND ".join(clauses), p.values
