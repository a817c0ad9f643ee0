"""The store's edges, on both engines: opened and closed with `async with`, every driver error
leaving as `StoreError`, and ids that cannot name a row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from gateway.errors import StoreError
from gateway.ids import uuid7
from gateway.store import Store, open_store
from gateway.store.queries import Cursor, ExportQuery, InteractionQuery, TimeWindow
from tests.feedback_support import T0, seed_review_data


def _lock(store: Store) -> Awaitable[Any]:
    async def hold() -> None:
        async with store.job_lock("nightly"):
            pass

    return hold()


ANY_ID = uuid7()
CALLS: dict[str, Callable[[Store], Awaitable[Any]]] = {
    "migrate": lambda s: s.migrate(),
    "ping": lambda s: s.ping(),
    "insert_interactions": lambda s: s.insert_interactions([]),
    "get_interaction": lambda s: s.get_interaction(ANY_ID),
    "insert_feedback": lambda s: s.insert_feedback([]),
    "interaction_models": lambda s: s.interaction_models([ANY_ID]),
    "interactions_for_responses": lambda s: s.interactions_for_responses(["chatcmpl-1"]),
    "responses": lambda s: s.responses([ANY_ID]),
    "get_feedback": lambda s: s.get_feedback(ANY_ID),
    "list_interactions": lambda s: s.list_interactions(InteractionQuery(text="x")),
    "usage_by_variant": lambda s: s.usage_by_variant(TimeWindow()),
    "latency_percentiles": lambda s: s.latency_percentiles(TimeWindow()),
    "feedback_by_variant": lambda s: s.feedback_by_variant(TimeWindow()),
    "experiment_rows": lambda s: s.experiment_rows("m", TimeWindow(since=T0)),
    "export_page": lambda s: s.export_page(ExportQuery(models=("m",)), Cursor(T0, ANY_ID), 10),
    "export_runs": lambda s: s.export_runs(job="nightly"),
    "get_export_run": lambda s: s.get_export_run(ANY_ID),
    "job_lock": _lock,
}
# A SQLite job lock is a file next to the database: it needs no open connection.
NEED_A_CONNECTION = {name: call for name, call in CALLS.items() if name != "job_lock"}


# -- async with -----------------------------------------------------------------------------
async def test_async_with_closes_the_store(database_url: str) -> None:
    async with open_store(database_url) as store:
        await store.migrate()
        await store.ping()
    with pytest.raises(StoreError):
        await store.ping()


async def test_async_with_closes_the_store_when_the_block_fails(database_url: str) -> None:
    with pytest.raises(KeyError):
        async with open_store(database_url) as store:
            raise KeyError("boom")
    with pytest.raises(StoreError):
        await store.ping()


async def test_open_store_can_still_be_awaited(database_url: str) -> None:
    store = await open_store(database_url, pool_size=2, connect=False)
    try:
        assert await store.migrate()
    finally:
        await store.close()


# -- one error boundary ---------------------------------------------------------------------
@pytest.mark.parametrize("call", CALLS.values(), ids=list(CALLS))
async def test_unreachable_database_is_a_store_error(
    unreachable_url: str, call: Callable[[Store], Awaitable[Any]]
) -> None:
    """Started with the database down (as the gateway is), every call raises StoreError."""
    store = await open_store(unreachable_url, connect=False)
    try:
        with pytest.raises(StoreError):
            await call(store)
    finally:
        await store.close()


@pytest.mark.parametrize("call", NEED_A_CONNECTION.values(), ids=list(NEED_A_CONNECTION))
async def test_closed_store_is_a_store_error(
    database_url: str, call: Callable[[Store], Awaitable[Any]]
) -> None:
    async with open_store(database_url) as store:
        await store.migrate()
    with pytest.raises(StoreError):
        await call(store)


async def test_postgres_job_lock_on_a_closed_store_is_a_store_error(postgres_url: str) -> None:
    async with open_store(postgres_url) as store:
        pass
    with pytest.raises(StoreError):
        await _lock(store)


# -- ids and windows ------------------------------------------------------------------------
async def test_ids_that_are_not_uuids_name_nothing(store: Store) -> None:
    assert await store.get_interaction("not-a-uuid") is None
    assert await store.get_feedback("not-a-uuid") == []
    assert await store.get_export_run("not-a-uuid") is None


async def test_experiment_rows_over_a_window(store: Store) -> None:
    seeded = await seed_review_data(store)
    window = TimeWindow(T0 + timedelta(hours=3), T0 + timedelta(hours=5))
    interactions, events = await store.experiment_rows("exp", window)
    assert sorted(row["id"] for row in interactions) == sorted([seeded["i3"], seeded["i4"]])
    assert [event["interaction_id"] for event in events] == [seeded["i3"], seeded["i4"]]
    assert [event["thumbs"] for event in events] == ["down", "up"]
