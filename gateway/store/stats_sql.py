"""The stats the overview, `/admin/stats` and the A/B readouts ask, for every engine.

Usage, latency percentiles, charts over time and feedback come from the hourly rollups that
the triggers of migrations 0010-0011 keep (rollups.py says how a window is read); the A/B
readout's figures are aggregated per variant in SQL (sums and sums of squares for Welch's test,
latest feedback from `feedback_latest`), so no readout pulls a window's rows into Python.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.store.queries import (
    FEEDBACK_DISTRIBUTIONS,
    PERCENTILES,
    TimeWindow,
    feedback_groups,
    usage_groups,
)
from gateway.store.rollups import (
    EXACT_PERCENTILES_MAX,
    HOUR,
    Group,
    Key,
    fold,
    histogram_percentiles,
    regroup,
    split,
    usage_row,
)
from gateway.store.rollups import usage_sql as rollup_sql
from gateway.store.sql import EngineAccess, _window

_BY_VARIANT = {"model": "requested_model", "variant": "variant"}
# The readout's interpolated percentiles: name -> (column, fraction).
READOUT_PERCENTILES = {
    "latency_p50_ms": ("latency_ms", 0.5),
    "latency_p95_ms": ("latency_ms", 0.95),
    "ttft_p50_ms": ("ttft_ms", 0.5),
}


class StatsQueries(EngineAccess):
    async def _latencies(
        self, where: str, groups: Mapping[str, str], params: Sequence[Any]
    ) -> list[dict[str, Any]]:
        source = f"interactions i WHERE latency_ms IS NOT NULL AND {where}"
        return await self._percentiles("latency_ms", source, groups, params)

    async def _rolled_up(self, window: TimeWindow, seconds: int | None) -> dict[Key, Group]:
        p = self.dialect.params()
        parts = split(window, datetime.now(UTC), seconds or HOUR)
        rows = await self._fetch(rollup_sql(self.dialect, p, parts, seconds), p.values)
        # Off the event loop: a month's rows take ~30 ms to add up, which requests the worker
        # is serving meanwhile would otherwise wait out.
        return await asyncio.to_thread(fold, rows)

    async def _exact_latencies(
        self, window: TimeWindow, interactions: float, groups: Mapping[str, str]
    ) -> list[dict[str, Any]] | None:
        """Percentiles from the rows when the window holds few (exact, and cheap then);
        None when the histogram should answer instead."""
        if interactions > EXACT_PERCENTILES_MAX:
            return None
        p = self.dialect.params()
        return await self._latencies(" AND ".join(_window(window, p)), groups, p.values)

    async def usage_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        return await self._usage(window, await self._rolled_up(window, None))

    async def latency_percentiles(self, window: TimeWindow) -> dict[str, float | None]:
        return await self._latency(window, await self._rolled_up(window, None))

    async def usage_over_time(self, window: TimeWindow, seconds: int) -> list[dict[str, Any]]:
        return await self._over_time(window, seconds, await self._rolled_up(window, seconds))

    async def overview(self, window: TimeWindow, seconds: int) -> dict[str, Any]:
        # One read of the rollups for all three.
        hours = await self._rolled_up(window, seconds)
        return {
            "usage": await self._usage(window, hours),
            "latency": await self._latency(window, hours),
            "over_time": await self._over_time(window, seconds, hours),
        }

    async def _usage(self, window: TimeWindow, hours: dict[Key, Group]) -> list[dict[str, Any]]:
        groups = regroup(hours, lambda key: key[1:])
        keys = sorted(groups)
        totals = [usage_row(model, variant, groups[(model, variant)]) for model, variant in keys]
        by_variant = {
            alias: self.dialect.group_key(column) for alias, column in _BY_VARIANT.items()
        }
        count = sum(g.counts["interactions"] for g in groups.values())
        latencies = await self._exact_latencies(window, count, by_variant)
        if latencies is None:
            latencies = [
                {**total, **histogram_percentiles(groups[key].histogram)}
                for key, total in zip(keys, totals, strict=True)
            ]
        return usage_groups(totals, latencies)

    async def _latency(
        self, window: TimeWindow, hours: dict[Key, Group]
    ) -> dict[str, float | None]:
        total = regroup(hours, lambda key: "all").get("all", Group.empty())
        exact = await self._exact_latencies(window, total.counts["interactions"], {})
        if exact is not None:
            return {name: exact[0][name] if exact else None for name in PERCENTILES}
        return histogram_percentiles(total.histogram)

    async def _over_time(
        self, window: TimeWindow, seconds: int, hours: dict[Key, Group]
    ) -> list[dict[str, Any]]:
        d, p = self.dialect, self.dialect.params()
        groups = regroup(hours, lambda key: key[0])
        bucket = d.time_bucket("i.created_at", seconds)
        judged = (
            f"SELECT {bucket} AS bucket, count(*) AS n FROM feedback_latest i"
            f" WHERE i.created_at IS NOT NULL AND {' AND '.join(_window(window, p))} GROUP BY 1"
        )
        with_feedback = {row["bucket"]: row["n"] for row in await self._fetch(judged, p.values)}
        count = sum(g.counts["interactions"] for g in groups.values())
        exact = await self._exact_latencies(window, count, {"bucket": bucket})
        if exact is not None:
            by_bucket = {row["bucket"]: row for row in exact}
            latency = {b: {k: by_bucket.get(b, {}).get(k) for k in PERCENTILES} for b in groups}
        else:
            latency = {b: histogram_percentiles(g.histogram) for b, g in groups.items()}
        return [
            {
                "bucket": b,
                "interactions": int(g.counts["interactions"]),
                "error": int(g.counts["error"]),
                "with_feedback": with_feedback.get(b, 0),
                "cost_usd": g.counts["cost_usd"] if g.counts["cost_known"] else None,
                "tokens": int(g.counts["prompt_tokens"] + g.counts["completion_tokens"]),
                "latency_ms": latency[b],
            }
            for b, g in sorted(groups.items())
        ]

    async def feedback_by_variant(self, window: TimeWindow) -> list[dict[str, Any]]:
        p = self.dialect.params()
        where = " AND ".join(_window(window, p))
        # The window's judged interactions with their latest values, kept by triggers
        # (migration 0010), in one grouped pass: probing the feedback table for each of a
        # week's interactions took 0.5 s at 1M rows; a pass per distribution, 0.3 s for 30 days.
        fields = ", ".join(FEEDBACK_DISTRIBUTIONS)
        sql = (
            f"SELECT model, variant, {fields}, count(*) AS interactions,"
            f" CAST(sum(events) AS BIGINT) AS events FROM feedback_latest i"
            f" WHERE i.created_at IS NOT NULL AND {where} GROUP BY model, variant, {fields}"
        )
        counts: dict[tuple[Any, Any], dict[str, Any]] = {}
        values: dict[tuple[Any, Any, str, str], int] = {}
        for row in await self._fetch(sql, p.values):
            key = (row["model"], row["variant"])
            group = counts.setdefault(
                key, {"model": key[0], "variant": key[1], "events": 0, "interactions": 0}
            )
            group["events"] += row["events"]
            group["interactions"] += row["interactions"]
            for name in FEEDBACK_DISTRIBUTIONS:
                if row[name] is not None:
                    value = (*key, name, str(row[name]))
                    values[value] = values.get(value, 0) + row["interactions"]
        return feedback_groups(
            counts.values(),
            (
                {"model": m, "variant": v, "field": name, "value": value, "count": n}
                for (m, v, name, value), n in values.items()
            ),
        )

    async def experiment_figures(self, model: str, window: TimeWindow) -> list[dict[str, Any]]:
        d, p = self.dialect, self.dialect.params()
        where = " AND ".join([f"i.requested_model = {p(model)}", *_window(window, p)])
        moments = ", ".join(
            f"count({column}) AS {name}_n, sum({column}) AS {name}_total,"
            f" sum({column} * {column}) AS {name}_squares, min({column}) AS {name}_low,"
            f" max({column}) AS {name}_high"
            for name, column in (("latency", "latency_ms"), ("cost", "cost_usd"))
        )
        percentiles = "".join(
            f", {d.percentile_cont(column, fraction)} AS {name}"
            for name, (column, fraction) in READOUT_PERCENTILES.items()
            if d.percentile_cont(column, fraction)
        )
        figures = await self._fetch(
            f"SELECT i.variant, count(*) AS requests, {d.count_if('status <> ' + repr('success'))}"
            f" AS errors, {moments}, count(prompt_tokens) AS tokens_n,"
            " sum(prompt_tokens + coalesce(completion_tokens, 0)) AS tokens_total"
            f"{percentiles} FROM interactions i WHERE {where} GROUP BY i.variant",
            p.values,
        )
        if not percentiles:
            # No percentile_cont (SQLite): the engine interpolates from the values.
            found = await self._interpolated_percentiles(
                f"SELECT i.variant, i.latency_ms, i.ttft_ms FROM interactions i WHERE {where}",
                p.values,
            )
            for row in figures:
                row.update(found.get(row["variant"], {}))
        p = d.params()
        where = " AND ".join(
            [f"i.model = {p(model)}", "i.created_at IS NOT NULL", *_window(window, p)]
        )
        judged = d.count_if("thumbs IS NOT NULL OR rating IS NOT NULL OR outcome IS NOT NULL")
        positive = d.count_if("thumbs = 'up' OR outcome = 'accepted' OR rating >= 4")
        feedback = await self._fetch(
            f"SELECT i.variant, {judged} AS judged, {positive} AS positive,"
            " count(rating) AS rating_n, sum(rating) AS rating_total,"
            " sum(rating * rating) AS rating_squares, min(rating) AS rating_low,"
            f" max(rating) AS rating_high FROM feedback_latest i WHERE {where}"
            " GROUP BY i.variant",
            p.values,
        )
        by_variant = {row["variant"]: row for row in feedback}
        return [{**by_variant.get(row["variant"], {}), **row} for row in figures]

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
