"""The SQLite store's feedback writes and review queries (mixed into `SQLiteStore`).

Everything runs on the store's one thread, like its other calls. Timestamps are UTC ISO-8601
text, whose string order is time order, so ranges and keyset paging compare text; JSON columns
are text and are searched with `json_each`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from gateway.feedback.event import FEEDBACK_COLUMNS, FEEDBACK_JSON_COLUMNS, Feedback
from gateway.interaction import JSON_COLUMNS
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
    percentile_rank_sql,
    usage_groups,
)

T = TypeVar("T")
_INSERT_FEEDBACK = (
    f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))}) ON CONFLICT DO NOTHING"
)
_CHUNK = 500  # ids per IN (...) list, well under SQLite's limit on bound parameters
_LATEST = (
    "(SELECT f.{field} FROM feedback f WHERE f.interaction_id = i.id AND f.{field} IS NOT NULL"
    " ORDER BY f.created_at DESC, f.id DESC LIMIT 1)"
)


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def interaction_record(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    for name in JSON_COLUMNS:
        if record[name] is not None:
            record[name] = orjson.loads(record[name])
    record["stream"] = bool(record["stream"])
    record["usage_estimated"] = bool(record["usage_estimated"])
    return record


class SQLiteReview:
    if TYPE_CHECKING:

        @property
        def conn(self) -> sqlite3.Connection: ...

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

    # -- feedback ---------------------------------------------------------------------------
    async def insert_feedback(self, rows: Sequence[Feedback]) -> list[str]:
        return await self._run(self._insert_feedback, [row.as_row() for row in rows])

    def _insert_feedback(self, rows: list[tuple[Any, ...]]) -> list[str]:
        params = [_feedback_params(row) for row in rows]
        key_at = FEEDBACK_COLUMNS.index("idempotency_key")
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.executemany(_INSERT_FEEDBACK, params)
            ids = [
                row[0] if row[key_at] is None else self._keyed_id(row[1], row[key_at])
                for row in params
            ]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def _keyed_id(self, interaction_id: str, key: str) -> str:
        row = self.conn.execute(
            "SELECT id FROM feedback WHERE interaction_id = ? AND idempotency_key = ?",
            (interaction_id, key),
        ).fetchone()
        return str(row[0])

    async def interaction_models(
        self, ids: Sequence[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        sql = "SELECT id, requested_model, variant FROM interactions WHERE id"
        rows = await self._run(self._where_in, sql, ids)
        return {row[0]: (row[1], row[2]) for row in rows}

    async def interactions_for_responses(self, response_ids: Sequence[str]) -> dict[str, str]:
        sql = "SELECT response_id, id, created_at FROM interactions WHERE response_id"
        rows = await self._run(self._where_in, sql, response_ids)
        return {row[0]: row[1] for row in sorted(rows, key=lambda r: (r[2], r[1]))}

    async def responses(self, ids: Sequence[str]) -> dict[str, Any]:
        rows = await self._run(
            self._where_in, "SELECT id, response FROM interactions WHERE id", ids
        )
        return {row[0]: orjson.loads(row[1]) if row[1] else None for row in rows}

    def _where_in(self, select: str, values: Sequence[str]) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = []
        for start in range(0, len(values), _CHUNK):
            chunk = list(values[start : start + _CHUNK])
            sql = f"{select} IN ({', '.join('?' * len(chunk))})"
            rows.extend(self.conn.execute(sql, chunk).fetchall())
        return rows

    async def get_feedback(self, interaction_id: str) -> list[dict[str, Any]]:
        return await self._run(self._get_feedback, interaction_id)

    def _get_feedback(self, interaction_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM feedback WHERE interaction_id = ? ORDER BY created_at, id",
            (interaction_id,),
        ).fetchall()
        return [_feedback_record(row) for row in rows]

    # -- exports ----------------------------------------------------------------------------
    async def export_page(
        self, query: ExportQuery, after: Cursor | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self._run(self._export_page, query, after, limit)

    def _export_page(
        self, query: ExportQuery, after: Cursor | None, limit: int
    ) -> list[dict[str, Any]]:
        where, params = _window(query.window)
        clauses = [where]
        for column, values in (
            ("requested_model", query.models),
            ("variant", query.variants),
            ("user", query.users),
            ("endpoint", query.endpoints),
            ("status", query.statuses),
        ):
            if values:
                clauses.append(f"i.{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if query.changed_since is not None:
            since = timestamp(query.changed_since)
            clauses.append(
                "(i.created_at >= ? OR EXISTS (SELECT 1 FROM feedback f"
                " WHERE f.interaction_id = i.id AND f.created_at >= ?))"
            )
            params += [since, since]
        if after is not None:
            clauses.append("(i.created_at, i.id) > (?, ?)")
            params += [timestamp(after.created_at), after.id]
        sql = (
            f"SELECT i.* FROM interactions i WHERE {' AND '.join(clauses)}"
            " ORDER BY i.created_at, i.id LIMIT ?"
        )
        records = [interaction_record(row) for row in self.conn.execute(sql, [*params, limit])]
        events: dict[str, list[dict[str, Any]]] = {}
        select = "SELECT * FROM feedback WHERE interaction_id"
        rows = self._where_in(select, [record["id"] for record in records])
        for row in sorted(rows, key=lambda r: (r["created_at"], r["id"])):
            events.setdefault(row["interaction_id"], []).append(_feedback_record(row))
        for record in records:
            record["feedback"] = events.get(record["id"], [])
        return records

    # -- review -----------------------------------------------------------------------------
    async def list_interactions(self, query: InteractionQuery) -> list[dict[str, Any]]:
        where, params = _where(query)
        sql = (
            "SELECT i.*, (SELECT count(*) FROM feedback f WHERE f.interaction_id = i.id)"
            f" AS feedback_count FROM interactions i WHERE {where}"
            " ORDER BY i.created_at DESC, i.id DESC LIMIT ?"
        )
        rows = await self._run(self._fetch, sql, [*params, query.limit])
        return [interaction_record(row) for row in rows]

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    async def usage_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        where, params = _window(window)
        totals = (
            "SELECT requested_model AS model, variant, count(*) AS interactions,"
            " sum(status = 'success') AS success, sum(status = 'error') AS error,"
            " sum(status = 'client_disconnected') AS client_disconnected,"
            " sum(cost_usd) AS cost_usd, sum(prompt_tokens) AS prompt_tokens,"
            " sum(completion_tokens) AS completion_tokens"
            f" FROM interactions i WHERE {where} GROUP BY requested_model, variant"
            " ORDER BY requested_model, variant"
        )
        rows = await self._run(self._fetch, totals, params)
        latencies = await self._run(self._fetch, _percentiles_sql(where, by_variant=True), params)
        return usage_groups(map(dict, rows), map(dict, latencies))

    async def latency_percentiles(self, window: TimeWindow) -> dict[str, float | None]:
        where, params = _window(window)
        rows = await self._run(self._fetch, _percentiles_sql(where, by_variant=False), params)
        return {name: rows[0][name] if rows else None for name in PERCENTILES}

    async def feedback_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        where, params = _window(window)
        counts = (
            "SELECT i.requested_model AS model, i.variant, count(*) AS events,"
            " count(DISTINCT f.interaction_id) AS interactions"
            f" FROM feedback f JOIN interactions i ON i.id = f.interaction_id WHERE {where}"
            " GROUP BY i.requested_model, i.variant"
        )
        latest = " UNION ALL ".join(
            f"SELECT '{name}' AS field, interaction_id, CAST({name} AS TEXT) AS value,"
            " row_number() OVER (PARTITION BY interaction_id"
            " ORDER BY created_at DESC, id DESC) AS rn"
            f" FROM feedback WHERE {name} IS NOT NULL"
            for name in FEEDBACK_DISTRIBUTIONS
        )
        values = (
            "SELECT i.requested_model AS model, i.variant, l.field, l.value, count(*) AS count"
            f" FROM ({latest}) l JOIN interactions i ON i.id = l.interaction_id"
            f" WHERE l.rn = 1 AND {where} GROUP BY i.requested_model, i.variant, l.field, l.value"
        )
        count_rows = await self._run(self._fetch, counts, params)
        value_rows = await self._run(self._fetch, values, params)
        return feedback_groups(map(dict, count_rows), map(dict, value_rows))


class SQLiteExportRuns:
    """`export_runs` rows and the job lock, for the SQLite store (one host)."""

    if TYPE_CHECKING:
        path: str

        @property
        def conn(self) -> sqlite3.Connection: ...

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def save_export_run(self, run: Mapping[str, Any]) -> None:
        values = []
        for name in EXPORT_RUN_COLUMNS:
            value = run.get(name)
            if isinstance(value, datetime):
                value = timestamp(value)
            elif name in ("files", "manifest") and value is not None:
                value = orjson.dumps(value).decode()
            values.append(value)
        updates = ", ".join(f"{c} = excluded.{c}" for c in EXPORT_RUN_COLUMNS[1:])
        sql = (
            f"INSERT INTO export_runs ({', '.join(EXPORT_RUN_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(EXPORT_RUN_COLUMNS))})"
            f" ON CONFLICT (id) DO UPDATE SET {updates}"
        )
        await self._run(self.conn.execute, sql, values)

    async def export_runs(
        self, job: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        clauses, params = ["1 = 1"], []
        for column, value in (("job", job), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        sql = (
            f"SELECT * FROM export_runs WHERE {' AND '.join(clauses)}"
            " ORDER BY started_at DESC, id DESC LIMIT ?"
        )
        rows = await self._run(self._fetch_all, sql, [*params, limit])
        return [_export_run(row) for row in rows]

    async def get_export_run(self, run_id: str) -> dict[str, Any] | None:
        rows = await self._run(self._fetch_all, "SELECT * FROM export_runs WHERE id = ?", [run_id])
        return _export_run(rows[0]) if rows else None

    def _fetch_all(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    @contextlib.asynccontextmanager
    async def job_lock(self, name: str) -> AsyncIterator[bool]:
        # SQLite serves one host, so a file lock is enough; a thread so the loop never blocks.
        lock_path = f"{self.path}.{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
        handle = await asyncio.to_thread(open, lock_path, "a")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()


def _export_run(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    for name in ("files", "manifest"):
        if run[name] is not None:
            run[name] = orjson.loads(run[name])
    return run


def _feedback_record(row: sqlite3.Row) -> dict[str, Any]:
    event = dict(row)
    for name in FEEDBACK_JSON_COLUMNS:
        if event[name] is not None:
            event[name] = orjson.loads(event[name])
    return event


def _feedback_params(row: tuple[Any, ...]) -> tuple[Any, ...]:
    out = list(row)
    for i, name in enumerate(FEEDBACK_COLUMNS):
        if name == "created_at":
            out[i] = timestamp(out[i])
        elif name in FEEDBACK_JSON_COLUMNS and out[i] is not None:
            out[i] = orjson.dumps(out[i]).decode()
    return tuple(out)


def _window(window: TimeWindow) -> tuple[str, list[Any]]:
    clauses, params = ["1 = 1"], []
    if window.since is not None:
        clauses.append("i.created_at >= ?")
        params.append(timestamp(window.since))
    if window.until is not None:
        clauses.append("i.created_at < ?")
        params.append(timestamp(window.until))
    return " AND ".join(clauses), params


def _where(query: InteractionQuery) -> tuple[str, list[Any]]:
    where, params = _window(query.window)
    clauses = [where]

    def add(sql: str, *values: Any) -> None:
        clauses.append(sql)
        params.extend(values)

    for column, value in (
        ("requested_model", query.model),
        ("variant", query.variant),
        ("status", query.status),
        ("user", query.user),
        ("session", query.session),
    ):
        if value is not None:
            add(f"i.{column} = ?", value)
    for key, value in query.tags.items():
        add("EXISTS (SELECT 1 FROM json_each(i.tags) WHERE key = ? AND value = ?)", key, value)
    if query.has_feedback is not None:
        exists = "EXISTS (SELECT 1 FROM feedback f WHERE f.interaction_id = i.id)"
        add(exists if query.has_feedback else f"NOT {exists}")
    if query.outcome is not None:
        add(_LATEST.format(field="outcome") + " = ?", query.outcome)
    if query.min_rating is not None:
        add(_LATEST.format(field="rating") + " >= ?", query.min_rating)
    if query.quality_flag is not None:
        add("EXISTS (SELECT 1 FROM json_each(i.quality_flags) WHERE value = ?)", query.quality_flag)
    if query.text is not None:
        pattern = like_pattern(query.text)
        add("(i.request LIKE ? ESCAPE '\\' OR i.response LIKE ? ESCAPE '\\')", pattern, pattern)
    if query.after is not None:
        add("(i.created_at, i.id) < (?, ?)", timestamp(query.after.created_at), query.after.id)
    return " AND ".join(clauses), params


def _percentiles_sql(where: str, *, by_variant: bool) -> str:
    """Nearest-rank percentiles with window functions (SQLite has no percentile aggregate)."""
    group = "requested_model, variant" if by_variant else ""
    partition = f"PARTITION BY {group}" if by_variant else ""
    picks = ", ".join(
        f"max(CASE WHEN rn = {percentile_rank_sql('n', percent)} THEN latency_ms END) AS {name}"
        for name, percent in PERCENTILES.items()
    )
    ranked = (
        f"SELECT {group + ',' if group else ''} latency_ms,"
        f" row_number() OVER ({partition} ORDER BY latency_ms) AS rn,"
        f" count(*) OVER ({partition}) AS n"
        f" FROM interactions i WHERE latency_ms IS NOT NULL AND {where}"
    )
    columns = "requested_model AS model, variant, " if by_variant else ""
    grouping = f" GROUP BY {group}" if by_variant else ""
    return f"SELECT {columns}{picks} FROM ({ranked}){grouping}"
