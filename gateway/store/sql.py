"""Every query of the store except the recorder's batch insert, written once for all engines.

`SQLQueries` is mixed into each engine. It builds its SQL against the engine's `dialect`
(dialect.py says what differs) and runs it through three primitives the engine provides:
`_fetch` (rows as dicts), `_execute` and `_execute_many` (one transaction). The engine converts
values both ways and turns driver errors into `StoreError`; `Decode` tells it which columns of a
result hold JSON or booleans, for engines that store those as text and integers.

Adding a filter: one clause in `_interaction_filters` (or `_export_filters`), plus the field on
`InteractionQuery` / `ExportQuery`; if the engines need different SQL for it, one method on
`Dialect`. Adding an engine: a `Dialect` subclass and the three primitives.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.records.feedback import FEEDBACK_COLUMNS, FEEDBACK_JSON_COLUMNS, Feedback
from gateway.records.interaction import JSON_COLUMNS
from gateway.store.base import EXPORT_RUN_COLUMNS
from gateway.store.dialect import Dialect, Params
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


@dataclass(frozen=True)
class Decode:
    """Columns of a result that hold JSON, or booleans."""

    json: frozenset[str] = frozenset()
    bools: frozenset[str] = frozenset()


PLAIN = Decode()
INTERACTION = Decode(JSON_COLUMNS, frozenset({"stream", "usage_estimated"}))
FEEDBACK = Decode(FEEDBACK_JSON_COLUMNS)
EXPORT_RUN = Decode(frozenset({"files", "manifest"}))
RESPONSE = Decode(frozenset({"response"}))

# The latest non-null value of a feedback field for the interaction `i`.
_LATEST = (
    "(SELECT f.{field} FROM feedback f WHERE f.interaction_id = i.id AND f.{field} IS NOT NULL"
    " ORDER BY f.created_at DESC, f.id DESC LIMIT 1)"
)
_HAS_FEEDBACK = "EXISTS (SELECT 1 FROM feedback f WHERE f.interaction_id = i.id)"
_BY_VARIANT = {"model": "requested_model", "variant": "variant"}


class SQLQueries:
    dialect: Dialect

    # -- what each engine provides --------------------------------------------------------
    async def _fetch(
        self, sql: str, params: Sequence[Any] = (), decode: Decode = PLAIN
    ) -> list[dict[str, Any]]:
        """Rows as dicts: ids and timestamps as strings, `decode`'s columns as objects."""
        raise NotImplementedError

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    async def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """`sql` once per row, all in one transaction."""
        raise NotImplementedError

    # -- interactions ---------------------------------------------------------------------
    async def get_interaction(self, interaction_id: str) -> dict[str, Any] | None:
        if not _is_uuid(interaction_id):
            return None
        p = self.dialect.params()
        sql = f"SELECT * FROM interactions WHERE id = {p(interaction_id)}"
        rows = await self._fetch(sql, p.values, INTERACTION)
        return rows[0] if rows else None

    # -- feedback -------------------------------------------------------------------------
    async def insert_feedback(self, rows: Sequence[Feedback]) -> list[str]:
        insert = self.dialect.insert_ignoring("feedback", FEEDBACK_COLUMNS)
        await self._execute_many(insert, [row.as_row() for row in rows])
        keyed = [row for row in rows if row.idempotency_key is not None]
        first: dict[tuple[str, str], str] = {}
        if keyed:
            # A retried row was skipped: hand back the id stored under its key.
            d, p = self.dialect, self.dialect.params()
            ids, keys = p([r.interaction_id for r in keyed]), p([r.idempotency_key for r in keyed])
            sql = (
                "SELECT interaction_id, idempotency_key, id FROM feedback WHERE"
                f" {d.in_array('interaction_id', ids, 'uuid')}"
                f" AND {d.in_array('idempotency_key', keys, 'text')}"
            )
            for found in await self._fetch(sql, p.values):
                first[(found["interaction_id"], found["idempotency_key"])] = found["id"]
        return [
            row.id
            if row.idempotency_key is None
            else first[(row.interaction_id, row.idempotency_key)]
            for row in rows
        ]

    async def interaction_models(
        self, ids: Sequence[str], made_by: str | None = None
    ) -> dict[str, tuple[str | None, str | None]]:
        columns = "id, requested_model, variant, api_key_name"
        rows = await self._where_in(columns, "id", ids, "uuid")
        return {
            row["id"]: (row["requested_model"], row["variant"])
            for row in rows
            if made_by is None or row["api_key_name"] == made_by
        }

    async def interactions_for_responses(self, response_ids: Sequence[str]) -> dict[str, str]:
        rows = await self._where_in("response_id, id", "response_id", response_ids, "text")
        return {row["response_id"]: row["id"] for row in rows}  # later rows win: the latest

    async def responses(self, ids: Sequence[str]) -> dict[str, Any]:
        rows = await self._where_in("id, response", "id", ids, "uuid")
        return {row["id"]: row["response"] for row in rows}

    async def _where_in(
        self, columns: str, key: str, values: Sequence[str], element: str
    ) -> list[dict[str, Any]]:
        """Interactions whose `key` is one of `values`, oldest first."""
        if not values:
            return []
        p = self.dialect.params()
        sql = (
            f"SELECT {columns} FROM interactions"
            f" WHERE {self.dialect.in_array(key, p(list(values)), element)}"
            " ORDER BY created_at, id"
        )
        return await self._fetch(sql, p.values, RESPONSE)

    async def get_feedback(self, interaction_id: str) -> list[dict[str, Any]]:
        if not _is_uuid(interaction_id):
            return []
        p = self.dialect.params()
        sql = (
            f"SELECT * FROM feedback WHERE interaction_id = {p(interaction_id)}"
            " ORDER BY created_at, id"
        )
        return await self._fetch(sql, p.values, FEEDBACK)

    # -- review ---------------------------------------------------------------------------
    async def list_interactions(self, query: InteractionQuery) -> list[dict[str, Any]]:
        p = self.dialect.params()
        where = " AND ".join(self._interaction_filters(query, p))
        sql = (
            "SELECT i.*, (SELECT count(*) FROM feedback f WHERE f.interaction_id = i.id)"
            f" AS feedback_count FROM interactions i WHERE {where}"
            f" ORDER BY i.created_at DESC, i.id DESC LIMIT {p(query.limit)}"
        )
        return await self._fetch(sql, p.values, INTERACTION)

    def _interaction_filters(self, query: InteractionQuery, p: Params) -> list[str]:
        """The review API's filters: every one of them, for every engine."""
        d = self.dialect
        clauses = _window(query.window, p)
        for column, value in (
            ("requested_model", query.model),
            ("variant", query.variant),
            ("status", query.status),
            (d.quote("user"), query.user),
            ("session", query.session),
        ):
            if value is not None:
                clauses.append(f"i.{column} = {p(value)}")
        if query.tags:
            clauses.append(d.has_pairs("i.tags", query.tags, p))
        if query.has_feedback is not None:
            clauses.append(_HAS_FEEDBACK if query.has_feedback else f"NOT {_HAS_FEEDBACK}")
        if query.outcome is not None:
            clauses.append(f"{_LATEST.format(field='outcome')} = {p(query.outcome)}")
        if query.min_rating is not None:
            clauses.append(f"{_LATEST.format(field='rating')} >= {p(query.min_rating)}")
        if query.quality_flag is not None:
            clauses.append(d.has_element("i.quality_flags", p(query.quality_flag)))
        if query.text is not None:
            pattern = p(like_pattern(query.text))
            request, response = (d.contains_text(c, pattern) for c in ("i.request", "i.response"))
            clauses.append(f"({request} OR {response})")
        if query.after is not None:
            after = f"{p(query.after.created_at)}, {d.uuid(p(query.after.id))}"
            clauses.append(f"(i.created_at, i.id) < ({after})")
        return clauses

    # -- stats ----------------------------------------------------------------------------
    async def usage_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        d, p = self.dialect, self.dialect.params()
        where = " AND ".join(_window(window, p))
        counts = ", ".join(
            f"{d.count_if(f'status = {status!r}')} AS {status}"
            for status in ("success", "error", "client_disconnected")
        )
        totals = (
            f"SELECT requested_model AS model, variant, count(*) AS interactions, {counts},"
            " sum(cost_usd) AS cost_usd, CAST(sum(prompt_tokens) AS BIGINT) AS prompt_tokens,"
            " CAST(sum(completion_tokens) AS BIGINT) AS completion_tokens"
            f" FROM interactions i WHERE {where} GROUP BY requested_model, variant"
            " ORDER BY requested_model, variant"
        )
        rows = await self._fetch(totals, p.values)
        latencies = await self._fetch(_latency_sql(d, where, _BY_VARIANT), p.values)
        return usage_groups(rows, latencies)

    async def usage_over_time(self, window: TimeWindow, seconds: int) -> list[dict[str, Any]]:
        d, p = self.dialect, self.dialect.params()
        where = " AND ".join(_window(window, p))
        bucket = d.time_bucket("i.created_at", seconds)
        errors = d.count_if("status = 'error'")
        totals = (
            f"SELECT {bucket} AS bucket, count(*) AS interactions, {errors} AS error,"
            f" {d.count_if(_HAS_FEEDBACK)} AS with_feedback, sum(cost_usd) AS cost_usd,"
            " CAST(sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) AS BIGINT)"
            f" AS tokens FROM interactions i WHERE {where} GROUP BY 1 ORDER BY 1"
        )
        rows = await self._fetch(totals, p.values)
        latencies = await self._fetch(_latency_sql(d, where, {"bucket": bucket}), p.values)
        by_bucket = {row["bucket"]: row for row in latencies}
        return [
            {**row, "latency_ms": {k: by_bucket.get(row["bucket"], {}).get(k) for k in PERCENTILES}}
            for row in rows
        ]

    async def latency_percentiles(self, window: TimeWindow) -> dict[str, float | None]:
        p = self.dialect.params()
        where = " AND ".join(_window(window, p))
        rows = await self._fetch(_latency_sql(self.dialect, where, {}), p.values)
        return {name: rows[0][name] if rows else None for name in PERCENTILES}

    async def feedback_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        p = self.dialect.params()
        where = " AND ".join(_window(window, p))
        counts = (
            "SELECT i.requested_model AS model, i.variant, count(*) AS events,"
            " count(DISTINCT f.interaction_id) AS interactions"
            f" FROM feedback f JOIN interactions i ON i.id = f.interaction_id WHERE {where}"
            " GROUP BY i.requested_model, i.variant"
        )
        # Each interaction's latest value of each field, ranked among the feedback on the
        # window's interactions only: ranking the whole feedback table first took seconds.
        q = self.dialect.params()  # the window is bound once per part, in the text's order
        latest = " UNION ALL ".join(
            f"SELECT i.requested_model AS model, i.variant, '{name}' AS field,"
            f" CAST(f.{name} AS TEXT) AS value, row_number() OVER (PARTITION BY f.interaction_id"
            " ORDER BY f.created_at DESC, f.id DESC) AS rn"
            " FROM feedback f JOIN interactions i ON i.id = f.interaction_id"
            f" WHERE f.{name} IS NOT NULL AND {' AND '.join(_window(window, q))}"
            for name in FEEDBACK_DISTRIBUTIONS
        )
        values = (
            "SELECT model, variant, field, value, count(*) AS count"
            f" FROM ({latest}) l WHERE l.rn = 1 GROUP BY model, variant, field, value"
        )
        count_rows = await self._fetch(counts, p.values)
        value_rows = await self._fetch(values, q.values)
        return feedback_groups(count_rows, value_rows)

    async def experiment_rows(
        self, model: str, window: TimeWindow
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        p = self.dialect.params()
        where = " AND ".join([f"i.requested_model = {p(model)}", *_window(window, p)])
        interactions = await self._fetch(
            "SELECT i.id, i.variant, i.status, i.latency_ms, i.ttft_ms, i.cost_usd,"
            f" i.prompt_tokens, i.completion_tokens FROM interactions i WHERE {where}",
            p.values,
        )
        events = await self._fetch(
            "SELECT f.interaction_id, f.rating, f.thumbs, f.outcome FROM feedback f"
            f" JOIN interactions i ON i.id = f.interaction_id WHERE {where}"
            " ORDER BY f.created_at",
            p.values,
        )
        return interactions, events

    # -- exports --------------------------------------------------------------------------
    async def export_page(
        self, query: ExportQuery, after: Cursor | None, limit: int
    ) -> list[dict[str, Any]]:
        d, p = self.dialect, self.dialect.params()
        clauses = self._export_filters(query, p)
        if after is not None:
            clauses.append(f"(i.created_at, i.id) > ({p(after.created_at)}, {d.uuid(p(after.id))})")
        sql = (
            f"SELECT i.* FROM interactions i WHERE {' AND '.join(clauses)}"
            f" ORDER BY i.created_at, i.id LIMIT {p(limit)}"
        )
        records = await self._fetch(sql, p.values, INTERACTION)
        events: dict[str, list[dict[str, Any]]] = {}
        if records:
            p = d.params()
            ids = p([record["id"] for record in records])
            feedback = (
                f"SELECT * FROM feedback WHERE {d.in_array('interaction_id', ids, 'uuid')}"
                " ORDER BY created_at, id"
            )
            for event in await self._fetch(feedback, p.values, FEEDBACK):
                events.setdefault(event["interaction_id"], []).append(event)
        for record in records:
            record["feedback"] = events.get(record["id"], [])
        return records

    def _export_filters(self, query: ExportQuery, p: Params) -> list[str]:
        d = self.dialect
        clauses = _window(query.window, p)
        for column, values in (
            ("requested_model", query.models),
            ("variant", query.variants),
            (d.quote("user"), query.users),
            ("endpoint", query.endpoints),
            ("status", query.statuses),
        ):
            if values:
                clauses.append(d.in_array(f"i.{column}", p(list(values)), "text"))
        if query.changed_since is not None:
            since = p(query.changed_since)
            clauses.append(
                f"(i.created_at >= {since} OR EXISTS (SELECT 1 FROM feedback f"
                f" WHERE f.interaction_id = i.id AND f.created_at >= {since}))"
            )
        return clauses

    async def save_export_run(self, run: Mapping[str, Any]) -> None:
        values = [run.get(name) for name in EXPORT_RUN_COLUMNS]
        values[EXPORT_RUN_COLUMNS.index("files")] = run.get("files") or []
        await self._execute(self.dialect.upsert("export_runs", EXPORT_RUN_COLUMNS, "id"), values)

    async def export_runs(
        self, job: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        p = self.dialect.params()
        clauses = ["1 = 1"]
        for column, value in (("job", job), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = {p(value)}")
        sql = (
            f"SELECT * FROM export_runs WHERE {' AND '.join(clauses)}"
            f" ORDER BY started_at DESC, id DESC LIMIT {p(limit)}"
        )
        return await self._fetch(sql, p.values, EXPORT_RUN)

    async def get_export_run(self, run_id: str) -> dict[str, Any] | None:
        if not _is_uuid(run_id):
            return None
        p = self.dialect.params()
        rows = await self._fetch(
            f"SELECT * FROM export_runs WHERE id = {p(run_id)}", p.values, EXPORT_RUN
        )
        return rows[0] if rows else None


def _is_uuid(value: str) -> bool:
    """Ids are UUIDs; anything else names no row (and PostgreSQL would refuse to compare it)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _window(window: TimeWindow, p: Params) -> list[str]:
    clauses = ["1 = 1"]
    if window.since is not None:
        clauses.append(f"i.created_at >= {p(window.since)}")
    if window.until is not None:
        clauses.append(f"i.created_at < {p(window.until)}")
    return clauses


def _latency_sql(dialect: Dialect, where: str, groups: Mapping[str, str]) -> str:
    source = f"interactions i WHERE latency_ms IS NOT NULL AND {where}"
    return dialect.percentiles("latency_ms", source, groups)
