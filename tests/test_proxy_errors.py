"""Every error path answers in OpenAI's shape with the right status, and is recorded."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import CUTOFF_CONTENT_CHUNKS, FakeUpstream
from tests.harness import GatewayHarness

pytestmark = pytest.mark.sdk  # rerun with each older openai major by `make test-clients`

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}


async def _post(
    gateway: GatewayHarness, data: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, Any], str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.api_url}/chat/completions",
            data=data,
            headers={"Content-Type": content_type},
        ) as response,
    ):
        return response.status, await response.json(), response.headers[INTERACTION_HEADER]


def _assert_openai_error(body: dict[str, Any], code: str | None = None) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code


@pytest.mark.parametrize(
    ("data", "content_type", "status", "param"),
    [
        (b"{not json", "application/json", 400, None),
        (b"[1, 2]", "application/json", 400, None),
        (orjson.dumps({"messages": []}), "application/json", 400, "model"),
        (orjson.dumps({**CHAT, "stream": "yes"}), "application/json", 400, "stream"),
        (orjson.dumps(CHAT), "text/plain", 415, None),
        (orjson.dumps({**CHAT, "flywheel": "nope"}), "application/json", 400, "flywheel"),
    ],
    ids=["malformed", "not-object", "no-model", "bad-stream", "content-type", "bad-flywheel"],
)
async def test_bad_requests_are_rejected_and_recorded(
    gateway: GatewayHarness,
    upstream: FakeUpstream,
    data: bytes,
    content_type: str,
    status: int,
    param: str | None,
) -> None:
    got, body, interaction_id = await _post(gateway, data, content_type)
    assert got == status
    _assert_openai_error(body)
    assert body["error"]["param"] == param
    assert upstream.requests == []

    row = await gateway.row(interaction_id)
    assert (row["status"], row["http_status"]) == ("error", status)
    assert row["error_type"] == "invalid_request_error"
    assert row["error_message"] == body["error"]["message"]


async def test_unknown_model_is_404_via_sdk(gateway: GatewayHarness) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await gateway.client().chat.completions.create(model="nope", messages=CHAT["messages"])
    assert caught.value.code == "model_not_found"
    row = await gateway.row(caught.value.response.headers[INTERACTION_HEADER])
    assert (row["requested_model"], row["http_status"]) == ("nope", 404)


async def test_body_over_the_limit_is_413(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    config = base_config(upstream, sqlite_url)
    config["server"]["max_body_bytes"] = 1024
    gateway = await make_gateway(config)
    big = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]})
    status, body, interaction_id = await _post(gateway, big)
    assert status == 413
    _assert_openai_error(body, "request_too_large")
    assert (await gateway.row(interaction_id))["http_status"] == 413


async def test_upstream_4xx_is_passed_through(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.client().chat.completions.create(model="error-400", messages=CHAT["messages"])
    assert caught.value.body == {
        "message": "Invalid value for 'temperature'.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }
    row = await gateway.row(caught.value.response.headers[INTERACTION_HEADER])
    assert (row["status"], row["http_status"]) == ("error", 400)
    assert row["error_message"] == "Invalid value for 'temperature'."


async def test_upstream_5xx_is_502_naming_the_provider(gateway: GatewayHarness) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.client().chat.completions.create(model="error-500", messages=CHAT["messages"])
    assert caught.value.status_code == 502
    assert "'fake'" in caught.value.message
    row = await gateway.row(caught.value.response.headers[INTERACTION_HEADER])
    assert (row["status"], row["http_status"], row["error_type"]) == (
        "error",
        502,
        "upstream_error",
    )
    assert "The server had an error" in row["error_message"]


async def test_upstream_timeout_is_504(gateway: GatewayHarness, upstream: FakeUpstream) -> None:
    upstream.slow_seconds = 5  # the test config's read_timeout is 2 s
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.client().chat.completions.create(model="slow", messages=CHAT["messages"])
    assert caught.value.status_code == 504
    row = await gateway.row(caught.value.response.headers[INTERACTION_HEADER])
    assert (row["http_status"], row["error_type"]) == (504, "upstream_timeout")


async def test_refused_connection_is_502(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = base_config(upstream, sqlite_url)
    config["providers"]["fake"]["base_url"] = f"http://127.0.0.1:{port}/v1"
    gateway = await make_gateway(config)
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.client().chat.completions.create(model="fake-chat", messages=CHAT["messages"])
    assert caught.value.status_code == 502
    assert "'fake'" in caught.value.message


async def test_upstream_cut_off_mid_stream_is_reported_and_recorded(
    gateway: GatewayHarness,
) -> None:
    response = await gateway.client().chat.completions.with_raw_response.create(
        model="cutoff", messages=CHAT["messages"], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        async for chunk in response.parse():
            received.append(chunk)
    assert len(received) == 1 + CUTOFF_CONTENT_CHUNKS
    row = await gateway.row(response.headers[INTERACTION_HEADER])
    assert row["status"] == "error"
    assert row["error_type"] == "upstream_error"
    streamed = "".join(c.choices[0].delta.content or "" for c in received)
    assert row["response"]["choices"][0]["message"]["content"] == streamed
    assert row["usage_estimated"] is True


async def test_client_disconnect_mid_stream_leaves_a_record(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    body = {"model": "slow-stream", "stream": True, "messages": CHAT["messages"]}
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{gateway.api_url}/chat/completions", json=body)
        interaction_id = response.headers[INTERACTION_HEADER]
        seen = 0
        async for line in response.content:
            if line.startswith(b"data: {"):
                seen += 1
            if seen == 5:
                break
        response.close()  # hang up mid-stream

    row = await gateway.row(interaction_id)
    assert row["status"] == "client_disconnected"
    content = row["response"]["choices"][0]["message"]["content"]
    assert content.startswith("tok0 tok1 tok2 tok3")
    assert row["usage_estimated"] is True
    assert row["completion_tokens"] > 0
