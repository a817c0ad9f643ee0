"""Self-test: the official SDK must accept everything FakeUpstream sends.

If these pass, gateway tests can trust that the fake speaks OpenAI's wire
format, so failures there are the gateway's, not the fake's.
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fake_upstream import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    FakeUpstream,
    expected_completion_text,
    expected_content,
    expected_embedding,
)

pytestmark = pytest.mark.sdk  # rerun with each older openai major by `make test-clients`

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi there"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    yield sdk
    await sdk.close()


async def test_chat_non_stream(fake: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": [{"type": "text", "text": "hi there"}]}
    ]
    resp = await client.chat.completions.create(model="fake-model", messages=messages)
    assert resp.id.startswith("chatcmpl-")
    assert resp.choices[0].message.content == expected_content("hi there")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    [seen] = fake.requests
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.body is not None and seen.body["model"] == "fake-model"


@pytest.mark.parametrize("include_usage", [False, True])
async def test_chat_stream(client: openai.AsyncOpenAI, include_usage: bool) -> None:
    stream = await client.chat.completions.create(
        model="fake-model",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True} if include_usage else openai.omit,
    )
    chunks = [chunk async for chunk in stream]
    content = [c.choices[0].delta for c in chunks if c.choices]
    assert content[0].role == "assistant"
    assert "".join(d.content or "" for d in content) == expected_content("hi there")
    assert len({c.id for c in chunks}) == 1
    if include_usage:
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
        assert all(c.usage is None for c in chunks[:-1])
        chunks.pop()
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_chat_stream_raw_framing(fake: FakeUpstream) -> None:
    """Check the bytes themselves: one ``data:`` event per write, then [DONE]."""
    body = {
        "model": "fake-model",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}/chat/completions", json=body) as resp,
    ):
        assert resp.headers["Content-Type"] == "text/event-stream"
        text = (await resp.read()).decode()
    events = text.split("\n\n")
    assert events.pop() == ""
    assert events.pop() == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert all("usage" in p for p in payloads)
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["completion_tokens"] == 7


async def test_tool_call_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="fake-tools", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "call_fake1"
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    assert len(calls) >= 4  # announcement + 3 or more argument pieces
    assert "".join((tc.function.arguments or "") for tc in calls if tc.function) == TOOL_ARGUMENTS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    resp = await client.chat.completions.create(model="x-tools", messages=USER)
    [call] = resp.choices[0].message.tool_calls or []
    assert resp.choices[0].message.content is None
    assert call.type == "function" and call.function.arguments == TOOL_ARGUMENTS


async def test_completions(client: openai.AsyncOpenAI) -> None:
    resp = await client.completions.create(model="fake-model", prompt="Say")
    assert resp.choices[0].text == expected_completion_text("Say")
    assert resp.usage is not None and resp.usage.prompt_tokens == PROMPT_TOKENS
    stream = await client.completions.create(
        model="fake-model", prompt="Say", stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected_completion_text(
        "Say"
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


@pytest.mark.parametrize("encoding", ["base64", "float", None])
async def test_embeddings(
    fake: FakeUpstream, client: openai.AsyncOpenAI, encoding: Literal["base64", "float"] | None
) -> None:
    resp = await client.embeddings.create(
        model="fake-embed", input=["a b", "c"], encoding_format=encoding or openai.omit
    )
    vectors: list[Any] = [d.embedding for d in resp.data]
    if encoding == "base64":
        # Asked for explicitly, the SDK hands back the raw base64 string.
        vectors = [array.array("f", base64.b64decode(v)).tolist() for v in vectors]
    assert vectors == [expected_embedding("a b"), expected_embedding("c")]
    assert resp.usage.prompt_tokens == 3
    assert fake.requests[-1].body is not None
    # The SDK silently asks for base64 when no format is given.
    assert fake.requests[-1].body["encoding_format"] == (encoding or "base64")


async def test_models(client: openai.AsyncOpenAI) -> None:
    assert [m.id async for m in client.models.list()] == ["fake-model"]


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("fake-error-500", openai.InternalServerError),
        ("fake-error-400", openai.BadRequestError),
        ("fake-error-429", openai.RateLimitError),
    ],
)
async def test_errors(client: openai.AsyncOpenAI, model: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await client.chat.completions.create(model=model, messages=USER)


@pytest.mark.parametrize(
    ("model", "finish", "content"),
    [
        ("fake-length", "length", expected_content("hi there")),
        ("fake-filtered", "content_filter", ""),
        ("fake-empty", "stop", ""),
    ],
)
async def test_finish_variants(
    client: openai.AsyncOpenAI, model: str, finish: str, content: str
) -> None:
    resp = await client.chat.completions.create(model=model, messages=USER)
    assert (resp.choices[0].finish_reason, resp.choices[0].message.content) == (finish, content)


async def test_no_usage(client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(model="fake-no-usage", messages=USER)
    assert resp.usage is None
    stream = await client.chat.completions.create(
        model="fake-no-usage", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    assert all(c.usage is None and c.choices for c in [c async for c in stream])


async def test_slow_times_out(fake: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    fake.slow_seconds = 0.5
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="fake-slow", messages=USER, timeout=0.1)


async def test_cutoff_breaks_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="fake-cutoff", messages=USER, stream=True)
    received = []
    # openai 3 wraps the transport's error in APIConnectionError; 1.x and 2.x let httpx's through.
    # What the caller sees either way: the SDK raises, after the chunks that did arrive.
    with pytest.raises(Exception) as raised:
        async for chunk in stream:
            received.append(chunk)
    assert type(raised.value).__module__.split(".")[0] in {"openai", "httpx", "httpx2", "httpcore"}
    assert len(received) == 4  # role chunk + 3 content chunks, no finish
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="fake-cutoff", messages=USER)


async def test_slow_stream_disconnect_is_seen(
    fake: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    fake.chunk_delay = 0.01
    stream = await client.chat.completions.create(
        model="fake-slow-stream", messages=USER, stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content == " tok3":
            break
    await stream.close()
    for _ in range(100):
        if fake.disconnects:
            break
        await asyncio.sleep(0.01)
    assert fake.disconnects == 1


async def test_anthropic_messages(fake: FakeUpstream) -> None:
    body = {
        "model": "claude-fake",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "yo"}]}],
    }
    url = f"{fake.anthropic_base_url}/v1/messages"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as resp:
            message = await resp.json()
        assert message["content"][0]["text"] == expected_content("yo")
        assert message["usage"] == {"input_tokens": PROMPT_TOKENS, "output_tokens": 7}
        async with session.post(url, json={**body, "stream": True}) as resp:
            raw = (await resp.read()).decode()
        async with session.post(url, json={**body, "model": "c-error-500"}) as resp:
            assert resp.status == 500
            assert (await resp.json())["error"]["type"] == "api_error"
    events = [e.split("\n") for e in raw.strip().split("\n\n")]
    names = [e[0].removeprefix("event: ") for e in events]
    datas = [json.loads(e[1].removeprefix("data: ")) for e in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert [d["type"] for d in datas] == names
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == expected_content("yo")
    assert datas[-2]["usage"] == {"output_tokens": COMPLETION_TOKENS}
