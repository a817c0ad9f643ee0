"""The feedback and review half of the store contract, on SQLite and on PostgreSQL.

The same seeded dataset goes into both engines and every method must give the same answer:
the engines' SQL differs (window functions vs DISTINCT ON, json_each vs @>, hand-made vs
built-in percentiles), the results may not.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest

from gateway.ids import uuid7
from gateway.records.feedback import FEEDBACK_COLUMNS, Feedback
from gateway.records.interaction import Interaction
from gateway.store import Store
from gateway.store import sql as sql_module
from gateway.store.queries import Cursor, InteractionQuery, TimeWindow
from tests.feedback_support import ANSWERS, T0, fetch_feedback, seed_review_data


@pytest.fixture
async def seeded(store: Store) -> dict[str, str]:
    return await seed_review_data(store)


def _fields(event: Feedback) -> dict[str, Any]:
    return {name: getattr(event, name) for name in FEEDBACK_COLUMNS}


def _event(interaction_id: str, **fields: Any) -> Feedback:
    return Feedback(id=uuid7(), interaction_id=interaction_id, created_at=T0, **fields)


# -- feedback writes and lookups ------------------------------------------------------------
async def test_feedback_round_trips(store: Store, database_url: str) -> None:
    interaction_id = uuid7()  # no interaction row: feedback has no foreign key
    event = _event(
        interaction_id,
        rating=4,
        thumbs="up",
        score=0.5,
        outcome="modified",
        correction="Bonjour 👋\nça va ?\x00",
        comment="ok",
        dimensions={"accuracy": 5, "clarity": 3},
        time_to_decision_ms=4500,
        source="web",
        tags={"team": "search"},
        idempotency_key="k",
        edit_distance=3,
        correction_type="minor_edit",
        api_key_name="app",
    )
    assert await store.insert_feedback([event]) == [event.id]
    [stored] = await store.get_feedback(interaction_id)
    assert stored["created_at"] == T0.isoformat()
    assert stored["correction"].replace("\ufffd", "\x00") == event.correction
    expected = {k: v for k, v in _fields(event).items() if k not in ("created_at", "correction")}
    assert {k: stored[k] for k in expected} == expected
    assert len(await fetch_feedback(database_url, interaction_id)) == 1


async def test_idempotency_keys_return_the_first_id(store: Store, database_url: str) -> None:
    interaction_id = uuid7()
    first = _event(interaction_id, rating=1, idempotency_key="same")
    plain = _event(interaction_id, rating=2)
    assert await store.insert_feedback([first, plain]) == [first.id, plain.id]
    retry = _event(interaction_id, rating=5, idempotency_key="same")
    other_interaction = _event(uuid7(), rating=5, idempotency_key="same")  # keys are per id
    ids = await store.insert_feedback([retry, other_interaction, replace(retry, id=uuid7())])
    assert ids == [first.id, other_interaction.id, first.id]
    ratings = [r["rating"] for r in await fetch_feedback(database_url, interaction_id)]
    assert sorted(ratings) == [1, 2]


async def test_concurrent_retries_store_one_row(store: Store, database_url: str) -> None:
    interaction_id = uuid7()
    events = [_event(interaction_id, rating=3, idempotency_key="k") for _ in range(8)]
    results = await asyncio.gather(*(store.insert_feedback([e]) for e in events))
    assert len({ids[0] for ids in results}) == 1
    assert len(await fetch_feedback(database_url, interaction_id)) == 1


async def test_lookups(store: Store, seeded: dict[str, str]) -> None:
    unknown = uuid7()
    assert await store.interaction_models([seeded["i0"], unknown, seeded["i5"]]) == {
        seeded["i0"]: ("chat-a", None),
        seeded["i5"]: ("exp", "b"),
    }
    assert await store.interaction_models([]) == {}
    found = await store.interactions_for_responses(["chatcmpl-seed-1", "chatcmpl-none"])
    assert found == {"chatcmpl-seed-1": seeded["i1"]}
    responses = await store.responses([seeded["i0"], seeded["i2"], unknown])
    assert set(responses) == {seeded["i0"], seeded["i2"]}
    assert responses[seeded["i0"]]["choices"][0]["message"]["content"] == ANSWERS["i0"]
    assert responses[seeded["i2"]] is None  # a failed call has no response


async def test_many_ids_are_looked_up_in_chunks(store: Store, seeded: dict[str, str]) -> None:
    ids = [uuid7() for _ in range(1_200)] + [seeded["i3"]]
    assert await store.interaction_models(ids) == {seeded["i3"]: ("exp", "a")}


async def test_get_feedback_is_oldest_first(store: Store, seeded: dict[str, str]) -> None:
    events = await store.get_feedback(seeded["i1"])
    assert [e["rating"] for e in events] == [2, 4]
    assert await store.get_feedback(uuid7()) == []


# -- list_interactions filters --------------------------------------------------------------
FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({}, [f"i{n}" for n in range(12)]),
    ({"model": "chat-a"}, ["i0", "i1", "i2", "i6", "i7", "i8", "i9", "i10", "i11"]),
    ({"model": "exp", "variant": "b"}, ["i4", "i5"]),
    ({"status": "error"}, ["i2"]),
    ({"status": "client_disconnected"}, ["i5"]),
    ({"user": "u3"}, ["i3", "i4"]),
    ({"session": "s1"}, ["i0", "i1"]),
    ({"tags": {"team": "search"}}, ["i0", "i1"]),
    ({"tags": {"team": "search", "env": "prod"}}, ["i0"]),
    ({"tags": {"team": "nobody"}}, []),
    ({"has_feedback": True}, ["i0", "i1", "i2", "i3", "i4"]),
    ({"has_feedback": False}, ["i5", "i6", "i7", "i8", "i9", "i10", "i11"]),
    ({"outcome": "accepted"}, ["i0"]),
    ({"outcome": "rejected"}, ["i1"]),
    ({"min_rating": 4}, ["i0", "i1"]),  # i1 was rated 2, then 4: the latest counts
    ({"min_rating": 5}, ["i0"]),
    ({"thumbs": "up"}, ["i0", "i4"]),
    ({"thumbs": "down"}, ["i2", "i3"]),
    ({"thumbs": "down", "model": "exp"}, ["i3"]),
    ({"quality_flag": "truncated"}, ["i1"]),
    ({"text": "paris"}, ["i0"]),  # case-insensitive
    ({"text": 'in "Germany"'}, ["i1"]),  # quotes, escaped inside the stored JSON
    ({"text": "question 1"}, ["i1", "i10", "i11"]),  # the request is searched too
    ({"text": "100%_"}, []),  # LIKE wildcards are literal
    ({"text": "QUESTION 1"}, ["i1", "i10", "i11"]),  # through the index: folded alike
    ({"text": "on 1"}, ["i1", "i10", "i11"]),  # inside a word
    ({"text": "Paris."}, ["i0"]),
    ({"text": "content"}, []),  # keys are not text
    ({"text": "1"}, ["i1", "i10", "i11"]),  # too short for a trigram: read directly
    ({"window": TimeWindow(T0 + timedelta(hours=3), T0 + timedelta(hours=6))}, ["i3", "i4", "i5"]),
    ({"window": TimeWindow(since=T0 + timedelta(hours=10))}, ["i10", "i11"]),
    ({"model": "chat-a", "has_feedback": True, "user": "u1"}, ["i0", "i2"]),
]


@pytest.mark.parametrize(("filters", "expected"), FILTERS)
async def test_list_filters(
    store: Store, seeded: dict[str, str], filters: dict[str, Any], expected: list[str]
) -> None:
    rows = await store.list_interactions(InteractionQuery(limit=100, **filters))
    names = {v: k for k, v in seeded.items()}
    assert [names[row["id"]] for row in rows] == sorted(
        expected, key=lambda n: -int(n[1:])
    )  # newest first


TEXT_FILTERS = [(f["text"], expected) for f, expected in FILTERS if "text" in f]


async def _index_everything(store: Store) -> int:
    indexed = 0
    while taken := await store.index_search(5):
        indexed += taken
    return indexed


@pytest.mark.parametrize("indexed", [0, 5, 12])
async def test_text_search_gives_the_same_rows_however_much_is_indexed(
    store: Store, seeded: dict[str, str], indexed: int
) -> None:
    """A search reads the index and the rows not indexed yet: the answer cannot depend on
    how far the background indexer has got."""
    assert await store.search_backlog() == 12
    if indexed:
        assert await store.index_search(indexed) == indexed
    assert await store.search_backlog() == 12 - indexed
    names = {v: k for k, v in seeded.items()}
    for text, expected in TEXT_FILTERS:
        rows = await store.list_interactions(InteractionQuery(text=text, limit=100))
        found = [names[row["id"]] for row in rows]
        assert found == sorted(expected, key=lambda n: -int(n[1:])), (text, indexed)


@pytest.mark.parametrize("recent", [0, 2, 5_000])
async def test_a_search_page_is_the_same_from_the_newest_rows_or_the_index(
    store: Store, seeded: dict[str, str], recent: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page is first looked for among the `recent` newest rows, one by one, then in the
    index: small pages of a common text come from the first, the rest from the second."""
    await store.index_search(6)  # half indexed: both the index and the direct read count
    monkeypatch.setattr(sql_module, "RECENT", recent)
    everything = await store.list_interactions(InteractionQuery(text="question", limit=100))
    assert len(everything) == 12
    for limit in (1, 2, 3):
        rows = await store.list_interactions(InteractionQuery(text="question", limit=limit))
        assert [r["id"] for r in rows] == [r["id"] for r in everything[:limit]]
        assert "search_key" not in rows[0]
    newer = await store.list_interactions(
        InteractionQuery(text="QUESTION", limit=2, before=_cursor(everything[5]))
    )
    assert [r["id"] for r in newer] == [r["id"] for r in everything[3:5]]


async def test_new_rows_are_indexed_after_the_ones_before(
    store: Store, seeded: dict[str, str]
) -> None:
    assert await _index_everything(store) == 12
    assert await store.search_backlog() == 0 and await store.index_search(10) == 0
    [late] = await _insert(store, "a late question about fjords", T0 + timedelta(minutes=30))
    assert await store.search_backlog() == 1  # written late, older than indexed rows
    found = await store.list_interactions(InteractionQuery(text="FJORD"))
    assert [row["id"] for row in found] == [late]
    assert await store.index_search(10) == 1
    found = await store.list_interactions(InteractionQuery(text="FJORD"))
    assert [row["id"] for row in found] == [late]


async def test_deleted_interactions_leave_the_search_index(
    store: Store, seeded: dict[str, str], database_url: str
) -> None:
    await _index_everything(store)
    before = await _indexed_texts(database_url)
    assert any("Paris" in text for text in before)
    assert await store.delete_subject_batch("user", "u1", 100) == (2, 3)  # i0, i2
    after = await _indexed_texts(database_url)
    assert len(after) == len(before) - 2
    assert not any("Paris" in text for text in after)
    assert await store.list_interactions(InteractionQuery(text="Paris")) == []


async def _insert(store: Store, text: str, created_at: datetime) -> list[str]:
    row = Interaction(
        id=uuid7(),
        created_at=created_at,
        endpoint="chat/completions",
        request={"messages": [{"role": "user", "content": text}]},
        status="success",
        http_status=200,
    )
    await store.insert_interactions([row])
    return [row.id]


async def _indexed_texts(database_url: str) -> list[str]:
    sql = "SELECT body FROM interaction_search"
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(urlparse(database_url).path[1:])
        try:
            return [row[0] for row in conn.execute(sql)]
        finally:
            conn.close()
    pg = await asyncpg.connect(database_url)
    try:
        return [row[0] for row in await pg.fetch(sql)]
    finally:
        await pg.close()


async def test_the_latest_thumbs_counts(store: Store, seeded: dict[str, str]) -> None:
    later = T0 + timedelta(days=2)
    changed = Feedback(id=uuid7(), interaction_id=seeded["i0"], created_at=later, thumbs="down")
    await store.insert_feedback([changed])
    rows = await store.list_interactions(InteractionQuery(thumbs="up"))
    assert [row["id"] for row in rows] == [seeded["i4"]]
    rows = await store.list_interactions(InteractionQuery(thumbs="down"))
    assert {row["id"] for row in rows} == {seeded["i0"], seeded["i2"], seeded["i3"]}


FEEDBACK_FILTERS = [f for f, _ in FILTERS if {"outcome", "min_rating", "thumbs"} & set(f)]


@pytest.mark.parametrize("driver_max", [0, 1, 2, 1_000])
async def test_feedback_filters_read_from_events_or_rows_alike(
    store: Store, seeded: dict[str, str], driver_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few matching events: the listing is read from them; many: newest first, row by row.
    Both ways give the same page (0 always reads rows; 1,000 always events)."""
    expected = {}
    for filters in FEEDBACK_FILTERS:
        rows = await store.list_interactions(InteractionQuery(limit=100, **filters))
        expected[str(filters)] = [row["id"] for row in rows]
    monkeypatch.setattr(sql_module, "FEEDBACK_DRIVER_MAX", driver_max)
    for filters in FEEDBACK_FILTERS:
        rows = await store.list_interactions(InteractionQuery(limit=100, **filters))
        assert [row["id"] for row in rows] == expected[str(filters)], filters
        assert expected[str(filters)], filters  # every case lists something


async def test_previous_pages_mirror_the_next_ones(store: Store, seeded: dict[str, str]) -> None:
    pages: list[list[str]] = []
    after = None
    while rows := await store.list_interactions(InteractionQuery(limit=5, after=after)):
        pages.append([row["id"] for row in rows])
        after = _cursor(rows[-1])
    assert [len(page) for page in pages] == [5, 5, 2]
    # Back from the last page: each previous page, newest first, as it was read forwards.
    back: list[list[str]] = [pages[-1]]
    before = await _first_cursor(store, pages[-1][0])
    while rows := await store.list_interactions(InteractionQuery(limit=5, before=before)):
        back.insert(0, [row["id"] for row in rows])
        before = _cursor(rows[0])
    assert back == pages
    newer = await store.list_interactions(InteractionQuery(limit=3, before=before, model="exp"))
    assert newer == []  # nothing is newer than the newest row


async def _first_cursor(store: Store, interaction_id: str) -> Cursor:
    row = await store.get_interaction(interaction_id)
    assert row is not None
    return _cursor(row)


def _cursor(row: dict[str, Any]) -> Cursor:
    return Cursor(datetime.fromisoformat(row["created_at"]), row["id"])


async def test_flagged_keeps_the_newest_few_per_flag(store: Store, seeded: dict[str, str]) -> None:
    flags = ["truncated", "empty_response", "never_seen"]
    later = [
        Interaction(
            id=uuid7(),
            created_at=T0 + timedelta(hours=20, minutes=n),
            endpoint="chat/completions",
            requested_model="chat-a",
            status="success",
            http_status=200,
            quality_flags=["empty_response", "truncated"] if n % 2 else ["empty_response"],
        )
        for n in range(4)
    ]
    await store.insert_interactions(later)
    rows = await store.flagged(TimeWindow(), flags, 2)
    got = [(row["flag"], row["id"]) for row in rows]
    assert got == [
        ("empty_response", later[3].id),
        ("empty_response", later[2].id),
        ("truncated", later[3].id),
        ("truncated", later[1].id),
    ]
    assert rows[0]["requested_model"] == "chat-a" and isinstance(rows[0]["created_at"], str)
    window = TimeWindow(until=T0 + timedelta(hours=20))
    assert [(r["flag"], r["id"]) for r in await store.flagged(window, flags, 2)] == [
        ("truncated", seeded["i1"])
    ]


async def test_list_rows_carry_their_feedback_count(store: Store, seeded: dict[str, str]) -> None:
    rows = await store.list_interactions(InteractionQuery(limit=100))
    counts = {row["id"]: row["feedback_count"] for row in rows}
    assert counts[seeded["i0"]] == 2 and counts[seeded["i11"]] == 0
    assert rows[0]["tags"] == {} and isinstance(rows[0]["created_at"], str)


async def test_keyset_pages_cover_everything_once(store: Store, seeded: dict[str, str]) -> None:
    seen: list[str] = []
    after = None
    while True:
        rows = await store.list_interactions(InteractionQuery(limit=5, after=after))
        seen.extend(row["id"] for row in rows)
        if len(rows) < 5:
            break
        last = rows[-1]
        after = Cursor(datetime.fromisoformat(last["created_at"]), last["id"])
    assert seen == [seeded[f"i{n}"] for n in reversed(range(12))]


# -- stats ----------------------------------------------------------------------------------
async def test_usage_by_variant(store: Store, seeded: dict[str, str]) -> None:
    groups = {(g["model"], g["variant"]): g for g in await store.usage_by_variant(TimeWindow())}
    assert set(groups) == {("chat-a", None), ("exp", "a"), ("exp", "b")}
    chat = groups[("chat-a", None)]
    assert (chat["interactions"], chat["success"], chat["error"]) == (9, 8, 1)
    assert chat["client_disconnected"] == 0
    assert (chat["prompt_tokens"], chat["completion_tokens"]) == (90, 45)
    assert chat["cost_usd"] == pytest.approx(0.001 * (1 + 2 + 3 + 7 + 8 + 9 + 10 + 11 + 12))
    # 100, 200, 300, 700 ... 1200: nearest rank ceil(0.5 * 9) = 5th, ceil(0.95 * 9) = 9th.
    assert chat["latency_ms"] == {"p50": 800.0, "p95": 1200.0}
    exp_b = groups[("exp", "b")]
    assert (exp_b["interactions"], exp_b["success"], exp_b["client_disconnected"]) == (2, 1, 1)
    assert exp_b["latency_ms"] == {"p50": 500.0, "p95": 600.0}


async def test_latency_percentiles_over_a_window(store: Store, seeded: dict[str, str]) -> None:
    assert await store.latency_percentiles(TimeWindow()) == {"p50": 600.0, "p95": 1200.0}
    first_four = TimeWindow(until=T0 + timedelta(hours=4))
    assert await store.latency_percentiles(first_four) == {"p50": 200.0, "p95": 400.0}
    empty = TimeWindow(since=T0 + timedelta(days=30))
    assert await store.latency_percentiles(empty) == {"p50": None, "p95": None}
    assert await store.usage_by_variant(empty) == []


async def test_feedback_by_variant_counts_latest_values(
    store: Store, seeded: dict[str, str]
) -> None:
    groups = {(g["model"], g["variant"]): g for g in await store.feedback_by_variant(TimeWindow())}
    assert groups[("chat-a", None)] == {
        "model": "chat-a",
        "variant": None,
        "events": 5,
        "interactions": 3,
        "thumbs": {"up": 1, "down": 1},
        "rating": {"5": 1, "4": 1},  # i1's 2 was replaced by a 4
        "outcome": {"accepted": 1, "rejected": 1},
        "correction_type": {},
    }
    assert groups[("exp", "b")]["correction_type"] == {"minor_edit": 1}
    assert groups[("exp", "a")]["thumbs"] == {"down": 1}
    window = TimeWindow(since=T0 + timedelta(hours=3))
    assert {(g["model"], g["variant"]) for g in await store.feedback_by_variant(window)} == {
        ("exp", "a"),
        ("exp", "b"),
    }


async def test_a_needle_too_short_for_the_index_searches_the_newest_rows_only(
    store: Store, seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One or two characters cannot use the trigram index: they are looked for among the
    `SHORT_RECENT` newest rows under the other filters, never through a read of every row."""
    await _index_everything(store)
    monkeypatch.setattr(sql_module, "SHORT_RECENT", 3)
    names = {v: k for k, v in seeded.items()}

    async def found(text: str, **filters: Any) -> list[str]:
        rows = await store.list_interactions(InteractionQuery(text=text, limit=100, **filters))
        return [names[row["id"]] for row in rows]

    assert await found("1") == ["i11", "i10"]  # i9, i10, i11 read; i1 is older
    assert await found("11") == ["i11"]
    # A time range reaches further back; three characters search every row.
    assert await found("1", window=TimeWindow(until=T0 + timedelta(hours=3))) == ["i1"]
    assert await found("on 1") == ["i11", "i10", "i1"]
