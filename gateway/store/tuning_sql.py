"""The tuning queries (fine-tuning runs, model versions, routing overrides), written once.

Mixed into each engine next to `SQLQueries` (sql.py) and `PrivacyQueries`, on the same
primitives. A routing override is written with compare-and-set on its `revision`: two admins
(or an admin and the automatic policy) changing one model at once cannot lose a change; the
second one is told to read again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.store.sql import Decode, EngineAccess, _is_uuid

TUNING_RUN_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "finished_at",
    "export_run_id",
    "manifest_sha256",
    "launcher",
    "backend",
    "method",
    "base_model",
    "model",
    "status",
    "external_id",
    "result_model",
    "trained_tokens",
    "cost_usd",
    "error",
    "detail",
)
MODEL_VERSION_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "model",
    "variant",
    "provider",
    "upstream_model",
    "base_model",
    "tuning_run_id",
    "export_run_id",
    "manifest_sha256",
    "status",
)
OVERRIDE_COLUMNS = ("model", "revision", "arms", "control", "updated_at", "updated_by")
TUNING_RUN = Decode(frozenset({"detail"}))
OVERRIDE = Decode(frozenset({"arms"}))


class TuningQueries(EngineAccess):
    # -- tuning runs ------------------------------------------------------------------------
    async def save_tuning_run(self, run: Mapping[str, Any]) -> None:
        values = _times(run, TUNING_RUN_COLUMNS)
        values[TUNING_RUN_COLUMNS.index("detail")] = dict(run.get("detail") or {})
        await self._execute(self.dialect.upsert("tuning_runs", TUNING_RUN_COLUMNS, "id"), values)

    async def tuning_runs(
        self, statuses: Sequence[str] | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first; only those in `statuses` when given."""
        p = self.dialect.params()
        where = "1 = 1"
        if statuses is not None:
            where = self.dialect.in_array("status", p(list(statuses)), "text")
        sql = (
            f"SELECT * FROM tuning_runs WHERE {where}"
            f" ORDER BY created_at DESC, id DESC LIMIT {p(limit)}"
        )
        return await self._fetch(sql, p.values, TUNING_RUN)

    async def get_tuning_run(self, run_id: str) -> dict[str, Any] | None:
        if not _is_uuid(run_id):
            return None
        p = self.dialect.params()
        rows = await self._fetch(
            f"SELECT * FROM tuning_runs WHERE id = {p(run_id)}", p.values, TUNING_RUN
        )
        return rows[0] if rows else None

    # -- model versions ---------------------------------------------------------------------
    async def save_model_version(self, version: Mapping[str, Any]) -> None:
        """Insert or update one version, keyed by (model, variant)."""
        values = _times(version, MODEL_VERSION_COLUMNS)
        columns = MODEL_VERSION_COLUMNS
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in columns if c not in ("id", "created_at", "model")
        )
        sql = self.dialect.insert(
            "model_versions", columns, f"(model, variant) DO UPDATE SET {updates}"
        )
        await self._execute(sql, values)

    async def model_versions(self, model: str | None = None) -> list[dict[str, Any]]:
        """Oldest first; of one model when given."""
        p = self.dialect.params()
        where = "1 = 1" if model is None else f"model = {p(model)}"
        sql = f"SELECT * FROM model_versions WHERE {where} ORDER BY created_at, id"
        return await self._fetch(sql, p.values)

    # -- routing overrides ------------------------------------------------------------------
    async def route_overrides(self) -> list[dict[str, Any]]:
        return await self._fetch("SELECT * FROM route_overrides ORDER BY model", (), OVERRIDE)

    async def save_route_override(self, row: Mapping[str, Any], expected_revision: int) -> bool:
        """Write `row` if the stored revision is still `expected_revision` (0: no row yet);
        False when someone else changed it first."""
        d, p = self.dialect, self.dialect.params()
        if expected_revision == 0:
            sql = d.insert_ignoring("route_overrides", OVERRIDE_COLUMNS, "model")
            values = _times(row, OVERRIDE_COLUMNS)
            return (await self._execute_counted([(sql, values)]))[0] == 1
        named = dict(zip(OVERRIDE_COLUMNS, _times(row, OVERRIDE_COLUMNS), strict=True))
        sets = ", ".join(f"{name} = {p(named[name])}" for name in OVERRIDE_COLUMNS[1:])
        sql = (
            f"UPDATE route_overrides SET {sets}"
            f" WHERE model = {p(row['model'])} AND revision = {p(expected_revision)}"
        )
        return (await self._execute_counted([(sql, p.values)]))[0] == 1

    async def delete_route_override(self, model: str) -> bool:
        p = self.dialect.params()
        sql = f"DELETE FROM route_overrides WHERE model = {p(model)}"
        return (await self._execute_counted([(sql, p.values)]))[0] == 1


def _times(row: Mapping[str, Any], columns: Sequence[str]) -> list[Any]:
    """The row's values in column order, with times read back as ISO text made datetimes
    again (PostgreSQL binds TIMESTAMPTZ from datetimes only)."""
    values = []
    for name in columns:
        value = row.get(name)
        if name.endswith("_at") and isinstance(value, str):
            value = datetime.fromisoformat(value)
        values.append(value)
    return values
