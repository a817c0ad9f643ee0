"""Every API today's clients speak, through the live gateway with the official SDKs (issue 15).

OpenAI's Responses API and Anthropic's Messages API each reach a provider that speaks them
natively (relayed as bytes) or one that speaks only chat completions (translated both ways);
either way the record holds what the client sent and got, in its own API's shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from gateway.pricing import PriceTable
from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream, expected_content
from tests.harness import GatewayHarness

pytestmark = pytest.mark.sdk

QUESTION = "What is a flywheel?"
WEATHER_TOOL_RESPONSES = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
WEATHER_TOOL_MESSAGES = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _config(upstream: FakeUpstream, database_url: str, **extra_auth: Any) -> dict[str, Any]:
    config = base_config(upstream, database_url)
    config["providers"]["fake-chat-only"] = {
        "type": "openai_compat",
        "base_url": upstream.base_url,
        "serves_responses": False,
    }
    config["providers"]["claude"] = {
        "type": "anthropic",
        "base_url": upstream.base_url,
        "api_key": "sk-ant-provider-secret",
    }
    config["models"].update(
        {
            "chat-only": {"provider": "fake-chat-only", "model": "fake-model"},
            "chat-only-tools": {"provider": "fake-chat-only", "model": "fake-tools"},
            "claude": {"provider": "claude", "model": "claude-fake"},
            "claude-tools": {"provider": "claude", "model": "claude-fake-tools"},
            "claude-haiku-4-5": {"provider": "claude"},
        }
    )
    return config


@pytest.fixture
async def gateway(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    return await make_gateway(_config(upstream, database_url))


@pytest.fixture
async def claude_client() -> AsyncIterator[Callable[..., anthropic.AsyncAnthropic]]:
    """Anthropic SDK clients pointed at a gateway, closed after the test."""
    made: list[anthropic.AsyncAnthropic] = []

    def make(gateway: GatewayHarness, api_key: str = "sk-client") -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=api_key, max_retries=0)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


# -- Responses API -------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["gpt-4o-mini", "chat-only", "demo"])
async def test_responses_create_answers_and_records_in_the_responses_shape(
    gateway: GatewayHarness, upstream: FakeUpstream, model: str
) -> None:
    raw = await gateway.client().responses.with_raw_response.create(
        model=model, instructions="Be brief.", input=QUESTION
    )
    response = raw.parse()
    text = response.output_text
    assert text
    if model != "demo":
        assert text == expected_content(QUESTION)
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert (row["endpoint"], row["status"], row["stream"]) == ("responses", "success", False)
    assert row["request"]["input"] == QUESTION  # what the client sent, in its own shape
    assert row["response"]["object"] == "response"
    assert row["response_id"] == response.id
    assert row["prompt_tokens"] and row["completion_tokens"]
    if model == "gpt-4o-mini":  # native: the Responses request went upstream as it came
        assert upstream.requests[-1].path == "/v1/responses"
    elif model == "chat-only":  # translated: chat went upstream, the instructions first
        sent = upstream.requests[-1]
        assert sent.path == "/v1/chat/completions"
        assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "chat-only"])
async def test_responses_stream_reaches_the_sdk_and_is_recorded_as_success(
    gateway: GatewayHarness, model: str
) -> None:
    client = gateway.client()
    async with client.responses.stream(model=model, input=QUESTION) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == expected_content(QUESTION)
    row = await gateway.latest_row(f"response_id = '{final.id}'")
    assert (row["status"], row["stream"]) == ("success", True)
    assert row["ttft_ms"] is not None
    assert row["completion_tokens"] == COMPLETION_TOKENS
    assert row["usage_estimated"] is False


@pytest.mark.parametrize("model", ["tools", "chat-only-tools"])
async def test_responses_function_calls_round_trip(gateway: GatewayHarness, model: str) -> None:
    client = gateway.client()
    first = await client.responses.create(
        model=model, input="Weather in Oslo?", tools=[WEATHER_TOOL_RESPONSES]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    follow_up = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "type": "function_call",
            "call_id": calls[0].call_id,
            "name": "get_weather",
            "arguments": calls[0].arguments,
        },
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "12C, rain"},
    ]
    second = await client.responses.with_raw_response.create(
        model=model, input=follow_up, tools=[WEATHER_TOOL_RESPONSES]
    )
    row = await gateway.row(second.headers[INTERACTION_HEADER])
    assert row["status"] == "success"
    assert row["request"]["input"][2]["output"] == "12C, rain"


async def test_previous_response_id_is_relayed_natively_and_refused_clearly_in_translation(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    client = gateway.client()
    await client.responses.create(model="gpt-4o-mini", input="hi", previous_response_id="resp_1")
    assert upstream.requests[-1].body["previous_response_id"] == "resp_1"
    with pytest.raises(openai.BadRequestError) as raised:
        await client.responses.create(model="chat-only", input="hi", previous_response_id="resp_1")
    assert "previous_response_id" in str(raised.value)
    row = await gateway.row(raised.value.response.headers[INTERACTION_HEADER])
    assert (row["endpoint"], row["status"], row["http_status"]) == ("responses", "error", 400)


async def test_a_translated_response_can_be_read_back_by_its_id(gateway: GatewayHarness) -> None:
    client = gateway.client()
    created = await client.responses.create(model="chat-only", input=QUESTION)
    await gateway.latest_row(f"response_id = '{created.id}'")
    again = await client.responses.retrieve(created.id)
    assert again.id == created.id and again.output_text == created.output_text
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve("resp_never_made")


async def test_a_native_response_is_asked_of_the_provider_that_made_it(
    gateway: GatewayHarness, upstream: FakeUpstream
) -> None:
    client = gateway.client()
    created = await client.responses.with_raw_response.create(model="gpt-4o-mini", input="hi")
    response_id = (await gateway.row(created.headers[INTERACTION_HEADER]))["response_id"]
    async with aiohttp.ClientSession() as session:
        for method, path in (
            ("GET", f"/responses/{response_id}"),
            ("GET", f"/responses/{response_id}/input_items?limit=2"),
            ("DELETE", f"/responses/{response_id}"),
        ):
            await session.request(method, f"{gateway.api_url}{path}")
    forwarded = [(r.method, r.path) for r in upstream.requests[-3:]]
    assert forwarded == [
        ("GET", f"/v1/responses/{response_id}"),
        ("GET", f"/v1/responses/{response_id}/input_items"),
        ("DELETE", f"/v1/responses/{response_id}"),
    ]


# -- Anthropic Messages API ------------------------------------------------------------------
@pytest.mark.parametrize("model", ["claude", "gpt-4o-mini", "demo"])
async def test_messages_create_answers_and_records_in_the_messages_shape(
    gateway: GatewayHarness,
    upstream: FakeUpstream,
    model: str,
    claude_client: Callable[..., anthropic.AsyncAnthropic],
) -> None:
    raw = await claude_client(gateway).messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": QUESTION}],
    )
    message = await raw.parse()
    text = "".join(block.text for block in message.content if block.type == "text")
    if model != "demo":
        assert text == expected_content(QUESTION)
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert (row["endpoint"], row["status"]) == ("messages", "success")
    assert row["request"]["system"] == "Be brief."
    assert row["response"]["type"] == "message"
    assert row["prompt_tokens"] and row["completion_tokens"]
    if model == "claude":
        sent = upstream.requests[-1]
        assert sent.path == "/v1/messages"
        assert sent.headers.get("x-api-key") == "sk-ant-provider-secret"  # ours, not the client's
        assert row["prompt_tokens"] == PROMPT_TOKENS


# claude-haiku-4-5: in the price table of every litellm the lock names (the openai-1 fork
# has an older one) and not deprecated by the Anthropic SDK, which warns on those.
async def test_anthropic_models_are_priced_from_litellms_table(
    gateway: GatewayHarness, claude_client: Callable[..., anthropic.AsyncAnthropic]
) -> None:
    raw = await claude_client(gateway).messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    price = PriceTable.load({}).price("claude-haiku-4-5", "anthropic")
    assert price is not None
    expected = PROMPT_TOKENS * price.input + COMPLETION_TOKENS * price.output
    assert row["cost_usd"] == pytest.approx(expected)


@pytest.mark.parametrize("model", ["claude-tools", "chat-only-tools"])
async def test_messages_stream_with_tools(
    gateway: GatewayHarness, model: str, claude_client: Callable[..., anthropic.AsyncAnthropic]
) -> None:
    async with claude_client(gateway).messages.stream(
        model=model,
        max_tokens=100,
        tools=[WEATHER_TOOL_MESSAGES],
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        message = await stream.get_final_message()
    uses = [block for block in message.content if block.type == "tool_use"]
    assert uses and uses[0].name == "get_weather"
    assert message.stop_reason == "tool_use"
    row = await gateway.latest_row(f"response_id = '{message.id}'")
    assert (row["status"], row["stream"]) == ("success", True)
    assert any(block.get("type") == "tool_use" for block in row["response"]["content"])


async def test_messages_errors_come_in_anthropics_shape(
    gateway: GatewayHarness, claude_client: Callable[..., anthropic.AsyncAnthropic]
) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        await claude_client(gateway).messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"


async def test_count_tokens_is_answered_for_every_provider(
    gateway: GatewayHarness, claude_client: Callable[..., anthropic.AsyncAnthropic]
) -> None:
    client = claude_client(gateway)
    counted = await client.messages.count_tokens(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}]
    )
    assert counted.input_tokens > 0


async def test_an_anthropic_client_authenticates_with_x_api_key(
    upstream: FakeUpstream,
    database_url: str,
    make_gateway: Callable[..., Any],
    claude_client: Callable[..., anthropic.AsyncAnthropic],
) -> None:
    config = _config(upstream, database_url)
    config["auth"] = {
        "keys": [{"name": "claude-app", "key": "fw-" + "k" * 40, "scopes": ["inference"]}]
    }
    gateway = await make_gateway(config)
    raw = await claude_client(gateway, api_key="fw-" + "k" * 40).messages.with_raw_response.create(
        model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["api_key_name"] == "claude-app"
    assert "fw-" + "k" * 40 not in str(upstream.requests[-1].headers)  # never forwarded
    with pytest.raises(anthropic.AuthenticationError) as raised:
        await claude_client(gateway, api_key="wrong").messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


# -- the rest ----------------------------------------------------------------------------------
async def test_an_unknown_route_is_a_404_with_an_id_a_row_and_a_metric(
    gateway: GatewayHarness,
) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{gateway.api_url}/assistants", json={"x": 1})
        body = await response.json()
        metrics = await (await session.get(f"{gateway.base_url}/metrics")).text()
        wrong_method = await session.get(f"{gateway.api_url}/chat/completions")
    assert response.status == 404 and body["error"]["message"].startswith("Unknown route")
    row = await gateway.row(response.headers[INTERACTION_HEADER])
    assert (row["endpoint"], row["http_status"]) == ("unknown", 404)
    assert 'endpoint="unknown"' in metrics
    assert wrong_method.status == 405  # a known path with another method stays a 405
