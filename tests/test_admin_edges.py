"""The admin API at its edges (issue 13), on SQLite and PostgreSQL: times at the ends of the
calendar, digits that are not ASCII, negative limits and JSON structures where text goes are a
422 naming the parameter (never a 500 or a 503); listings answer bounded previews of big rows."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from gateway.admin.previews import PREVIEW_CHARS
from gateway.appkeys import STORE
from gateway.ids import uuid7
from gateway.records.interaction import ERROR, Interaction
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import feedback_config, request
from tests.harness import GatewayHarness


@pytest.fixture
async def gateway(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> GatewayHarness:
    config = feedback_config(upstream, database_url, storage={"exports_dir": str(tmp_path)})
    config["exports"] = {"nightly": {"format": "openai", "out": str(tmp_path / "jobs")}}
    return await make_gateway(config)


def _assert_422(answer: Any, param: str) -> None:
    assert answer.status == 422, answer.body
    assert set(answer.body["error"]) == {"message", "type", "param", "code"}
    assert (answer.body["error"]["code"], answer.body["error"]["param"]) == (
        "validation_failed",
        param,
    )
    assert param.rsplit(".", 1)[-1] in answer.body["error"]["message"]


def _cursor(created_at: str) -> str:
    raw = orjson.dumps([created_at, uuid7()])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


YEAR_1_IN_PARIS = quote("0001-01-01T00:00:00+01:00")  # a year before 1 in UTC
YEAR_9999_IN_NEW_YORK = quote("9999-12-31T23:00:00-05:00")  # a year after 9999 in UTC


@pytest.mark.parametrize(
    ("path", "param"),
    [
        (f"/admin/interactions?since={YEAR_1_IN_PARIS}", "since"),
        (f"/admin/interactions?until={YEAR_9999_IN_NEW_YORK}", "until"),
        (f"/admin/failures?since={YEAR_1_IN_PARIS}", "since"),
        (f"/admin/stats?until={YEAR_9999_IN_NEW_YORK}", "until"),
        (f"/admin/experiments/fake-chat?since={YEAR_1_IN_PARIS}", "since"),
        (f"/admin/interactions?cursor={_cursor('0001-01-01T00:00:00+01:00')}", "cursor"),
        ("/admin/interactions?limit=%C2%B2", "limit"),  # "²": str.isdigit says yes, int says no
        ("/admin/interactions?min_rating=%C2%B3", "min_rating"),
        ("/admin/interactions?limit=-1", "limit"),
        ("/admin/exports?limit=-1", "limit"),  # used to list every run
        ("/admin/exports?limit=0", "limit"),
        ("/admin/exports?limit=%C2%B2", "limit"),
        ("/admin/exports?limit=501", "limit"),
        ("/admin/exports/preview?format=openai&max_tokens=-1", "max_tokens"),
        ("/admin/exports/preview?format=openai&max_tokens=%C2%B2", "max_tokens"),
        ("/admin/exports/preview?format=jsonl&max_tokens=18446744073709551616", "max_tokens"),
        (
            "/admin/exports/preview?format=jsonl&min_rating=999999999999999999999",
            "filters.min_rating",
        ),
        (f"/admin/exports/preview?format=openai&since={YEAR_1_IN_PARIS}", "filters.since"),
    ],
)
async def test_bad_query_values_are_422_naming_the_parameter(
    gateway: GatewayHarness, path: str, param: str
) -> None:
    _assert_422(await request(gateway, "GET", path), param)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/interactions?since=0001-01-01",
        "/admin/interactions?until=9999-12-31T23:59:59Z",
        "/admin/stats?since=0001-01-01&until=9999-12-31",
        "/admin/exports?limit=500",
    ],
)
async def test_the_ends_of_the_calendar_in_utc_are_fine(gateway: GatewayHarness, path: str) -> None:
    answer = await request(gateway, "GET", path)
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"format": ["openai"]}, "format"),
        ({"format": {"name": "openai"}}, "format"),
        ({"job": ["nightly"]}, "job"),
        ({"job": {"name": "nightly"}}, "job"),
        ({"job": "nightly", "all": "yes"}, "all"),
        ({"format": "openai", "max_tokens": []}, "max_tokens"),
        ({"format": "openai", "max_tokens": {}}, "max_tokens"),
        ({"format": "openai", "max_tokens": -3}, "max_tokens"),
        ({"format": "openai", "max_tokens": 1.5}, "max_tokens"),
        ({"format": "openai", "max_tokens": True}, "max_tokens"),
        ({"format": "openai", "filters": {"min_rating": 2**63}}, "filters.min_rating"),
        ({"format": "openai", "filters": []}, "filters"),
        ({"format": "openai", "filters": "models=a"}, "filters"),
        ({"format": "openai", "filters": {"models": {"a": 1}}}, "filters.models"),
        ({"format": "openai", "filters": {"users": [["u1"]]}}, "filters.users"),
        ({"format": "openai", "filters": {"tags": {"team": ["a"]}}}, "filters.tags"),
        ({"format": "openai", "filters": {"since": "0001-01-01T00:00:00+01:00"}}, "filters.since"),
        ({"format": "openai", "colour": "red"}, "colour"),
    ],
)
async def test_export_requests_with_the_wrong_json_types_are_422(
    gateway: GatewayHarness, body: dict[str, Any], param: str
) -> None:
    _assert_422(await request(gateway, "POST", "/admin/exports", body), param)
    runs = await request(gateway, "GET", "/admin/exports")
    assert runs.body["data"] == []  # no run was started


# -- bounded previews in listings ------------------------------------------------------------
BIG_TEXT = "x" * 1_000_000
MANY_MESSAGES = [{"role": "user", "content": f"message {n}"} for n in range(5_000)]


async def _big_rows(gateway: GatewayHarness) -> list[str]:
    """Three rows with a megabyte-sized message, 5,000 messages and a megabyte answer; the
    last one failed."""
    rows = [
        Interaction(
            id=uuid7(),
            created_at=datetime.now(UTC),
            endpoint="chat/completions",
            requested_model="fake-chat",
            request={"model": "fake-chat", "messages": messages},
            response={"choices": [{"message": {"role": "assistant", "content": BIG_TEXT}}]},
            status=ERROR if n == 2 else "success",
        )
        for n, messages in enumerate(
            [[{"role": "user", "content": BIG_TEXT}], MANY_MESSAGES, MANY_MESSAGES]
        )
    ]
    await gateway.app[STORE].insert_interactions(rows)
    return [row.id for row in rows]


async def test_listings_show_bounded_previews_and_one_interaction_shows_all(
    gateway: GatewayHarness,
) -> None:
    big, many, failed = await _big_rows(gateway)
    listing = await request(gateway, "GET", "/admin/interactions")
    assert listing.status == 200
    assert len(orjson.dumps(listing.body)) < 3 * 4 * PREVIEW_CHARS  # was over 3 MB
    rows = {row["id"]: row for row in listing.body["data"]}
    assert set(rows) == {big, many, failed}

    kept, _, left_out = rows[big]["request"]["messages"][0]["content"].partition("...[+")
    assert set(kept) == {"x"} and len(kept) < PREVIEW_CHARS
    assert len(kept) + int(left_out.removesuffix(" chars]")) == len(BIG_TEXT)
    assert rows[big]["request"]["model"] == "fake-chat"  # the shape and short fields stay
    answer = rows[big]["response"]["choices"][0]["message"]
    assert answer["role"] == "assistant" and len(answer["content"]) < PREVIEW_CHARS + 30
    messages = rows[many]["request"]["messages"]
    assert messages[0] == {"role": "user", "content": "message 0"}
    assert messages[-1].startswith("...[+") and messages[-1].endswith(" items]")
    assert len(messages) < 500

    failures = await request(gateway, "GET", "/admin/failures")
    [failure] = failures.body["data"]
    assert failure["id"] == failed
    assert failure["request"]["messages"][-1].endswith(" items]")

    whole = await request(gateway, "GET", f"/admin/interactions/{big}")
    assert whole.body["request"]["messages"][0]["content"] == BIG_TEXT
    assert whole.body["response"]["choices"][0]["message"]["content"] == BIG_TEXT
