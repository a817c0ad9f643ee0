"""Completions, embeddings, models, metadata, auth and the demo model, end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest

from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import (
    PROMPT_TOKENS,
    FakeUpstream,
    expected_completion_text,
    expected_embedding,
)
from tests.harness import GatewayHarness, fetch_interaction

pytestmark = pytest.mark.sdk  # rerun with each older openai major by `make test-clients`

MESSAGES = [{"role": "user", "content": "hello"}]


async def test_completions_non_stream_and_stream(gateway: GatewayHarness) -> None:
    client = gateway.client()
    raw = await client.completions.with_raw_response.create(model="fake-chat", prompt="Once")
    assert raw.parse().choices[0].text == expected_completion_text("Once")
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert (row["endpoint"], row["status"]) == ("completions", "success")
    assert row["prompt_tokens"] == PROMPT_TOKENS

    raw = await client.completions.with_raw_response.create(
        model="fake-chat", prompt="Once", stream=True
    )
    chunks = [chunk async for chunk in raw.parse()]
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == expected_completion_text("Once")
    assert all(c.choices for c in chunks)
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["response"]["choices"][0]["text"] == text
    assert row["usage_estimated"] is False


async def test_embeddings_are_relayed_and_stored_without_vectors(gateway: GatewayHarness) -> None:
    raw = await gateway.client().embeddings.with_raw_response.create(
        model="fake-chat", input=["alpha", "beta"]
    )
    result = raw.parse()
    assert [d.embedding for d in result.data] == [
        expected_embedding("alpha"),
        expected_embedding("beta"),
    ]
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["endpoint"] == "embeddings"
    assert row["prompt_tokens"] == 2
    assert [d["embedding"] for d in row["response"]["data"]] == [None, None]
    assert row["quality_flags"] == []


async def test_models_lists_configured_names(gateway: GatewayHarness) -> None:
    client = gateway.client()
    names = [model.id async for model in client.models.list()]
    assert names[:2] == ["gpt-4o-mini", "fake-chat"]
    assert "demo" in names
    assert (await client.models.retrieve("demo")).id == "demo"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("missing")


async def test_metadata_from_headers(gateway: GatewayHarness, upstream: FakeUpstream) -> None:
    client = gateway.client(
        default_headers={
            "Flywheel-User": "user-42",
            "Flywheel-Session": "sess-7",
            "Flywheel-Tags": "team=search, env=prod",
        }
    )
    raw = await client.chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES
    )
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert (row["user"], row["session"]) == ("user-42", "sess-7")
    assert row["tags"] == {"team": "search", "env": "prod"}
    assert "flywheel-user" not in upstream.requests[-1].headers


async def test_metadata_from_body_is_stripped_before_forwarding(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat",
        messages=MESSAGES,
        extra_body={"flywheel": {"user": "u-body", "session": "s-body", "tags": {"exp": "a"}}},
    )
    sent = upstream.requests[-1].body
    assert "flywheel" not in sent
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert (row["user"], row["session"], row["tags"]) == ("u-body", "s-body", {"exp": "a"})
    assert "flywheel" not in row["request"]


async def test_user_falls_back_to_openai_user_field(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, user="openai-user-1"
    )
    assert upstream.requests[-1].body["user"] == "openai-user-1"
    assert (await gateway.row(raw.headers[INTERACTION_HEADER]))["user"] == "openai-user-1"


async def test_client_authorization_never_reaches_upstream_or_store(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    raw = await gateway.client(
        api_key="sk-client-secret"
    ).chat.completions.with_raw_response.create(model="fake-chat", messages=MESSAGES)
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-provider-secret"
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    stored = repr(row)
    assert "sk-client-secret" not in stored
    assert "sk-provider-secret" not in stored


@pytest.fixture
async def keyed_gateway(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str, monkeypatch
) -> GatewayHarness:
    monkeypatch.setenv("APP_KEY", "fw-app-key")
    config = base_config(upstream, sqlite_url)
    config["auth"] = {
        "keys": [
            {"name": "app", "key": "${APP_KEY}", "scopes": ["inference"]},
            {"name": "ops", "key": "fw-ops-key", "scopes": ["admin"]},
        ]
    }
    return await make_gateway(config)


async def test_auth_keys_and_scopes(keyed_gateway: GatewayHarness, upstream: FakeUpstream) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{keyed_gateway.api_url}/chat/completions",
            json={"model": "fake-chat", "messages": MESSAGES},
        ) as response,
    ):
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        await keyed_gateway.client(api_key="wrong").chat.completions.create(
            model="fake-chat", messages=MESSAGES
        )
    with pytest.raises(openai.PermissionDeniedError):
        await keyed_gateway.client(api_key="fw-ops-key").chat.completions.create(
            model="fake-chat", messages=MESSAGES
        )
    assert upstream.requests == []

    raw = await keyed_gateway.client(
        api_key="fw-app-key"
    ).chat.completions.with_raw_response.create(model="fake-chat", messages=MESSAGES)
    row = await keyed_gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["api_key_name"] == "app"
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-provider-secret"


async def test_health_routes_need_no_key(keyed_gateway: GatewayHarness) -> None:
    async with aiohttp.ClientSession() as session:
        for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
            async with session.get(keyed_gateway.base_url + path) as response:
                assert response.status == 200
                assert (await response.json())["status"] == status


async def test_demo_model_answers_offline(gateway: GatewayHarness, upstream: FakeUpstream) -> None:
    client = gateway.client()
    completion = await client.chat.completions.create(model="demo", messages=MESSAGES)
    text = completion.choices[0].message.content
    assert text == "This is Flywheel's offline demo model. You said: hello"
    stream = await client.chat.completions.create(model="demo", messages=MESSAGES, stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert streamed == text
    embedding = await client.embeddings.create(model="demo", input="hello")
    assert len(embedding.data[0].embedding) == 16
    assert upstream.requests == []


async def test_azure_style_key_header_and_query(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    config = base_config(upstream, sqlite_url)
    config["providers"]["fake"].update(
        {"api_key_header": "api-key", "query": {"api-version": "2024-10-21"}}
    )
    gateway = await make_gateway(config)
    await gateway.client().chat.completions.create(model="fake-chat", messages=MESSAGES)
    received = upstream.requests[-1]
    assert received.headers["api-key"] == "sk-provider-secret"
    assert "authorization" not in received.headers


async def test_capture_disabled_records_nothing(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    config = base_config(upstream, sqlite_url)
    config["capture"]["enabled"] = False
    gateway = await make_gateway(config)
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES
    )
    interaction_id = raw.headers[INTERACTION_HEADER]
    await gateway.stop()  # drains the recorder: anything queued would now be written
    assert await fetch_interaction(sqlite_url, interaction_id) is None
