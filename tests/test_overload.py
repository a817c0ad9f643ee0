"""The in-flight cap: requests past it get 503 at once, the admitted ones still succeed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream

pytestmark = pytest.mark.sdk  # rerun with each older openai major by `make test-clients`

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_past_the_cap_requests_get_503_and_admitted_ones_succeed(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    config = base_config(upstream, sqlite_url)
    config["server"]["max_in_flight"] = 2
    gateway = await make_gateway(config)
    upstream.slow_seconds = 1.0  # below the test config's 2 s read timeout
    client = gateway.client()
    admitted = [
        asyncio.create_task(client.chat.completions.create(model="slow", messages=MESSAGES))
        for _ in range(2)
    ]
    while len(upstream.requests) < 2:  # both are now in flight, waiting on the upstream
        await asyncio.sleep(0.01)

    with pytest.raises(openai.InternalServerError) as rejected:
        await client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    assert rejected.value.status_code == 503
    assert rejected.value.code == "overloaded"
    assert rejected.value.response.headers["Retry-After"] == "1"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.base_url}/healthz") as health,
    ):
        assert health.status == 200  # health checks are never turned away

    for completion in await asyncio.gather(*admitted):
        assert completion.choices[0].message.content
    assert len(upstream.requests) == 2  # the rejected call never reached the upstream
    # Capacity is given back: the next call is admitted.
    await client.chat.completions.create(model="fake-chat", messages=MESSAGES)
