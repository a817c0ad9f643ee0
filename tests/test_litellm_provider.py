"""A `litellm` provider end to end: the official SDK -> gateway -> litellm -> the fake's
Anthropic Messages API, and back in OpenAI's wire format; checked in the database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream, expected_content
from tests.harness import GatewayHarness

REPO = Path(__file__).resolve().parent.parent
PROVIDER_KEY = "sk-ant-test"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is a flywheel?"},
]
ANSWER = expected_content("What is a flywheel?")

pytestmark = [
    pytest.mark.sdk,  # rerun with each older openai major by `make test-clients`
    # litellm 1.106 declares `ReadOnly` items on TypedDicts (ChatCompletionReasoningItem...);
    # pydantic warns once when it first builds their schema, which happens lazily inside the
    # first streamed chunk. Harmless, and not ours to fix; as an error it would cut the stream.
    pytest.mark.filterwarnings(
        "ignore:Item '.*' on TypedDict class '.*' is using the `ReadOnly` qualifier:UserWarning"
    ),
]


def litellm_config(upstream: FakeUpstream, database_url: str) -> dict[str, Any]:
    """`base_config` plus an Anthropic provider, through litellm, in front of the fake."""
    config = base_config(upstream, database_url)
    anthropic = {
        "type": "litellm",
        "litellm_provider": "anthropic",
        "base_url": upstream.anthropic_base_url,
        "api_key": PROVIDER_KEY,
    }
    config["providers"]["anthropic"] = anthropic
    # The same upstream, but out of patience before the fake's `slow` answer (2 s).
    config["providers"]["anthropic-impatient"] = {**anthropic, "read_timeout": 0.5}
    config["models"].update(
        {
            "claude": {"provider": "anthropic", "model": "claude-fake"},
            "claude-error-500": {"provider": "anthropic"},
            "claude-error-400": {"provider": "anthropic"},
            "claude-slow": {"provider": "anthropic-impatient"},
        }
    )
    return config


@pytest.fixture
async def gateway(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    return await make_gateway(litellm_config(upstream, database_url))


async def test_chat_non_stream_through_litellm(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="claude", messages=MESSAGES, temperature=0.2
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    sent = upstream.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body is not None and sent.body["model"] == "claude-fake"

    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["status"] == "success"
    assert row["http_status"] == 200
    assert (row["provider"], row["requested_model"]) == ("anthropic", "claude")
    assert row["upstream_model"] == "claude-fake"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert row["usage_estimated"] is False
    assert row["finish_reason"] == "stop"
    assert row["response_id"] == completion.id
    # The request as the client sent it (upstream model name), none of litellm's settings.
    assert row["request"] == {"model": "claude-fake", "messages": MESSAGES, "temperature": 0.2}
    response = row["response"]
    assert response["id"] == completion.id
    assert response["object"] == "chat.completion"
    message = response["choices"][0]["message"]
    assert (message["role"], message["content"]) == ("assistant", ANSWER)
    assert "provider_specific_fields" not in message  # litellm's, and empty here
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert response["usage"]["completion_tokens"] == COMPLETION_TOKENS
    assert response["usage"]["total_tokens"] == PROMPT_TOKENS + COMPLETION_TOKENS


async def test_stream_through_litellm(gateway: GatewayHarness, upstream: FakeUpstream) -> None:
    response = await gateway.client().chat.completions.with_raw_response.create(
        model="claude", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in response.parse()]
    assert len(chunks) > 2
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == ANSWER
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Usage was asked of litellm on this client's behalf; the client did not ask for it.
    assert all(chunk.choices for chunk in chunks), "the injected usage chunk leaked to the client"
    assert all(chunk.usage is None for chunk in chunks)
    assert upstream.requests[-1].body is not None and upstream.requests[-1].body["stream"] is True

    row = await gateway.row(response.headers[INTERACTION_HEADER])
    assert row["stream"] is True
    assert row["status"] == "success"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert row["usage_estimated"] is False
    assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]
    assert row["finish_reason"] == "stop"
    assert row["response_id"] == chunks[0].id
    assert row["response"]["object"] == "chat.completion"
    assert row["response"]["choices"][0]["message"]["content"] == ANSWER


async def test_stream_keeps_the_usage_chunk_a_client_asked_for(gateway: GatewayHarness) -> None:
    stream = await gateway.client().chat.completions.create(
        model="claude", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    # As OpenAI sends it: a last chunk with no choices, carrying the usage.
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert all(chunk.usage is None for chunk in chunks[:-1])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_upstream_500_is_a_502_naming_the_provider(
    gateway: GatewayHarness, stream: bool
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.client().chat.completions.create(
            model="claude-error-500", messages=MESSAGES, stream=stream
        )
    error = caught.value
    assert error.status_code == 502
    assert "anthropic" in error.message
    body = error.response.json()["error"]
    assert (
        body["message"] == "Upstream provider 'anthropic' failed: HTTP 500: Internal server error"
    )
    assert (body["type"], body["code"]) == ("upstream_error", "upstream_error")

    row = await gateway.row(error.response.headers[INTERACTION_HEADER])
    assert row["status"] == "error"
    assert row["http_status"] == 502
    assert row["error_type"] == "upstream_error"
    assert "anthropic" in row["error_message"]
    assert row["response"] is None


async def test_upstream_400_is_relayed_in_openai_shape(gateway: GatewayHarness) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.client().chat.completions.create(model="claude-error-400", messages=MESSAGES)
    error = caught.value
    assert error.status_code == 400
    # Anthropic's {"type": "error", "error": {...}} comes back in OpenAI's error shape.
    assert error.response.json() == {
        "error": {
            "message": "Invalid request.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }

    row = await gateway.row(error.response.headers[INTERACTION_HEADER])
    assert row["status"] == "error"
    assert row["http_status"] == 400
    assert row["error_type"] == "invalid_request_error"
    assert row["error_message"] == "Invalid request."


async def test_slow_provider_is_a_504(gateway: GatewayHarness) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.client().chat.completions.create(model="claude-slow", messages=MESSAGES)
    assert caught.value.status_code == 504
    message = caught.value.response.json()["error"]["message"]
    assert message.startswith("Upstream provider 'anthropic-impatient' failed")
    row = await gateway.row(caught.value.response.headers[INTERACTION_HEADER])
    assert (row["status"], row["http_status"]) == ("error", 504)
    assert row["error_type"] == "upstream_timeout"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_provider_key_is_sent_to_anthropic_and_never_stored(
    gateway: GatewayHarness, upstream: FakeUpstream, stream: bool
) -> None:
    client = gateway.client(api_key="sk-client-secret")
    raw = await client.chat.completions.with_raw_response.create(
        model="claude", messages=MESSAGES, stream=stream
    )
    if stream:
        _ = [chunk async for chunk in raw.parse()]

    sent = upstream.requests[-1]
    assert sent.headers["x-api-key"] == PROVIDER_KEY
    assert "anthropic-version" in sent.headers
    assert "authorization" not in sent.headers
    assert not any("sk-client-secret" in value for value in sent.headers.values())

    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["status"] == "success"
    stored = orjson.dumps(row, default=str).decode()
    assert PROVIDER_KEY not in stored
    assert "sk-client-secret" not in stored


async def test_client_cannot_set_litellm_settings(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    """Body fields litellm would read as its own settings are not passed on: no canned answer,
    no other host (which would get the provider's key), no extra headers."""
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="claude",
        messages=MESSAGES,
        extra_body={
            "mock_response": "canned",
            "api_base": "http://127.0.0.1:9",
            "api_key": "sk-client-chosen",
            "extra_headers": {"x-injected": "1"},
        },
    )
    assert raw.parse().choices[0].message.content == ANSWER
    sent = upstream.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == PROVIDER_KEY
    assert "x-injected" not in sent.headers
    # What the client sent is still recorded as sent.
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["request"]["mock_response"] == "canned"


async def test_provider_headers_are_sent_and_nothing_is_fetched(
    database_url: str,
    upstream: FakeUpstream,
    make_gateway: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With an `anthropic-beta` header litellm would GET its beta table from GitHub (blocking,
    5 s timeout) unless told to use its bundled copy, as the adapter does."""
    config = litellm_config(upstream, database_url)
    config["providers"]["anthropic"]["headers"] = {
        "anthropic-beta": "prompt-caching-2024-07-31",
        "x-team": "search",
    }
    gateway = await make_gateway(config)  # imports litellm
    from litellm import anthropic_beta_headers_manager as betas

    fetched: list[str] = []

    def fetch(url: str, timeout: int = 5) -> dict[str, Any]:
        fetched.append(url)
        raise AssertionError("no network")

    monkeypatch.setattr(
        betas.GetAnthropicBetaHeadersConfig, "fetch_remote_beta_headers_config", fetch
    )
    monkeypatch.setattr(betas, "_BETA_HEADERS_CONFIG", None)  # not loaded yet, as at start

    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="claude", messages=MESSAGES
    )
    assert raw.parse().choices[0].message.content == ANSWER
    assert fetched == []
    assert upstream.requests[-1].headers["x-team"] == "search"


def test_litellm_is_not_imported_without_a_litellm_provider(tmp_path: Path) -> None:
    """The example config.yaml has no litellm provider: building and starting the app (store,
    recorder, providers, price table, tokenizer) must not import litellm, which costs ~4 s."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from aiohttp import web
        from gateway.app import create_app
        from gateway.config import load_config

        async def main():
            config = load_config("config.yaml")
            assert all(p.type != "litellm" for p in config.providers.values())
            runner = web.AppRunner(create_app(config))
            await runner.setup()
            await runner.cleanup()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m == "litellm" or m.startswith("litellm."))
        assert not loaded, f"litellm was imported: {loaded[:5]}"
        print("started and stopped without litellm")
        """
    )
    env = {
        **os.environ,
        "FLYWHEEL_DATABASE_URL": f"sqlite:///{tmp_path}/flywheel.db",
        "PYTHONPATH": str(REPO),
    }
    env.pop("FLYWHEEL_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "started and stopped without litellm" in result.stdout
    assert (tmp_path / "flywheel.db").exists()  # the startup really ran, on the temp database
