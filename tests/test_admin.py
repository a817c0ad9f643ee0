"""The review API over HTTP on a seeded dataset, on SQLite and PostgreSQL: filters, cursor
paging, one interaction with its feedback, stats, failures, and the admin scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from gateway.admin.params import encode_cursor
from gateway.appkeys import STORE
from gateway.ids import uuid7
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import T0, feedback_config, request, seed_review_data
from tests.harness import GatewayHarness


@pytest.fixture
async def gateway(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    return await make_gateway(feedback_config(upstream, database_url))


@pytest.fixture
async def seeded(gateway: GatewayHarness) -> dict[str, str]:
    return await seed_review_data(gateway.app[STORE])


async def _get(gateway: GatewayHarness, path: str, **headers: str) -> Any:
    return await request(gateway, "GET", path, headers=headers)


def _names(seeded: dict[str, str], rows: list[dict[str, Any]]) -> list[str]:
    by_id = {v: k for k, v in seeded.items()}
    return [by_id[row["id"]] for row in rows]


def _newest_first(*names: str) -> list[str]:
    return sorted(names, key=lambda name: -int(name[1:]))


HOUR3 = quote((T0.replace(hour=3)).isoformat())
HOUR6 = quote((T0.replace(hour=6)).isoformat())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("model=exp", ["i3", "i4", "i5"]),
        ("model=exp&variant=b", ["i4", "i5"]),
        ("status=error", ["i2"]),
        ("user=u1", ["i0", "i2"]),
        ("session=s1", ["i0", "i1"]),
        ("tag=team%3Dsearch", ["i0", "i1"]),
        ("tag=team%3Dsearch&tag=env%3Dprod", ["i0"]),
        ("has_feedback=true", ["i0", "i1", "i2", "i3", "i4"]),
        ("has_feedback=false&model=exp", ["i5"]),
        ("outcome=rejected", ["i1"]),
        ("min_rating=4", ["i0", "i1"]),
        ("thumbs=up", ["i0", "i4"]),
        ("thumbs=down&has_feedback=true", ["i2", "i3"]),
        ("quality_flag=truncated", ["i1"]),
        ("q=PARIS", ["i0"]),
        ("q=in+%22Germany%22", ["i1"]),
        (f"since={HOUR3}&until={HOUR6}", ["i3", "i4", "i5"]),
        ("since=2025-03-01T10:00:00Z", ["i10", "i11"]),
        ("until=2025-03-01", []),  # a date is midnight UTC; until is exclusive
    ],
)
async def test_filters(
    gateway: GatewayHarness, seeded: dict[str, str], query: str, expected: list[str]
) -> None:
    answer = await _get(gateway, f"/admin/interactions?{query}")
    assert answer.status == 200, answer.body
    assert _names(seeded, answer.body["data"]) == _newest_first(*expected)
    assert (answer.body["has_more"], answer.body["next_cursor"]) == (False, None)


async def test_cursor_pagination(gateway: GatewayHarness, seeded: dict[str, str]) -> None:
    pages, path = [], "/admin/interactions?limit=5&model=chat-a"
    while True:
        answer = await _get(gateway, path)
        assert answer.status == 200
        pages.append(_names(seeded, answer.body["data"]))
        if answer.body["next_cursor"] is None:
            assert answer.body["has_more"] is False
            break
        assert answer.body["has_more"] is True
        path = f"/admin/interactions?limit=5&model=chat-a&cursor={answer.body['next_cursor']}"
    assert pages == [["i11", "i10", "i9", "i8", "i7"], ["i6", "i2", "i1", "i0"]]
    assert answer.body["prev_cursor"] is not None  # the last page has newer ones before it
    everything = await _get(gateway, "/admin/interactions")
    assert len(everything.body["data"]) == 12  # the default limit, 50, holds them all
    row = everything.body["data"][-1]
    assert row["feedback_count"] == 2 and row["request"]["messages"]


async def test_prev_cursor_pages_back_to_the_newest(
    gateway: GatewayHarness, seeded: dict[str, str]
) -> None:
    first = await _get(gateway, "/admin/interactions?limit=5&model=chat-a")
    assert first.body["prev_cursor"] is None  # nothing is newer than the first page
    second = await _get(
        gateway, f"/admin/interactions?limit=5&model=chat-a&cursor={first.body['next_cursor']}"
    )
    assert _names(seeded, second.body["data"]) == ["i6", "i2", "i1", "i0"]
    back = await _get(
        gateway, f"/admin/interactions?limit=5&model=chat-a&before={second.body['prev_cursor']}"
    )
    assert back.status == 200, back.body
    assert _names(seeded, back.body["data"]) == _names(seeded, first.body["data"])
    assert (back.body["has_more"], back.body["prev_cursor"]) == (False, None)
    assert back.body["next_cursor"] == first.body["next_cursor"]
    # Two rows back from the oldest: a page of two, with more newer ones.
    both = f"cursor={first.body['next_cursor']}&before={second.body['prev_cursor']}"
    refused = await _get(gateway, f"/admin/interactions?{both}")
    assert (refused.status, refused.body["error"]["param"]) == (422, "before")
    i0 = encode_cursor(second.body["data"][-1])
    oldest = await _get(gateway, f"/admin/interactions?limit=2&before={i0}")
    assert _names(seeded, oldest.body["data"]) == ["i2", "i1"]
    assert oldest.body["has_more"] is True and oldest.body["prev_cursor"] is not None


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("thumbs=sideways", "thumbs"),
        ("before=not-a-cursor", "before"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("modle=exp", "modle"),
        ("since=yesterday", "since"),
        ("since=2025-03-02&until=2025-03-01", "until"),
        ("status=broken", "status"),
        ("has_feedback=maybe", "has_feedback"),
        ("min_rating=9", "min_rating"),
        ("outcome=perhaps", "outcome"),
        ("tag=team", "tag"),
        ("model=", "model"),
    ],
)
async def test_bad_queries_are_422_naming_the_parameter(
    gateway: GatewayHarness, query: str, param: str
) -> None:
    answer = await _get(gateway, f"/admin/interactions?{query}")
    assert answer.status == 422
    assert answer.body["error"]["code"] == "validation_failed"
    assert answer.body["error"]["param"] == param
    assert param in answer.body["error"]["message"]


async def test_one_interaction_with_its_feedback(
    gateway: GatewayHarness, seeded: dict[str, str]
) -> None:
    answer = await _get(gateway, f"/admin/interactions/{seeded['i1']}")
    assert answer.status == 200
    assert answer.body["id"] == seeded["i1"]
    assert answer.body["response"]["choices"][0]["message"]["content"] == 'Berlin is in "Germany".'
    events = answer.body["feedback"]["events"]
    assert [(e["rating"], e["outcome"]) for e in events] == [(2, "rejected"), (4, None)]
    assert answer.body["feedback"]["latest"] == {"rating": 4, "outcome": "rejected"}
    quiet = await _get(gateway, f"/admin/interactions/{seeded['i9']}")
    assert quiet.body["feedback"] == {"events": [], "latest": {}}
    for missing in (uuid7(), "not-a-uuid"):
        answer = await _get(gateway, f"/admin/interactions/{missing}")
        assert (answer.status, answer.body["error"]["code"]) == (404, "not_found")


async def test_stats(gateway: GatewayHarness, seeded: dict[str, str]) -> None:
    answer = await _get(gateway, "/admin/stats")
    assert answer.status == 200
    totals = answer.body["totals"]
    assert (totals["interactions"], totals["success"], totals["error"]) == (12, 10, 1)
    assert totals["client_disconnected"] == 1
    assert totals["success_rate"] == pytest.approx(10 / 12)
    assert totals["latency_ms"] == {"p50": 600.0, "p95": 1200.0}
    assert totals["cost_usd"] == pytest.approx(0.001 * sum(range(1, 13)))
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (120, 60)
    assert totals["feedback"] == {
        "events": 7,
        "interactions": 5,
        "thumbs": {"down": 2, "up": 2},
        "rating": {"4": 1, "5": 1},
        "outcome": {"accepted": 1, "modified": 1, "rejected": 1},
        "correction_type": {"minor_edit": 1},
        "rating_avg": 4.5,
    }
    groups = {(g["model"], g["variant"]): g for g in answer.body["by_variant"]}
    assert set(groups) == {("chat-a", None), ("exp", "a"), ("exp", "b")}
    exp_b = groups[("exp", "b")]
    assert (exp_b["interactions"], exp_b["success_rate"]) == (2, 0.5)
    assert exp_b["feedback"]["thumbs"] == {"up": 1}
    assert groups[("exp", "a")]["feedback"]["rating_avg"] is None

    window = await _get(gateway, "/admin/stats?since=2025-03-01T03:00:00Z&until=2025-03-01T05:00Z")
    assert window.body["totals"]["interactions"] == 2
    assert window.body["since"] == "2025-03-01T03:00:00+00:00"
    assert [g["variant"] for g in window.body["by_variant"]] == ["a", "b"]
    bad = await _get(gateway, "/admin/stats?model=exp")
    assert (bad.status, bad.body["error"]["param"]) == (422, "model")


async def test_failures(gateway: GatewayHarness, seeded: dict[str, str]) -> None:
    answer = await _get(gateway, "/admin/failures")
    assert answer.status == 200
    [failure] = answer.body["data"]
    assert failure["id"] == seeded["i2"]
    assert failure["error_type"] == "upstream_error"
    assert "boom" in failure["error_message"]
    assert failure["request"] == {"messages": [{"role": "user", "content": "question 2"}]}
    assert "response" not in failure
    assert (await _get(gateway, "/admin/failures?model=exp")).body["data"] == []
    assert (await _get(gateway, "/admin/failures?status=success")).status == 422


async def test_the_review_api_needs_the_admin_scope(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    config = feedback_config(upstream, sqlite_url)
    config["auth"] = {
        "keys": [
            {"name": "reviews", "key": "fw-feedback-key", "scopes": ["feedback"]},
            {"name": "ops", "key": "fw-ops-key", "scopes": ["admin"]},
        ]
    }
    gateway = await make_gateway(config)
    for path in ("/admin/interactions", "/admin/stats", "/admin/failures"):
        assert (await _get(gateway, path)).status == 401
        feedback_key = await _get(gateway, path, Authorization="Bearer fw-feedback-key")
        assert feedback_key.status == 403
        assert (await _get(gateway, path, Authorization="Bearer fw-ops-key")).status == 200
