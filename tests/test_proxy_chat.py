"""Chat completions through the real gateway with the official SDK, checked in the database."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from gateway.records.headers import INTERACTION_HEADER
from tests.fake_upstream import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
    TOOL_NAME,
    FakeUpstream,
    expected_content,
)
from tests.harness import GatewayHarness

pytestmark = pytest.mark.sdk  # rerun with each older openai major by `make test-clients`

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is a flywheel?"},
]


async def test_chat_non_stream_is_relayed_and_recorded(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, temperature=0.2
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == expected_content("What is a flywheel?")
    interaction_id = raw.headers[INTERACTION_HEADER]

    row = await gateway.row(interaction_id)
    assert row["status"] == "success"
    assert row["http_status"] == 200
    assert row["endpoint"] == "chat/completions"
    assert row["requested_model"] == "fake-chat"
    assert row["upstream_model"] == "fake-model"
    assert row["provider"] == "fake"
    assert row["stream"] is False
    assert row["response_id"] == completion.id
    assert row["finish_reason"] == "stop"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert row["cached_tokens"] == CACHED_TOKENS
    assert row["reasoning_tokens"] == 0
    assert row["usage_estimated"] is False
    assert row["latency_ms"] > 0
    assert row["ttft_ms"] is None
    assert row["request"] == {"model": "fake-model", "messages": MESSAGES, "temperature": 0.2}
    assert (
        row["response"]["choices"][0]["message"]["content"] == completion.choices[0].message.content
    )
    assert row["quality_flags"] == []


async def test_stream_hides_the_usage_chunk_it_asked_for(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    response = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in response.parse()]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == expected_content("What is a flywheel?")
    assert all(chunk.choices for chunk in chunks), "the injected usage chunk leaked to the client"
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}

    row = await gateway.row(response.headers[INTERACTION_HEADER])
    assert row["stream"] is True
    assert row["status"] == "success"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert row["usage_estimated"] is False
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["latency_ms"]
    assert row["response"]["choices"][0]["message"]["content"] == content
    assert row["response"]["choices"][0]["finish_reason"] == "stop"
    assert row["response_id"] == chunks[0].id


async def test_stream_keeps_the_usage_chunk_a_client_asked_for(gateway: GatewayHarness) -> None:
    stream = await gateway.client().chat.completions.create(
        model="fake-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS


async def test_stream_without_upstream_usage_is_estimated(gateway: GatewayHarness) -> None:
    response = await gateway.client().chat.completions.with_raw_response.create(
        model="no-usage", messages=MESSAGES, stream=True
    )
    _ = [chunk async for chunk in response.parse()]
    row = await gateway.row(response.headers[INTERACTION_HEADER])
    assert row["usage_estimated"] is True
    assert row["prompt_tokens"] > 0
    assert row["completion_tokens"] > 0


async def test_tool_calls_in_a_stream_are_assembled(gateway: GatewayHarness) -> None:
    response = await gateway.client().chat.completions.with_raw_response.create(
        model="tools", messages=MESSAGES, stream=True, tools=[_weather_tool()]
    )
    chunks = [chunk async for chunk in response.parse()]
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for call in (chunk.choices[0].delta.tool_calls or [])
    )
    assert arguments == TOOL_ARGUMENTS

    row = await gateway.row(response.headers[INTERACTION_HEADER])
    message = row["response"]["choices"][0]["message"]
    assert message["tool_calls"] == [
        {
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS},
        }
    ]
    assert row["finish_reason"] == "tool_calls"
    assert "empty_response" not in row["quality_flags"]
    assert row["request"]["tools"] == [_weather_tool()]


async def test_sync_client_works_too(gateway: GatewayHarness) -> None:
    def call() -> tuple[str, str | None]:
        raw = gateway.sync_client().chat.completions.with_raw_response.create(
            model="fake-chat", messages=MESSAGES
        )
        return raw.headers[INTERACTION_HEADER], raw.parse().choices[0].message.content

    interaction_id, content = await asyncio.to_thread(call)
    assert content == expected_content("What is a flywheel?")
    assert (await gateway.row(interaction_id))["status"] == "success"


@pytest.mark.parametrize(
    ("model", "flag", "finish_reason"),
    [
        ("length", "truncated", "length"),
        ("filtered", "content_filtered", "content_filter"),
        ("empty", "empty_response", "stop"),
    ],
)
async def test_quality_flags(
    gateway: GatewayHarness, model: str, flag: str, finish_reason: str
) -> None:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES
    )
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert flag in row["quality_flags"]
    assert row["finish_reason"] == finish_reason


async def test_unrendered_template_is_flagged(gateway: GatewayHarness) -> None:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "Dear {{ customer_name }}, hi"}]
    )
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["quality_flags"] == ["unrendered_template"]


async def test_cost_from_price_table_and_null_when_unknown(gateway: GatewayHarness) -> None:
    known = await gateway.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    unknown = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES
    )
    row = await gateway.row(known.headers[INTERACTION_HEADER])
    # gpt-4o-mini in litellm's table: $0.15 / 1M input, $0.075 / 1M cached, $0.60 / 1M output.
    expected = (
        (PROMPT_TOKENS - CACHED_TOKENS) * 0.15e-6
        + CACHED_TOKENS * 0.075e-6
        + COMPLETION_TOKENS * 0.6e-6
    )
    assert row["cost_usd"] == pytest.approx(expected)
    assert (await gateway.row(unknown.headers[INTERACTION_HEADER]))["cost_usd"] is None


def _weather_tool() -> dict:
    return {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }


async def test_credentials_in_the_body_are_neither_forwarded_nor_stored(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    client = gateway.client()
    raw = await client.chat.completions.with_raw_response.create(
        model="fake-chat",
        messages=MESSAGES,
        max_tokens=20,
        extra_body={
            "api_key": "sk-in-the-body-0001",
            "openai_api_key": "sk-in-the-body-0002",
            "Authorization": "Bearer sk-in-the-body-0003",
        },
    )
    forwarded = upstream.requests[-1].body
    assert forwarded is not None and forwarded["max_tokens"] == 20
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    for sent in (forwarded, row["request"]):
        assert "sk-in-the-body" not in orjson.dumps(sent).decode()
