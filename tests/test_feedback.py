"""POST /v1/feedback through the real gateway: the SDK makes the calls, feedback is posted over
HTTP as frontends and backends do, and rows are checked straight in SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest

from gateway.feedback.tokens import FeedbackTokens
from gateway.ids import uuid7
from tests.fake_upstream import FakeUpstream, expected_content
from tests.feedback_support import (
    APP_ORIGIN,
    SECRET,
    TOKENS,
    chat,
    feedback_config,
    fetch_feedback,
    post_feedback,
    request,
)
from tests.harness import GatewayHarness, fetch_interaction

FULL = {
    "rating": 4,
    "thumbs": "up",
    "score": 0.75,
    "outcome": "accepted",
    "comment": "Clear, but a bit long.",
    "dimensions": {"accuracy": 5, "helpfulness": 4, "clarity": 3},
    "time_to_decision_ms": 4500,
    "source": "support-console",
    "tags": {"team": "search"},
}


@pytest.fixture
async def gateway(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    """Once on SQLite, once on PostgreSQL, with a known token secret and one CORS origin."""
    return await make_gateway(feedback_config(upstream, database_url))


def _assert_error(answer: Any, status: int, code: str, param: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert set(answer.body) == {"error"}
    assert set(answer.body["error"]) == {"message", "type", "param", "code"}
    assert answer.body["error"]["code"] == code
    if param is not None:
        assert answer.body["error"]["param"] == param


# -- linking feedback to interactions -------------------------------------------------------
async def test_feedback_by_interaction_id_stores_every_field(gateway: GatewayHarness) -> None:
    interaction_id, _, _ = await chat(gateway)
    answer = await post_feedback(gateway, {"interaction_id": interaction_id, **FULL})
    assert answer.status == 201
    assert answer.body == {
        "object": "feedback",
        "id": answer.body["id"],
        "interaction_id": interaction_id,
    }
    [row] = await fetch_feedback(gateway.database_url, interaction_id)
    assert row["id"] == answer.body["id"]
    assert {name: row[name] for name in FULL} == FULL
    assert row["correction"] is None and row["edit_distance"] is None
    assert row["api_key_name"] is None  # no auth keys configured


@pytest.mark.parametrize("stream", [False, True])
async def test_feedback_by_upstream_response_id(gateway: GatewayHarness, stream: bool) -> None:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], stream=stream
    )
    parsed = raw.parse()
    if stream:
        chunks = [chunk async for chunk in parsed]  # read to the end: the row is complete
        response_id = chunks[0].id
    else:
        response_id = parsed.id
    assert response_id.startswith("chatcmpl-")
    answer = await post_feedback(gateway, {"response_id": response_id, "thumbs": "down"})
    assert answer.status == 201, answer.body
    assert answer.body["interaction_id"] == raw.headers["Flywheel-Interaction-Id"]


async def test_response_id_of_a_stored_row_resolves_on_a_new_process(
    gateway: GatewayHarness, make_gateway: Callable[..., Any], upstream: FakeUpstream
) -> None:
    """Another gateway (a restart, another replica) finds the response id in the store."""
    interaction_id, _, completion = await chat(gateway)
    await gateway.row(interaction_id)
    other = await make_gateway(feedback_config(upstream, gateway.database_url))
    answer = await post_feedback(other, {"response_id": completion.id, "rating": 2})
    assert (answer.status, answer.body["interaction_id"]) == (201, interaction_id)
    answer = await post_feedback(other, {"interaction_id": interaction_id, "rating": 3})
    assert answer.status == 201


async def test_a_batch_is_stored_in_order(gateway: GatewayHarness) -> None:
    first, _, _ = await chat(gateway, "one")
    second, _, completion = await chat(gateway, "two")
    batch = [
        {"interaction_id": first, "thumbs": "up"},
        {"response_id": completion.id, "rating": 2},
        {"interaction_id": first, "thumbs": "down", "comment": "changed my mind"},
    ]
    answer = await post_feedback(gateway, batch)
    assert answer.status == 201
    assert answer.body["object"] == "list"
    assert [d["interaction_id"] for d in answer.body["data"]] == [first, second, first]
    rows = await fetch_feedback(gateway.database_url, first)
    assert [r["thumbs"] for r in rows] == ["up", "down"]  # array order is time order
    assert [r["id"] for r in rows] == [answer.body["data"][0]["id"], answer.body["data"][2]["id"]]
    assert len(await fetch_feedback(gateway.database_url)) == 3


async def test_unknown_interactions_are_404_and_nothing_is_stored(gateway: GatewayHarness) -> None:
    known, _, _ = await chat(gateway)
    never_issued = uuid7()
    answer = await post_feedback(gateway, {"interaction_id": never_issued, "thumbs": "up"})
    _assert_error(answer, 404, "not_found", "interaction_id")
    assert never_issued in answer.body["error"]["message"]
    answer = await post_feedback(gateway, {"response_id": "chatcmpl-nope", "thumbs": "up"})
    _assert_error(answer, 404, "not_found", "response_id")
    batch = [
        {"interaction_id": known, "thumbs": "up"},
        {"interaction_id": never_issued, "thumbs": "up"},
    ]
    answer = await post_feedback(gateway, batch)
    _assert_error(answer, 404, "not_found", "[1].interaction_id")
    assert await fetch_feedback(gateway.database_url) == []


# -- several events, idempotency ------------------------------------------------------------
async def test_idempotency_key_twice_gives_the_first_result_and_one_row(
    gateway: GatewayHarness,
) -> None:
    interaction_id, _, _ = await chat(gateway)
    body = {"interaction_id": interaction_id, "rating": 5, "idempotency_key": "retry-1"}
    first = await post_feedback(gateway, body)
    again = await post_feedback(gateway, body)
    assert first.status == again.status == 201
    assert again.body == first.body
    concurrent = await asyncio.gather(*(post_feedback(gateway, body) for _ in range(5)))
    assert {a.body["id"] for a in concurrent} == {first.body["id"]}
    batch = await post_feedback(gateway, [body, {**body, "idempotency_key": "retry-2"}, body])
    ids = [d["id"] for d in batch.body["data"]]
    assert ids[0] == ids[2] == first.body["id"] != ids[1]
    rows = await fetch_feedback(gateway.database_url, interaction_id)
    assert sorted(r["idempotency_key"] for r in rows) == ["retry-1", "retry-2"]


async def test_several_events_are_kept_and_the_latest_value_wins(gateway: GatewayHarness) -> None:
    interaction_id, _, _ = await chat(gateway)
    for body in (
        {"thumbs": "up", "dimensions": {"accuracy": 5}},
        {"rating": 2},
        {"thumbs": "down", "dimensions": {"clarity": 2}},
    ):
        answer = await post_feedback(gateway, {"interaction_id": interaction_id, **body})
        assert answer.status == 201
    assert len(await fetch_feedback(gateway.database_url, interaction_id)) == 3
    await gateway.row(interaction_id)
    detail = await request(gateway, "GET", f"/admin/interactions/{interaction_id}")
    assert len(detail.body["feedback"]["events"]) == 3
    assert detail.body["feedback"]["latest"] == {
        "thumbs": "down",
        "rating": 2,
        "dimensions": {"accuracy": 5, "clarity": 2},  # merged name by name
    }


# -- before the recorder has written the row ------------------------------------------------
@pytest.fixture
async def lagging_gateway(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    """The recorder holds rows for 1.5 s before writing them: feedback gets there first."""
    config = feedback_config(upstream, database_url, capture={"flush_interval": 1.5})
    return await make_gateway(config)


async def test_feedback_before_the_row_is_written_is_accepted(
    lagging_gateway: GatewayHarness,
) -> None:
    interaction_id, _, completion = await chat(lagging_gateway)
    by_id = await post_feedback(lagging_gateway, {"interaction_id": interaction_id, "rating": 5})
    by_response = await post_feedback(lagging_gateway, {"response_id": completion.id, "rating": 4})
    assert await fetch_interaction(lagging_gateway.database_url, interaction_id) is None
    assert (by_id.status, by_response.status) == (201, 201)
    assert by_response.body["interaction_id"] == interaction_id
    await lagging_gateway.row(interaction_id)  # and the row does arrive
    assert len(await fetch_feedback(lagging_gateway.database_url, interaction_id)) == 2


async def test_feedback_right_after_each_call_under_load(lagging_gateway: GatewayHarness) -> None:
    async def call_then_rate(n: int) -> int:
        interaction_id, _, _ = await chat(lagging_gateway, f"question {n}")
        answer = await post_feedback(
            lagging_gateway, {"interaction_id": interaction_id, "rating": 1 + n % 5}
        )
        return answer.status

    statuses = await asyncio.gather(*(call_then_rate(n) for n in range(40)))
    assert statuses == [201] * 40
    assert len(await fetch_feedback(lagging_gateway.database_url)) == 40


async def test_correction_before_the_row_is_written_still_gets_its_edit_distance(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    config = feedback_config(upstream, database_url, capture={"flush_interval": 0.3})
    gateway = await make_gateway(config)
    interaction_id, _, completion = await chat(gateway, "hi")
    answer_text = completion.choices[0].message.content
    assert answer_text == expected_content("hi")
    corrected = answer_text.replace("Hello", "Hallo")  # one substitution
    answer = await post_feedback(
        gateway, {"interaction_id": interaction_id, "correction": corrected, "outcome": "modified"}
    )
    assert answer.status == 201
    [row] = await fetch_feedback(gateway.database_url, interaction_id)
    assert (row["edit_distance"], row["correction_type"]) == (1, "minor_edit")


@pytest.mark.parametrize(
    ("correction", "distance", "kind"),
    [
        ("Hello! You said: hi", 0, "unchanged"),
        ("Hello! You said: hi!", 1, "minor_edit"),
        ("Goodbye.", None, "major_edit"),
        ("", 19, "major_edit"),
    ],
)
async def test_corrections_are_classified(
    gateway: GatewayHarness, correction: str, distance: int | None, kind: str
) -> None:
    interaction_id, _, _ = await chat(gateway, "hi")
    await gateway.row(interaction_id)
    answer = await post_feedback(
        gateway, {"interaction_id": interaction_id, "correction": correction}
    )
    assert answer.status == 201
    [row] = await fetch_feedback(gateway.database_url, interaction_id)
    assert row["correction"] == correction
    assert row["correction_type"] == kind
    if distance is not None:
        assert row["edit_distance"] == distance


async def test_major_edit_threshold_is_configurable(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    config = feedback_config(upstream, sqlite_url, feedback={"major_edit_threshold": 0.05})
    gateway = await make_gateway(config)
    interaction_id, _, _ = await chat(gateway, "hi")  # "Hello! You said: hi", 19 characters
    answer = await post_feedback(
        gateway, {"interaction_id": interaction_id, "correction": "Hello! You said: hi!!"}
    )
    assert answer.status == 201
    [row] = await fetch_feedback(gateway.database_url, interaction_id)
    assert (row["edit_distance"], row["correction_type"]) == (2, "major_edit")  # 2/21 >= 0.05


# -- feedback tokens ------------------------------------------------------------------------
async def test_every_inference_response_carries_a_token_for_its_interaction(
    gateway: GatewayHarness,
) -> None:
    interaction_id, token, _ = await chat(gateway)
    assert TOKENS.verify(token).interaction_id == interaction_id
    stream = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    _ = [chunk async for chunk in stream.parse()]
    assert (
        TOKENS.verify(stream.headers["Flywheel-Feedback-Token"]).interaction_id
        == (stream.headers["Flywheel-Interaction-Id"])
    )
    for model in ("no-such-model", "error-500"):
        with pytest.raises(openai.APIStatusError) as caught:
            await gateway.client().chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        headers = caught.value.response.headers
        verified = TOKENS.verify(headers["Flywheel-Feedback-Token"])
        assert verified.interaction_id == headers["Flywheel-Interaction-Id"]
        assert verified.expires_at > time.time() + 6 * 24 * 3600  # default: 7 days


@pytest.fixture
async def keyed_gateway(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    config = feedback_config(upstream, sqlite_url)
    config["auth"] = {
        "keys": [
            {"name": "app", "key": "fw-app-key", "scopes": ["inference"]},
            # Admin too: it rates the app's interactions, and a key without the admin scope
            # may rate only its own (tests/test_auth_edges.py).
            {"name": "reviews", "key": "fw-feedback-key", "scopes": ["feedback", "admin"]},
            {"name": "ops", "key": "fw-ops-key", "scopes": ["admin"]},
        ]
    }
    return await make_gateway(config)


async def _keyed_chat(gateway: GatewayHarness) -> tuple[str, str]:
    raw = await gateway.client(api_key="fw-app-key").chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}]
    )
    return raw.headers["Flywheel-Interaction-Id"], raw.headers["Flywheel-Feedback-Token"]


async def test_token_in_header_or_body_needs_no_api_key(keyed_gateway: GatewayHarness) -> None:
    interaction_id, token = await _keyed_chat(keyed_gateway)
    in_header = await post_feedback(
        keyed_gateway,
        {"interaction_id": interaction_id, "thumbs": "up"},
        headers={"Flywheel-Feedback-Token": token},
    )
    in_body = await post_feedback(keyed_gateway, {"feedback_token": token, "thumbs": "down"})
    assert (in_header.status, in_body.status) == (201, 201), (in_header.body, in_body.body)
    assert in_body.body["interaction_id"] == interaction_id  # the token names the interaction
    rows = await fetch_feedback(keyed_gateway.database_url, interaction_id)
    assert [(r["thumbs"], r["api_key_name"]) for r in rows] == [("up", None), ("down", None)]


async def test_api_keys_need_the_feedback_scope(keyed_gateway: GatewayHarness) -> None:
    interaction_id, _ = await _keyed_chat(keyed_gateway)
    body = {"interaction_id": interaction_id, "rating": 3}
    _assert_error(await post_feedback(keyed_gateway, body), 401, "invalid_api_key")
    inference_only = {"Authorization": "Bearer fw-app-key"}
    _assert_error(
        await post_feedback(keyed_gateway, body, inference_only), 403, "insufficient_scope"
    )
    answer = await post_feedback(keyed_gateway, body, {"Authorization": "Bearer fw-feedback-key"})
    assert answer.status == 201
    [row] = await fetch_feedback(keyed_gateway.database_url, interaction_id)
    assert row["api_key_name"] == "reviews"


async def test_a_token_only_speaks_for_its_own_interaction(keyed_gateway: GatewayHarness) -> None:
    mine, token = await _keyed_chat(keyed_gateway)
    other, _ = await _keyed_chat(keyed_gateway)
    answer = await post_feedback(
        keyed_gateway,
        {"interaction_id": other, "thumbs": "up"},
        headers={"Flywheel-Feedback-Token": token},
    )
    _assert_error(answer, 403, "token_interaction_mismatch", "interaction_id")
    batch = [{"interaction_id": mine, "thumbs": "up"}, {"interaction_id": other, "thumbs": "up"}]
    answer = await post_feedback(keyed_gateway, batch, headers={"Flywheel-Feedback-Token": token})
    _assert_error(answer, 403, "token_interaction_mismatch", "[1].interaction_id")
    assert await fetch_feedback(keyed_gateway.database_url) == []


async def test_expired_and_tampered_tokens_are_401(keyed_gateway: GatewayHarness) -> None:
    interaction_id, token = await _keyed_chat(keyed_gateway)
    other, _ = await _keyed_chat(keyed_gateway)
    expired = TOKENS.issue(interaction_id, expires_at=int(time.time()) - 1)
    body, sig = token.rsplit(".", 1)
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    version, token_id, expiry, signature = token.split(".")
    extended = ".".join([version, token_id, str(int(expiry) + 3600), signature])
    forged_secret = FeedbackTokens("someone-else's-secret-0123456789abcdef", 3600)
    cases = {
        "expired_feedback_token": expired,
        "invalid_feedback_token": body + "." + flipped,
    }
    for code, bad in cases.items():
        answer = await post_feedback(
            keyed_gateway,
            {"interaction_id": interaction_id, "thumbs": "up"},
            headers={"Flywheel-Feedback-Token": bad},
        )
        _assert_error(answer, 401, code, "feedback_token")
    for bad in (
        token.replace(interaction_id, other),  # someone else's id, this id's signature
        extended,  # a later expiry, same signature
        forged_secret.issue(interaction_id),
        "not-a-token",
    ):
        answer = await post_feedback(keyed_gateway, {"feedback_token": bad, "thumbs": "up"})
        _assert_error(answer, 401, "invalid_feedback_token", "feedback_token")
    assert await fetch_feedback(keyed_gateway.database_url) == []


def test_issuing_a_token_costs_a_few_microseconds() -> None:
    tokens = FeedbackTokens(SECRET, 3600)
    interaction_id = uuid7()
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        tokens.issue(interaction_id)
    per_token_us = (time.perf_counter() - started) / rounds * 1e6
    # ~2 µs on a laptop; the bound leaves room for a loaded CI machine.
    assert per_token_us < 25, f"{per_token_us:.1f} µs per token"


# -- CORS -----------------------------------------------------------------------------------
async def test_cors_preflight_from_an_allowed_origin(gateway: GatewayHarness) -> None:
    answer = await request(
        gateway,
        "OPTIONS",
        "/v1/feedback",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,flywheel-feedback-token",
        },
    )
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    allowed = answer.headers["Access-Control-Allow-Headers"].lower()
    assert "flywheel-feedback-token" in allowed and "content-type" in allowed
    assert "authorization" not in allowed  # a browser must never hold a key
    assert "Origin" in answer.headers["Vary"]


async def test_cors_refused_origin_gets_no_cors_headers(gateway: GatewayHarness) -> None:
    preflight = await request(
        gateway,
        "OPTIONS",
        "/v1/feedback",
        headers={"Origin": "http://evil.example.test", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 403
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]
    interaction_id, token, _ = await chat(gateway)
    post = await post_feedback(
        gateway,
        {"interaction_id": interaction_id, "thumbs": "up"},
        headers={"Origin": "http://evil.example.test", "Flywheel-Feedback-Token": token},
    )
    assert "Access-Control-Allow-Origin" not in post.headers


async def test_cors_is_on_feedback_alone(gateway: GatewayHarness) -> None:
    interaction_id, token, _ = await chat(gateway)
    allowed = await post_feedback(
        gateway,
        {"interaction_id": interaction_id, "thumbs": "up"},
        headers={"Origin": APP_ORIGIN, "Flywheel-Feedback-Token": token},
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    failed = await post_feedback(gateway, {"thumbs": "sideways"}, headers={"Origin": APP_ORIGIN})
    assert failed.status == 422  # errors too, so the page can read why
    assert failed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    for path in ("/v1/chat/completions", "/admin/interactions"):
        preflight = await request(
            gateway,
            "OPTIONS",
            path,
            headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_the_browser_script_and_example_are_served(gateway: GatewayHarness) -> None:
    for path, kind in (
        ("/static/flywheel-feedback.js", "javascript"),
        ("/static/example.html", "text/html"),
    ):
        answer = await request(gateway, "GET", path)
        assert answer.status == 200 and kind in answer.headers["Content-Type"]


# -- validation -----------------------------------------------------------------------------
ID = uuid7()


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"interaction_id": "not-a-uuid", "thumbs": "up"}, "interaction_id", "UUID"),
        ({"interaction_id": 42, "thumbs": "up"}, "interaction_id", "UUID"),
        ({"thumbs": "up"}, "interaction_id", "is required"),
        ({"interaction_id": ID, "response_id": "chatcmpl-1", "thumbs": "up"}, "response_id", ""),
        ({"response_id": "", "thumbs": "up"}, "response_id", "empty"),
        ({"interaction_id": ID}, "body", "has none of"),
        ({"interaction_id": ID, "ratng": 5}, "ratng", "not a feedback field"),
        ({"interaction_id": ID, "rating": 6}, "rating", "1 to 5"),
        ({"interaction_id": ID, "rating": 0}, "rating", "1 to 5"),
        ({"interaction_id": ID, "rating": 3.5}, "rating", "integer"),
        ({"interaction_id": ID, "rating": True}, "rating", "integer"),
        ({"interaction_id": ID, "rating": "5"}, "rating", "integer"),
        ({"interaction_id": ID, "thumbs": "sideways"}, "thumbs", "up, down"),
        ({"interaction_id": ID, "score": 1.5}, "score", "0 to 1"),
        ({"interaction_id": ID, "score": "high"}, "score", "0 to 1"),
        ({"interaction_id": ID, "outcome": "maybe"}, "outcome", "accepted, modified, rejected"),
        ({"interaction_id": ID, "correction": 42}, "correction", "string"),
        ({"interaction_id": ID, "comment": ""}, "comment", "empty"),
        ({"interaction_id": ID, "comment": "x" * 100_001}, "comment", "longer than"),
        ({"interaction_id": ID, "dimensions": {"accuracy": 9}}, "dimensions", "1 to 5"),
        ({"interaction_id": ID, "dimensions": [4]}, "dimensions", "object"),
        ({"interaction_id": ID, "dimensions": {"": 3}}, "dimensions", "1 to 64"),
        (
            {"interaction_id": ID, "thumbs": "up", "time_to_decision_ms": -5},
            "time_to_decision_ms",
            "",
        ),
        ({"interaction_id": ID, "thumbs": "up", "source": 5}, "source", "string"),
        ({"interaction_id": ID, "thumbs": "up", "tags": [1]}, "tags", "object"),
        ({"interaction_id": ID, "thumbs": "up", "tags": {"a": {"b": 1}}}, "tags", "strings"),
        ({"interaction_id": ID, "thumbs": "up", "idempotency_key": ""}, "idempotency_key", ""),
        ({"interaction_id": ID, "thumbs": "up", "feedback_token": 7}, "feedback_token", ""),
    ],
)
async def test_each_bad_field_is_a_422_that_names_it(
    gateway: GatewayHarness, body: dict[str, Any], param: str, words: str
) -> None:
    answer = await post_feedback(gateway, body)
    _assert_error(answer, 422, "validation_failed", param)
    assert param in answer.body["error"]["message"]
    assert words in answer.body["error"]["message"]


async def test_every_problem_is_named_at_once_and_array_items_by_position(
    gateway: GatewayHarness,
) -> None:
    answer = await post_feedback(gateway, {"interaction_id": ID, "rating": 9, "thumbs": "meh"})
    _assert_error(answer, 422, "validation_failed", "rating")
    assert "rating" in answer.body["error"]["message"]
    assert "thumbs" in answer.body["error"]["message"]
    batch = [{"interaction_id": ID, "thumbs": "up"}, "oops", {"interaction_id": ID, "score": 3}]
    answer = await post_feedback(gateway, batch)
    _assert_error(answer, 422, "validation_failed", "[1]")
    assert "[1] must be an object" in answer.body["error"]["message"]
    assert "[2].score must be a number from 0 to 1" in answer.body["error"]["message"]
    assert await fetch_feedback(gateway.database_url) == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "empty"),
        ([{"interaction_id": ID, "thumbs": "up"}] * 1_001, "At most 1000"),
        ("thumbs up", "object or an array"),
        (7, "object or an array"),
    ],
)
async def test_bodies_that_are_not_feedback(gateway: GatewayHarness, body: Any, words: str) -> None:
    answer = await post_feedback(gateway, body)
    _assert_error(answer, 422, "validation_failed")
    assert words in answer.body["error"]["message"]


async def test_malformed_json_is_400(gateway: GatewayHarness) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gateway.base_url + "/v1/feedback",
            data=b"{nope",
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"


# -- metrics --------------------------------------------------------------------------------
async def test_stored_feedback_is_counted_once_in_metrics(gateway: GatewayHarness) -> None:
    interaction_id, _, _ = await chat(gateway)
    body = {"interaction_id": interaction_id, "thumbs": "up", "idempotency_key": "once"}
    for _ in range(2):  # the retry stores nothing new, and counts nothing new
        assert (await post_feedback(gateway, body)).status == 201
    scrape = await request(gateway, "GET", "/metrics")
    wanted = 'kind="thumbs",model="fake-chat",value="up",variant="none"'
    lines = [
        line
        for line in scrape.body.decode().splitlines()
        if line.startswith("flywheel_feedback_total{") and _labels(line) == _labels(wanted)
    ]
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["1.0"]


def _labels(text: str) -> set[str]:
    inside = text[text.index("{") + 1 : text.index("}")] if "{" in text else text
    return set(inside.split(","))
