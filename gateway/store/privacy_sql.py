"""The privacy queries (forgetting, retention, the audit log), written once for all engines.

Mixed into each engine next to `SQLQueries` (sql.py), on the same primitives plus one more,
`_execute_counted`: several statements in one transaction, each one's row count.

Deletes go in batches of at most `limit` interactions, each batch its own short transaction:
PostgreSQL never holds many row locks at once, and SQLite (one writer) makes the recorder wait
at most one batch. The ids of a batch are read first and deleted by id, so the interactions
and their feedback leave together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.store.dialect import Params
from gateway.store.queries import Cursor
from gateway.store.sql import Decode, EngineAccess

AUDIT_COLUMNS = ("id", "created_at", "actor", "action", "target", "status", "detail")
FORGOTTEN_COLUMNS = ("subject_hash", "kind", "forgotten_at")
AUDIT = Decode(frozenset({"detail"}))
# Who a forget names, by the column that holds it.
SUBJECT_COLUMNS = {"user": "user", "session": "session"}


class PrivacyQueries(EngineAccess):
    # -- forgetting -----------------------------------------------------------------------
    async def delete_subject_batch(self, kind: str, value: str, limit: int) -> tuple[int, int]:
        """Delete up to `limit` interactions of one user (or session), with their feedback:
        (interactions, feedback) deleted. Call until it deletes no interaction."""
        p = self.dialect.params()
        column = self.dialect.quote(SUBJECT_COLUMNS[kind])
        where = f"{column} = {p(value)}"
        return await self._delete_interactions(where, p, limit, ordered=False)

    async def runs_containing(self, kind: str, subject_hash: str) -> list[dict[str, Any]]:
        """Export runs whose manifest lists this salted hash among its users (or sessions)."""
        p = self.dialect.params()
        has = self.dialect.json_path_has("manifest", f"{kind}_hashes", p(subject_hash))
        sql = (
            "SELECT id, job, format, status, started_at, finished_at, out_dir FROM export_runs"
            f" WHERE {has} ORDER BY started_at, id"
        )
        return await self._fetch(sql, p.values)

    async def add_forgotten(self, kind: str, subject_hash: str, at: datetime) -> None:
        sql = self.dialect.upsert("forgotten", FORGOTTEN_COLUMNS, "kind, subject_hash")
        await self._execute(sql, [subject_hash, kind, at])

    async def forgotten(self) -> list[dict[str, Any]]:
        """Every (kind, subject_hash, forgotten_at) forgotten so far."""
        return await self._fetch("SELECT kind, subject_hash, forgotten_at FROM forgotten")

    # -- retention ------------------------------------------------------------------------
    async def expire_interactions(self, before: datetime, limit: int) -> tuple[int, int]:
        """Delete up to `limit` of the oldest interactions created before `before`, with
        their feedback: (interactions, feedback) deleted."""
        p = self.dialect.params()
        return await self._delete_interactions(f"created_at < {p(before)}", p, limit, ordered=True)

    async def expire_feedback(self, before: datetime, limit: int) -> int:
        p = self.dialect.params()
        sql = (
            "DELETE FROM feedback WHERE id IN (SELECT id FROM feedback"
            f" WHERE created_at < {p(before)} ORDER BY created_at LIMIT {p(limit)})"
        )
        return (await self._execute_counted([(sql, p.values)]))[0]

    async def expire_export_runs(self, before: datetime, limit: int) -> list[dict[str, Any]]:
        """Delete up to `limit` finished runs started before `before`; returns their id and
        out_dir, whose folders the caller removes."""
        p = self.dialect.params()
        rows = await self._fetch(
            "SELECT id, out_dir FROM export_runs"
            f" WHERE started_at < {p(before)} AND status <> 'running'"
            f" ORDER BY started_at LIMIT {p(limit)}",
            p.values,
        )
        if rows:
            q = self.dialect.params()
            ids = q([row["id"] for row in rows])
            sql = f"DELETE FROM export_runs WHERE {self.dialect.in_array('id', ids, 'uuid')}"
            await self._execute_counted([(sql, q.values)])
        return rows

    async def expire_audit(self, before: datetime, limit: int) -> int:
        p = self.dialect.params()
        sql = (
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log"
            f" WHERE created_at < {p(before)} ORDER BY created_at LIMIT {p(limit)})"
        )
        return (await self._execute_counted([(sql, p.values)]))[0]

    async def _delete_interactions(
        self, where: str, p: Params, limit: int, *, ordered: bool
    ) -> tuple[int, int]:
        d = self.dialect
        order = " ORDER BY created_at" if ordered else ""
        found = await self._fetch(
            f"SELECT id FROM interactions WHERE {where}{order} LIMIT {p(limit)}", p.values
        )
        if not found:
            return 0, 0
        ids = [row["id"] for row in found]
        fp, ip = d.params(), d.params()
        feedback = f"DELETE FROM feedback WHERE {d.in_array('interaction_id', fp(ids), 'uuid')}"
        interactions = f"DELETE FROM interactions WHERE {d.in_array('id', ip(ids), 'uuid')}"
        counts = await self._execute_counted([(feedback, fp.values), (interactions, ip.values)])
        return counts[1], counts[0]

    # -- the audit log --------------------------------------------------------------------
    async def insert_audit(self, entry: Mapping[str, Any]) -> None:
        """One `audit_log` row (every column of `AUDIT_COLUMNS`)."""
        values = [entry.get(name) for name in AUDIT_COLUMNS]
        values[AUDIT_COLUMNS.index("detail")] = entry.get("detail") or {}
        await self._execute(self.dialect.insert_ignoring("audit_log", AUDIT_COLUMNS), values)

    async def audit_entries(
        self, action: str | None = None, before: Cursor | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first: of one action (or all), strictly before the cursor."""
        d, p = self.dialect, self.dialect.params()
        clauses = ["1 = 1"]
        if action is not None:
            clauses.append(f"action = {p(action)}")
        if before is not None:
            clauses.append(f"(created_at, id) < ({p(before.created_at)}, {d.uuid(p(before.id))})")
        sql = (
            f"SELECT * FROM audit_log WHERE {' AND '.join(clauses)}"
            f" ORDER BY created_at DESC, id DESC LIMIT {p(limit)}"
        )
        return await self._fetch(sql, p.values, AUDIT)
