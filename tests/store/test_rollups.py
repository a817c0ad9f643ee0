"""The hourly rollups (migration 0010) against the rows they summarise, on both engines: the
overview's counts and sums equal the raw rows' for windows with ragged edges, after a late
insert (feedback before its interaction, rows out of time order) and after deletes; the
histogram percentiles stay within the stated error; the A/B readout from SQL aggregates equals
the readout from rows."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.experiments import arms_of_figures, readout, readout_of_arms
from gateway.ids import uuid7
from gateway.records.feedback import Feedback
from gateway.records.interaction import CLIENT_DISCONNECTED, ERROR, SUCCESS, Interaction
from gateway.store import Store, open_store, sqlite
from gateway.store.base import load_migrations
from gateway.store.queries import TimeWindow, percentile_rank
from gateway.store.rollups import LATENCY_RATIO

NOW = datetime.now(UTC)
MODELS = [("m", "a"), ("m", "b"), ("solo", None)]


def _interactions(count: int, seed: int) -> list[Interaction]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        model, variant = rng.choice(MODELS)
        status = rng.choice([SUCCESS] * 8 + [ERROR, CLIENT_DISCONNECTED])
        rows.append(
            Interaction(
                id=str(uuid7()),
                created_at=_when(rng),
                endpoint="chat/completions",
                requested_model=model,
                variant=variant,
                status=status,
                http_status=200 if status == SUCCESS else 502,
                prompt_tokens=rng.randint(1, 90),
                completion_tokens=rng.choice([None, rng.randint(1, 40)]),
                cost_usd=rng.choice([None, rng.uniform(0.0001, 0.01)]),
                latency_ms=rng.choice([None, rng.lognormvariate(6, 0.8)]),
                ttft_ms=rng.choice([None, rng.uniform(10, 300)]),
            )
        )
    return rows


def _when(rng: random.Random) -> datetime:
    """Mostly anywhere in the last 9 hours; some in the first half second of an hour."""
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    if rng.random() < 0.1:
        return hour - timedelta(hours=rng.randint(0, 8), seconds=-rng.uniform(0, 0.5))
    return NOW - timedelta(seconds=rng.uniform(-60, 9 * 3600))


def _feedback(rows: list[Interaction], seed: int) -> list[Feedback]:
    rng = random.Random(seed)
    events = []
    for row in rng.sample(rows, len(rows) // 3):
        for n in range(rng.randint(1, 3)):
            events.append(
                Feedback(
                    id=str(uuid7()),
                    interaction_id=row.id,
                    created_at=row.created_at + timedelta(minutes=rng.randint(1, 50), seconds=n),
                    thumbs=rng.choice([None, "up", "down"]),
                    rating=rng.choice([None, 1, 3, 4, 5]),
                    outcome=rng.choice([None, "accepted", "rejected"]),
                    source="test",
                )
            )
    return events


def _windows() -> list[TimeWindow]:
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    return [
        # Half a second past the hour: the hour's first half second is not in the window.
        TimeWindow(since=hour - timedelta(hours=4, seconds=-0.5)),
        TimeWindow(),
        TimeWindow(since=NOW - timedelta(hours=1)),
        TimeWindow(since=NOW - timedelta(hours=7, minutes=13, seconds=7)),
        TimeWindow(
            since=NOW - timedelta(hours=8, seconds=1.5), until=NOW - timedelta(hours=2, minutes=3)
        ),
    ]


def _inside(row: Interaction, window: TimeWindow) -> bool:
    return (window.since is None or row.created_at >= window.since) and (
        window.until is None or row.created_at < window.until
    )


def _expected_usage(rows: list[Interaction], window: TimeWindow) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if not _inside(row, window):
            continue
        g = groups.setdefault(
            (row.requested_model, row.variant),
            {"interactions": 0, "success": 0, "error": 0, "client_disconnected": 0, "costs": []},
        )
        g["interactions"] += 1
        g[row.status] += 1
        g["prompt_tokens"] = g.get("prompt_tokens", 0) + (row.prompt_tokens or 0)
        g["completion_tokens"] = g.get("completion_tokens", 0) + (row.completion_tokens or 0)
        if row.cost_usd is not None:
            g["costs"].append(row.cost_usd)
    return groups


def _latest(events: list[Feedback]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: (e.created_at, e.id)):
        latest = found.setdefault(event.interaction_id, {"events": 0})
        latest["events"] += 1
        for name in ("thumbs", "rating", "outcome"):
            if getattr(event, name) is not None:
                latest[name] = getattr(event, name)
    return found


async def _check(store: Store, rows: list[Interaction], events: list[Feedback]) -> None:
    latest = _latest(events)
    for window in _windows():
        expected = _expected_usage(rows, window)
        usage = {(g["model"], g["variant"]): g for g in await store.usage_by_variant(window)}
        assert set(usage) == set(expected), window
        for key, want in expected.items():
            got = usage[key]
            for name in ("interactions", "success", "error", "client_disconnected"):
                assert got[name] == want[name], (window, key, name)
            assert got["prompt_tokens"] == want["prompt_tokens"]
            assert got["completion_tokens"] == want["completion_tokens"]
            if want["costs"]:
                assert got["cost_usd"] == pytest.approx(math.fsum(want["costs"]), rel=1e-9)
            else:
                assert got["cost_usd"] is None
        feedback = {(g["model"], g["variant"]): g for g in await store.feedback_by_variant(window)}
        judged = [r for r in rows if _inside(r, window) and r.id in latest]
        for key in {(r.requested_model, r.variant) for r in judged}:
            mine = [latest[r.id] for r in judged if (r.requested_model, r.variant) == key]
            assert feedback[key]["interactions"] == len(mine)
            assert feedback[key]["events"] == sum(m["events"] for m in mine)
            thumbs = [m["thumbs"] for m in mine if "thumbs" in m]
            assert feedback[key]["thumbs"] == {t: thumbs.count(t) for t in set(thumbs)}
        assert len(feedback) == len({(r.requested_model, r.variant) for r in judged})
        charts = await store.usage_over_time(window, 3600)
        inside = [r for r in rows if _inside(r, window)]
        assert sum(b["interactions"] for b in charts) == len(inside)
        assert sum(b["error"] for b in charts) == sum(r.status == ERROR for r in inside)
        assert sum(b["with_feedback"] for b in charts) == len(judged)
        # The overview's single read gives the same as the three calls.
        # (Costs are float sums, added in another order: equal to 1e-12.)
        assert _rounded(await store.overview(window, 3600)) == _rounded(
            {
                "usage": await store.usage_by_variant(window),
                "latency": await store.latency_percentiles(window),
                "over_time": charts,
            }
        )
        for bucket in charts:
            start = bucket["bucket"]
            hour = [r for r in inside if start <= r.created_at.timestamp() < start + 3600]
            assert bucket["interactions"] == len(hour)


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return float(f"{value:.12g}") if isinstance(value, float) else value


async def test_rollups_equal_the_rows_through_late_inserts_and_deletes(store: Store) -> None:
    rows = _interactions(400, seed=1)
    events = _feedback(rows, seed=2)
    late = rows[300:]
    # Feedback first, then its interactions (a spool replay), out of time order.
    await store.insert_feedback(events)
    await store.insert_interactions(rows[:300])
    await store.insert_interactions(late[::-1])
    await store.insert_interactions(rows[:10])  # a replay of rows already written: ignored
    await _check(store, rows, events)
    # Forget some interactions and some feedback (what forget and retention delete).
    gone = {row.id for row in rows[::7]}
    dropped = {event.id for event in events[::5]}
    await _delete(store, "interactions", "id", sorted(gone))
    await _delete(store, "feedback", "id", sorted(dropped))
    rows = [row for row in rows if row.id not in gone]
    events = [event for event in events if event.id not in dropped]
    await _check(store, rows, events)


async def _delete(store: Store, table: str, column: str, ids: list[str]) -> None:
    d, p = store.dialect, store.dialect.params()  # type: ignore[attr-defined]
    sql = f"DELETE FROM {table} WHERE {d.in_array(column, p(ids), 'uuid')}"
    await store._execute_counted([(sql, p.values)])  # type: ignore[attr-defined]


async def test_histogram_percentiles_stay_within_the_stated_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _interactions(500, seed=3)
    await store.insert_interactions(rows)
    monkeypatch.setattr("gateway.store.stats_sql.EXACT_PERCENTILES_MAX", 0)  # always the histogram
    await _check_percentiles(store, rows)
    # A delete takes its latency out of the hour's histogram: without the slowest third the
    # percentiles move far more than the stated error.
    slowest = sorted((r for r in rows if r.latency_ms), key=lambda r: r.latency_ms or 0)[-120:]
    await _delete(store, "interactions", "id", sorted(r.id for r in slowest))
    await _check_percentiles(store, [r for r in rows if r not in slowest])


async def test_rollups_kept_under_migration_0010_read_the_same_after_0011(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0011 folds 0010's row per latency bucket into each hour's histogram: a store that
    recorded under 0010 and then upgraded reads the same counts and percentiles."""
    rows = _interactions(400, seed=6)
    events = _feedback(rows, seed=7)
    engine = "sqlite" if database_url.startswith("sqlite") else "postgres"
    module = f"gateway.store.{engine}"
    everything = load_migrations

    def up_to_0010(name: str) -> list[Any]:
        return [m for m in everything(name) if m.version <= 10]

    async with open_store(database_url) as store:
        monkeypatch.setattr(f"{module}.load_migrations", up_to_0010)
        await store.migrate()
        await _insert_as_0010_did(store, rows[:250])
        await store.insert_feedback(events)
        await _delete(store, "interactions", "id", sorted(r.id for r in rows[:250:9]))
        monkeypatch.setattr(f"{module}.load_migrations", everything)
        assert [name[:4] for name in await store.migrate()] == ["0011"]
        await store.insert_interactions(rows[250:])
        kept = [r for r in rows if r not in rows[:250:9]]
        await _check(store, kept, events)
        monkeypatch.setattr("gateway.store.stats_sql.EXACT_PERCENTILES_MAX", 0)
        await _check_percentiles(store, kept)


async def test_sqlite_batches_from_two_processes_add_up(sqlite_url: str) -> None:
    """Each SQLite batch adds up the rows above the largest rowid before it: two stores (as two
    worker processes) writing into one file at once must not count each other's rows."""
    rows = _interactions(600, seed=8)
    async with open_store(sqlite_url) as first, open_store(sqlite_url) as second:
        await first.migrate()
        batches = [rows[i : i + 50] for i in range(0, len(rows), 50)]
        await asyncio.gather(
            *(
                (first if n % 2 else second).insert_interactions(batch)
                for n, batch in enumerate(batches)
            )
        )
        await _check(first, rows, [])


async def _insert_as_0010_did(store: Store, rows: list[Interaction]) -> None:
    """Rows as the code of 0010's time wrote them: on SQLite a plain insert, which 0010's row
    trigger added up (the store now adds each batch up itself, for 0011's table)."""
    if not isinstance(store, sqlite.SQLiteStore):
        await store.insert_interactions(rows)
        return
    params = [sqlite._interaction_params(row.as_row()) for row in rows]
    await store._run(store._in_transaction, sqlite._INSERT, params)


async def _check_percentiles(store: Store, rows: list[Interaction]) -> None:
    bound = math.sqrt(LATENCY_RATIO) - 1
    for window in _windows():
        values = sorted(r.latency_ms for r in rows if _inside(r, window) and r.latency_ms)
        got = await store.latency_percentiles(window)
        for name, percent in (("p50", 50), ("p95", 95)):
            exact = values[percentile_rank(len(values), percent) - 1]
            approximate = got[name]
            assert approximate is not None
            # The bucket's middle, rounded to 0.1 ms for display.
            assert abs(approximate - exact) <= bound * exact + 0.05, (window, name)


async def test_readout_from_sql_aggregates_equals_the_readout_from_rows(store: Store) -> None:
    rows = _interactions(300, seed=4)
    events = _feedback(rows, seed=5)
    await store.insert_interactions(rows)
    await store.insert_feedback(events)
    for window in _windows():
        interactions, raw_events = await store.experiment_rows("m", window)
        before = readout("m", interactions, raw_events, control="a", min_samples=5, alpha=0.05)
        arms = arms_of_figures(await store.experiment_figures("m", window))
        after = readout_of_arms("m", arms, control="a", min_samples=5, alpha=0.05)
        _same(before, after)


def _same(before: Any, after: Any) -> None:
    if isinstance(before, dict):
        assert set(before) == set(after)
        for key in before:
            _same(before[key], after[key])
    elif isinstance(before, list | tuple):
        ordered = sorted if before and isinstance(before[0], dict) else list
        key = (lambda v: str(v.get("variant"))) if ordered is sorted else None
        b = sorted(before, key=key) if key else before
        a = sorted(after, key=key) if key else after
        assert len(b) == len(a)
        for x, y in zip(b, a, strict=True):
            _same(x, y)
    elif isinstance(before, float):
        assert after == pytest.approx(before, rel=1e-9, abs=1e-12)
    else:
        assert before == after
