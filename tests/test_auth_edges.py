"""Credentials at their edges (issue 13): strict `Authorization: Bearer` parsing, undecodable and
non-ASCII keys and feedback tokens (a 401 in OpenAI's shape, never a 500), and feedback held to
the interactions of the key that made them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from gateway.ids import uuid7
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import feedback_config, fetch_feedback, post_feedback, request
from tests.harness import GatewayHarness
from tests.raw_http import head, send

KEYS = [
    {"name": "alice", "key": "fw-alice", "scopes": ["inference", "feedback"]},
    {"name": "bob", "key": "fw-bob", "scopes": ["inference", "feedback"]},
    {"name": "reviews", "key": "fw-reviews", "scopes": ["feedback", "admin"]},
]


def _keyed_config(upstream: FakeUpstream, database_url: str) -> dict[str, Any]:
    return feedback_config(upstream, database_url, auth={"keys": KEYS})


@pytest.fixture
async def keyed(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    return await make_gateway(_keyed_config(upstream, sqlite_url))


def _assert_error(status: int, body: Any, expected: int, code: str, param: str | None) -> None:
    assert status == expected, body
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["code"], body["error"]["param"]) == (code, param)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- Authorization: Bearer <key>, strictly ---------------------------------------------------
@pytest.mark.parametrize(
    ("authorization", "accepted"),
    [
        ("Bearer fw-alice", True),
        ("bearer fw-alice", True),  # the scheme is case-insensitive (RFC 9110)
        ("BEARER   fw-alice", True),
        ("fw-alice", False),  # a bare key is not guessed at
        ("Basic fw-alice", False),
        ("Token fw-alice", False),
        ("Bearer", False),
        ("Bearerfw-alice", False),
        ("Bearer fw-alice-not", False),
    ],
)
async def test_only_bearer_keys_are_accepted(
    keyed: GatewayHarness, authorization: str, accepted: bool
) -> None:
    answer = await request(keyed, "GET", "/v1/models", headers={"Authorization": authorization})
    if accepted:
        assert answer.status == 200, answer.body
    else:
        _assert_error(answer.status, answer.body, 401, "invalid_api_key", None)


@pytest.mark.parametrize("path", ["/v1/models", "/v1/feedback", "/admin/interactions"])
@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer fw-al\xe9ice",  # Latin-1 bytes, as http.client sends them: not UTF-8
        b"Bearer \xff\xfe\xfd",
        "Bearer ключ".encode(),  # valid UTF-8, but a key is ASCII
        b"\xe9",
    ],
)
async def test_undecodable_or_non_ascii_keys_are_401_in_openais_shape(
    keyed: GatewayHarness, path: str, authorization: bytes
) -> None:
    method = "POST" if path == "/v1/feedback" else "GET"
    body = orjson.dumps({"interaction_id": uuid7(), "thumbs": "up"})
    headers: dict[str, str | bytes] = {
        "Authorization": authorization,
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    answer = await send(keyed.base_url, head(method, path, headers) + body)
    assert answer.headers["content-type"].startswith("application/json")
    _assert_error(answer.status, answer.json(), 401, "invalid_api_key", None)


@pytest.mark.parametrize(
    "token", [b"v1.\xe9.1.x", "v1.é.9999999999.sig".encode(), b"\xff" * 40, b"v1.a.1.\xe9"]
)
async def test_a_non_ascii_feedback_token_header_is_401(
    keyed: GatewayHarness, token: bytes
) -> None:
    body = orjson.dumps({"interaction_id": uuid7(), "thumbs": "up"})
    headers: dict[str, str | bytes] = {
        "Flywheel-Feedback-Token": token,
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    answer = await send(keyed.base_url, head("POST", "/v1/feedback", headers) + body)
    _assert_error(answer.status, answer.json(), 401, "invalid_feedback_token", "feedback_token")
    assert await fetch_feedback(keyed.database_url) == []


@pytest.mark.parametrize("token", ["v1.é.9999999999.sig", "ключ", "v1.a.1.sïg"])
async def test_a_non_ascii_feedback_token_in_the_body_is_401(
    keyed: GatewayHarness, token: str
) -> None:
    answer = await post_feedback(keyed, {"feedback_token": token, "thumbs": "up"})
    _assert_error(answer.status, answer.body, 401, "invalid_feedback_token", "feedback_token")


# -- feedback on one's own interactions ------------------------------------------------------
async def _chat(gateway: GatewayHarness, key: str) -> tuple[str, str]:
    """One chat call made with `key`: (interaction id, upstream response id)."""
    raw = await gateway.client(api_key=key).chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}]
    )
    return raw.headers["Flywheel-Interaction-Id"], raw.parse().id


async def test_a_key_rates_only_its_own_interactions_and_learns_nothing_of_others(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway = await make_gateway(_keyed_config(upstream, database_url))
    alices, alices_response = await _chat(gateway, "fw-alice")
    bobs, _ = await _chat(gateway, "fw-bob")
    never_issued = uuid7()

    async def bob_rates(body: Any) -> Any:
        return await post_feedback(gateway, body, _bearer("fw-bob"))

    unknown = await bob_rates({"interaction_id": never_issued, "thumbs": "down"})
    others = await bob_rates({"interaction_id": alices, "thumbs": "down"})
    # Another key's interaction is answered exactly like an id that was never issued.
    for answer, id_ in ((unknown, never_issued), (others, alices)):
        _assert_error(answer.status, answer.body, 404, "not_found", "interaction_id")
        assert answer.body["error"]["message"] == f"No such interaction: interaction_id {id_}."
    by_response = await bob_rates({"response_id": alices_response, "thumbs": "down"})
    _assert_error(by_response.status, by_response.body, 404, "not_found", "response_id")
    batch = [{"interaction_id": bobs, "thumbs": "up"}, {"interaction_id": alices, "rating": 1}]
    mixed = await bob_rates(batch)
    _assert_error(mixed.status, mixed.body, 404, "not_found", "[1].interaction_id")
    assert await fetch_feedback(gateway.database_url) == []  # all or nothing

    own = await post_feedback(gateway, {"interaction_id": alices, "rating": 5}, _bearer("fw-alice"))
    assert own.status == 201, own.body
    # The admin scope may rate any interaction: a review team's key.
    review = await post_feedback(
        gateway, {"interaction_id": alices, "rating": 4}, _bearer("fw-reviews")
    )
    assert review.status == 201, review.body
    rows = await fetch_feedback(gateway.database_url, alices)
    assert [(r["rating"], r["api_key_name"]) for r in rows] == [(5, "alice"), (4, "reviews")]

    # Another process (a restart, another replica) has not seen these ids: it asks the store.
    await gateway.row(alices)
    replica = await make_gateway(_keyed_config(upstream, database_url))
    again = await post_feedback(
        replica, {"interaction_id": alices, "thumbs": "down"}, _bearer("fw-bob")
    )
    _assert_error(again.status, again.body, 404, "not_found", "interaction_id")
    assert again.body["error"]["message"] == f"No such interaction: interaction_id {alices}."
    mine = await post_feedback(
        replica, {"response_id": alices_response, "thumbs": "up"}, _bearer("fw-alice")
    )
    assert (mine.status, mine.body.get("interaction_id")) == (201, alices), mine.body
    rows = await fetch_feedback(gateway.database_url, alices)
    assert [r["api_key_name"] for r in rows] == ["alice", "reviews", "alice"]
