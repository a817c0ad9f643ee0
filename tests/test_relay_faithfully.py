"""What the client sees of the upstream is what the upstream said (issue 15, items 4 and 5).

- Headers clients act on (`retry-after`, `x-ratelimit-*`, `x-request-id`...) reach the SDK.
- A stream the client received through `[DONE]` is a success, even when the client closes
  before the upstream ends its body (openai >= 2's sync client, langchain, instructor do).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream

pytestmark = pytest.mark.sdk  # rerun with each older openai major by `make test-clients`

MESSAGES = [{"role": "user", "content": "hi"}]
RATE_LIMIT_HEADERS = {
    "Retry-After": "7",
    "retry-after-ms": "7000",
    "x-ratelimit-remaining-requests": "0",
    "x-request-id": "req_upstream_123",
    "x-should-retry": "true",
}
CHUNK = (
    'data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"%s"},"finish_reason":%s}]}\n\n'
)


class SlowEndUpstream:
    """A real local OpenAI-compatible server: a 429 with rate-limit headers for model
    `limited`, otherwise a stream whose body ends `tail_seconds` after its `[DONE]`."""

    def __init__(self, tail_seconds: float = 1.0) -> None:
        self.tail_seconds = tail_seconds
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> SlowEndUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["model"] == "limited":
            error = {"error": {"message": "slow down", "type": "rate_limit", "code": None}}
            return web.json_response(error, status=429, headers=RATE_LIMIT_HEADERS)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "x-request-id": "req_stream_1"}
        )
        await response.prepare(request)
        await response.write((CHUNK % ("Hello", "null")).encode())
        await response.write((CHUNK % ("", '"stop"')).encode())
        await response.write(b"data: [DONE]\n\n")
        await asyncio.sleep(self.tail_seconds)  # the upstream is slow to end its body
        await response.write_eof()
        return response


@pytest.fixture
async def slow_end() -> AsyncIterator[SlowEndUpstream]:
    async with SlowEndUpstream() as server:
        yield server


async def _gateway(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, server: SlowEndUpstream, url: str
) -> Any:
    config = base_config(upstream, url)
    config["providers"]["slow-end"] = {"type": "openai_compat", "base_url": server.base_url}
    config["models"]["limited"] = {"provider": "slow-end"}
    config["models"]["slow-end"] = {"provider": "slow-end"}
    return await make_gateway(config)


async def test_a_429_reaches_the_sdk_with_the_headers_its_retries_follow(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    slow_end: SlowEndUpstream,
    database_url: str,
) -> None:
    gateway = await _gateway(make_gateway, upstream, slow_end, database_url)
    with pytest.raises(openai.RateLimitError) as raised:
        await gateway.client().chat.completions.create(model="limited", messages=MESSAGES)
    headers = raised.value.response.headers
    for name, value in RATE_LIMIT_HEADERS.items():
        assert headers[name] == value
    row = await gateway.row(headers[INTERACTION_HEADER])
    assert (row["status"], row["http_status"]) == ("error", 429)


async def test_a_stream_read_through_done_is_a_success_when_the_client_leaves_first(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    slow_end: SlowEndUpstream,
    database_url: str,
) -> None:
    gateway = await _gateway(make_gateway, upstream, slow_end, database_url)
    body = {"model": "slow-end", "messages": MESSAGES, "stream": True}
    # As openai >= 2's sync client does: read up to [DONE], then close the connection.
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{gateway.api_url}/chat/completions", json=body)
        assert response.headers["x-request-id"] == "req_stream_1"
        received = b""
        while b"data: [DONE]" not in received:
            received += await response.content.readany()
        interaction_id = response.headers[INTERACTION_HEADER]
        response.close()
    row = await gateway.row(interaction_id)
    assert row["status"] == "success"
    assert row["response"]["choices"][0]["message"]["content"] == "Hello"


async def test_a_client_that_leaves_before_done_is_still_client_disconnected(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    slow_end: SlowEndUpstream,
    database_url: str,
) -> None:
    gateway = await _gateway(make_gateway, upstream, slow_end, database_url)
    stream = await gateway.client().chat.completions.create(
        model="slow-stream", messages=MESSAGES, stream=True
    )
    async with stream:
        async for _ in stream:
            break  # the first chunk only
        interaction_id = stream.response.headers[INTERACTION_HEADER]
    row = await gateway.row(interaction_id)
    assert row["status"] == "client_disconnected"
