"""Every query of the store except the recorder's batch insert, written once for all engines.

`SQLQueries` is mixed into each engine. It builds its SQL against the engine's `dialect`
(dialect.py says what differs) and runs it through three primitives the engine provides:
`_fetch` (rows as dicts), `_execute` and `_execute_many` (one transaction). The engine converts
values both ways and turns driver errors into `StoreError`; `Decode` tells it which columns of a
result hold JSON or booleans, for engines that store those as text and integers. An engine
may also compute `_percentiles` its own way (SQLite has no percentile function). Text search
and its index are in search.py; the stats (overview, `/admin/stats`, A/B readouts) in
stats_sql.py.

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
    Cursor,
    ExportQuery,
    InteractionQuery,
    TimeWindow,
)
from gateway.store.search import KEY, RECENT, SHORT_RECENT, is_short


@dataclass(frozen=True)
class Decode:
    """Columns of a result that hold JSON, or booleans."""

    json: frozenset[str] = frozenset()
    bools: frozenset[str] = frozenset()


PLAIN = Decode()
INTERACTION = Decode(JSON_COLUMNS, frozenset({"stream", "usage_estimated"}))
FEEDBACK = Decode(FEEDBACK_JSON_COLUMNS)
EXPORT_RUN = Decode(frozenset({"files", "manifest", "progress"}))
RESPONSE = Decode(frozenset({"response"}))

# The latest non-null value of a feedback field for the interaction `i`.
_LATEST = (
    "(SELECT f.{field} FROM feedback f WHERE f.interaction_id = i.id AND f.{field} IS NOT NULL"
    " ORDER BY f.created_at DESC, f.id DESC LIMIT 1)"
)
_HAS_FEEDBACK = "EXISTS (SELECT 1 FROM feedback f WHERE f.interaction_id = i.id)"
# Up to this many matching feedback events, a feedback filter reads the listing from them.
FEEDBACK_DRIVER_MAX = 2_000


class EngineAccess:
    """What each engine (SQLite, PostgreSQL) provides to the query mixins built on it."""

    dialect: Dialect

    async def _fetch(
        self, sql: str, params: Sequence[Any] = (), decode: Decode = PLAIN
    ) -> list[dict[str, Any]]:
        """Rows as dicts: ids and timestamps as strings, `decode`'s columns as objects."""
        raise NotImplementedError

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    async def _execute_counted(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run the statements in one transaction; the number of rows each one changed."""
        raise NotImplementedError

    # -- what an engine may do its own way ----------------------------------------------
    async def _percentiles(
        self, column: str, source: str, groups: Mapping[str, str], params: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """One row per group (`alias: expression`) with each of `PERCENTILES` of `column` over
        `source` (a FROM ... WHERE ...), by nearest rank. An engine may compute them its way."""
        return await self._fetch(self.dialect.percentiles(column, source, groups), params)

    async def _interpolated_percentiles(
        self, sql: str, params: Sequence[Any]
    ) -> dict[Any, dict[str, float | None]]:
        """For an engine without percentile_cont: `sql` gives (variant, latency_ms, ttft_ms)
        rows; per variant, the readout's interpolated percentiles (`READOUT_PERCENTILES`)."""
        raise NotImplementedError


# An interaction given any feedback event that may have thrown its answer away: the exporter
# decides on the latest values (exporters.history.thrown_away); this only has to miss none.
_THROWN_AWAY = (
    "EXISTS (SELECT 1 FROM feedback f WHERE f.interaction_id = i.id"
    " AND (f.outcome = 'rejected' OR f.thumbs = 'down' OR f.correction IS NOT NULL))"
)


class SQLQueries(EngineAccess):
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
        driver = await self._feedback_driver(query)
        if query.text is not None:
            # The newest rows first, one by one; the search index only for a short page
            # (search.py says why), and never for a needle too short for it.
            short = is_short(query.text)
            scan = SHORT_RECENT if short else RECENT
            rows = await self._fetch(*self._listing(query, driver, scan), INTERACTION)
            if len(rows) < query.limit and not short:
                rows = await self._fetch(*self._listing(query, driver), INTERACTION)
        else:
            rows = await self._fetch(*self._listing(query, driver), INTERACTION)
        for row in rows:
            row.pop(KEY, None)
        return rows[::-1] if query.before is not None else rows

    def _listing(
        self, query: InteractionQuery, driver: tuple[str, Any] | None, recent: int = 0
    ) -> tuple[str, list[Any]]:
        """The listing's SQL; with `recent`, a text search among that many newest rows."""
        d, p = self.dialect, self.dialect.params()
        clauses = self._interaction_filters(query, p)
        if driver is not None:
            condition, value = driver
            clauses.append(
                "i.id IN (SELECT f.interaction_id FROM feedback f"
                f" WHERE {condition.format(p(value))})"
            )
        # Backwards (the previous page): the rows just newer than the cursor, oldest first.
        order = "ASC" if query.before is not None else "DESC"
        ordered = f"ORDER BY i.created_at {order}, i.id {order}"
        source = "interactions i"
        if query.text is not None and recent:
            source = (
                f"(SELECT i.{d.search_key()} AS {KEY}, i.* FROM interactions i"
                f" WHERE {' AND '.join(clauses)} {ordered} LIMIT {p(recent)}) AS i"
            )
            clauses = [d.text_probe(query.text, p)]
        elif query.text is not None:
            clauses.append(d.text_search(query.text, p))
        sql = (
            "SELECT i.*, (SELECT count(*) FROM feedback f WHERE f.interaction_id = i.id)"
            f" AS feedback_count FROM {source} WHERE {' AND '.join(clauses)}"
            f" {ordered} LIMIT {p(query.limit)}"
        )
        return sql, p.values

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
        if query.thumbs is not None:
            clauses.append(f"{_LATEST.format(field='thumbs')} = {p(query.thumbs)}")
        if query.quality_flag is not None:
            clauses.append(d.has_element("i.quality_flags", p(query.quality_flag)))
        for cursor, newer in ((query.after, "<"), (query.before, ">")):
            if cursor is not None:
                edge = f"{p(cursor.created_at)}, {d.uuid(p(cursor.id))}"
                clauses.append(f"(i.created_at, i.id) {newer} ({edge})")
        return clauses

    async def _feedback_driver(self, query: InteractionQuery) -> tuple[str, Any] | None:
        """A condition on feedback events that few events meet, to read the listing from
        them, or None to read it newest first checking each row.

        A filter on the latest feedback values is checked per row; read newest first, a page
        whose rows are rare (a rating nobody gave) reads the whole table to find them (2.8 s
        at 1M rows). Any row it can list has an event that meets the condition, so when few
        events do, the listing reads those events' interactions instead. When many do, rows
        are common and newest first finds a page soon. A bounded count tells which."""
        conditions = []
        for field, operator, value in (
            ("outcome", "=", query.outcome),
            ("rating", ">=", query.min_rating),
            ("thumbs", "=", query.thumbs),
        ):
            if value is not None:
                conditions.append((f"f.{field} {operator} {{}}", value))
        best: tuple[int, str, Any] | None = None
        for template, value in conditions:
            p = self.dialect.params()
            counted = (
                f"SELECT count(*) AS n FROM (SELECT 1 FROM feedback f"
                f" WHERE {template.format(p(value))} LIMIT {p(FEEDBACK_DRIVER_MAX + 1)}) AS c"
            )
            found = int((await self._fetch(counted, p.values))[0]["n"])
            if found <= FEEDBACK_DRIVER_MAX and (best is None or found < best[0]):
                best = (found, template, value)
        return (best[1], best[2]) if best else None

    async def flagged(
        self, window: TimeWindow, flags: Sequence[str], per_flag: int
    ) -> list[dict[str, Any]]:
        d, p = self.dialect, self.dialect.params()
        where = " AND ".join(_window(window, p))
        # One pass over the window for every flag: a query per flag read the whole window
        # again for each flag no row has (6 of 8 passes, ~500 ms for a day at 1M rows).
        ranked = (
            "SELECT f.value AS flag, i.id, i.created_at, i.requested_model, row_number() OVER"
            " (PARTITION BY f.value ORDER BY i.created_at DESC, i.id DESC) AS rn"
            f" FROM interactions i CROSS JOIN {d.array_items('i.quality_flags', 'f')}"
            f" WHERE {where} AND {d.in_array('f.value', p(list(flags)), 'text')}"
        )
        sql = (
            "SELECT flag, id, created_at, requested_model FROM"
            f" ({ranked}) AS r WHERE rn <= {p(per_flag)} ORDER BY flag, created_at DESC, id DESC"
        )
        return await self._fetch(sql, p.values)

    # -- exports --------------------------------------------------------------------------
    async def export_count(self, query: ExportQuery) -> int:
        p = self.dialect.params()
        where = " AND ".join(self._export_filters(query, p))
        sql = f"SELECT count(*) AS n FROM interactions i WHERE {where}"
        rows = await self._fetch(sql, p.values)
        return int(rows[0]["n"])

    async def export_page(
        self, query: ExportQuery, after: Cursor | None, limit: int
    ) -> list[dict[str, Any]]:
        d, p = self.dialect, self.dialect.params()
        clauses = self._export_filters(query, p, rejections=True)
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

    def _export_filters(self, query: ExportQuery, p: Params, rejections: bool = False) -> list[str]:
        """The WHERE clauses of `query`; with `rejections`, a slice's page also takes the rows
        of other slices that may have been thrown away (see ExportQuery.slice)."""
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
        if query.thrown_away:
            clauses.append(_THROWN_AWAY)
        if query.slice is not None:
            part = query.slice
            held = f"{d.slice_of('i.id', p(part.count))} = {p(part.index)}"
            clauses.append(f"({held} OR {_THROWN_AWAY})" if rejections else held)
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
