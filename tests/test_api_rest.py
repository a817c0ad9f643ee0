"""The rest of `/v1` and the details of faithful relaying (issue 15, items 5 and 6), with the
official SDKs against the live gateway and a local upstream that speaks those endpoints."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from aiohttp import web

from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import EMBEDDING_DIMENSIONS, FakeUpstream, expected_content
from tests.harness import GatewayHarness

pytestmark = pytest.mark.sdk

SPEECH = b"ID3\x04fake-mp3-bytes" * 100
IMAGE_B64 = base64.b64encode(b"\x89PNG fake image" * 50).decode()
LOGPROB = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}


class RestUpstream:
    """OpenAI's other endpoints, and a chat stream with logprobs and `usage: null` chunks."""

    def __init__(self) -> None:
        self.base_url = ""
        self.uploads: list[bytes] = []
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> RestUpstream:
        app = web.Application()
        app.router.add_post("/v1/moderations", self._moderations)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _moderations(self, request: web.Request) -> web.Response:
        body = await request.json()
        result = {"flagged": False, "categories": {}, "category_scores": {}}
        return web.json_response({"id": "modr-1", "model": body["model"], "results": [result]})

    async def _speech(self, request: web.Request) -> web.Response:
        return web.Response(body=SPEECH, content_type="audio/mpeg")

    async def _transcription(self, request: web.Request) -> web.Response:
        self.uploads.append(await request.read())
        return web.json_response({"text": "hello from the audio"})

    async def _images(self, request: web.Request) -> web.Response:
        return web.json_response({"created": 1, "data": [{"b64_json": IMAGE_B64}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        assert body["stream_options"]["include_usage"] is True  # the gateway asked for it
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        head = {"id": "chatcmpl-lp", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        for piece, finish in (("Hi", None), (" there", "stop")):
            choice = {
                "index": 0,
                "delta": {"content": piece},
                "logprobs": {"content": [{**LOGPROB, "token": piece}], "refusal": None},
                "finish_reason": finish,
            }
            chunk = {**head, "choices": [choice], "usage": None}  # as OpenAI sends it
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        await response.write(b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}))
        await response.write(b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def rest() -> AsyncIterator[RestUpstream]:
    async with RestUpstream() as server:
        yield server


@pytest.fixture
async def gateway(
    database_url: str,
    upstream: FakeUpstream,
    rest: RestUpstream,
    make_gateway: Callable[..., Any],
) -> GatewayHarness:
    config = base_config(upstream, database_url)
    config["providers"]["rest"] = {"type": "openai_compat", "base_url": rest.base_url}
    config["providers"]["claude"] = {"type": "anthropic", "base_url": upstream.base_url}
    config["models"].update(
        {
            "omni-moderation-latest": {"provider": "rest"},
            "tts-1": {"provider": "rest"},
            "whisper-1": {"provider": "rest"},
            "gpt-image-1": {"provider": "rest"},
            "logprobs": {"provider": "rest", "model": "m"},
            "claude": {"provider": "claude", "model": "claude-fake"},
            "claude-tools": {"provider": "claude", "model": "claude-fake-tools"},
        }
    )
    return await make_gateway(config)


async def test_moderations_are_relayed_and_recorded(gateway: GatewayHarness) -> None:
    raw = await gateway.client().moderations.with_raw_response.create(
        model="omni-moderation-latest", input="is this fine?"
    )
    assert raw.parse().results[0].flagged is False
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert (row["endpoint"], row["status"]) == ("moderations", "success")
    assert row["request"]["input"] == "is this fine?"
    assert "empty_response" not in row["quality_flags"]  # no text answer is expected


async def test_speech_is_relayed_as_bytes_and_recorded_by_size(gateway: GatewayHarness) -> None:
    raw = await gateway.client().audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input="Hello"
    )
    assert raw.content == SPEECH
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["response"] == {"content_type": "audio/mpeg", "bytes": len(SPEECH)}


async def test_a_transcription_upload_is_relayed_unchanged_and_recorded_without_the_audio(
    gateway: GatewayHarness, rest: RestUpstream
) -> None:
    audio = b"RIFF" + bytes(range(256)) * 40
    raw = await gateway.client().audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("clip.wav", audio, "audio/wav"), language="en"
    )
    assert raw.parse().text == "hello from the audio"
    assert audio in rest.uploads[-1]  # the multipart body went upstream as it came
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["request"]["model"] == "whisper-1" and row["request"]["language"] == "en"
    assert row["request"]["file"] == {
        "filename": "clip.wav",
        "content_type": "audio/wav",
        "bytes": len(audio),
    }
    assert row["response"] == {"text": "hello from the audio"}


async def test_generated_images_are_recorded_by_size(gateway: GatewayHarness) -> None:
    raw = await gateway.client().images.with_raw_response.generate(
        model="gpt-image-1", prompt="a flywheel"
    )
    assert raw.parse().data[0].b64_json == IMAGE_B64
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    item = row["response"]["data"][0]
    assert item["b64_json"] is None and item["b64_json_bytes"] == len(IMAGE_B64) * 3 // 4


async def test_base64_embeddings_keep_their_dimensions(gateway: GatewayHarness) -> None:
    # The openai SDK asks for base64 by default and decodes it itself.
    raw = await gateway.client().embeddings.with_raw_response.create(
        model="gpt-4o-mini", input="hello"
    )
    assert len(raw.parse().data[0].embedding) == EMBEDDING_DIMENSIONS
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert row["request"]["encoding_format"] == "base64"
    assert row["response"]["data"][0]["dimensions"] == EMBEDDING_DIMENSIONS


async def test_streamed_logprobs_are_recorded_and_injected_usage_is_hidden(
    gateway: GatewayHarness,
) -> None:
    body = {
        "model": "logprobs",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "logprobs": True,
    }
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{gateway.api_url}/chat/completions", json=body)
        received = await response.read()
    events = [line[6:] for line in received.split(b"\n") if line.startswith(b"data: {")]
    assert len(events) == 2  # the usage chunk the gateway asked for is not relayed
    assert all(b'"usage"' not in event for event in events)  # nor the null usage it adds
    row = await gateway.row(response.headers[INTERACTION_HEADER])
    choice = row["response"]["choices"][0]
    assert [entry["token"] for entry in choice["logprobs"]["content"]] == ["Hi", " there"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 2)


async def test_an_anthropic_provider_answers_chat_completions(gateway: GatewayHarness) -> None:
    client = gateway.client()
    question = [{"role": "user", "content": "What is a flywheel?"}]
    whole = await client.chat.completions.create(model="claude", messages=question)
    assert whole.choices[0].message.content == expected_content("What is a flywheel?")
    stream = await client.chat.completions.create(
        model="claude-tools",
        messages=[{"role": "user", "content": "Weather?"}],
        stream=True,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    )
    calls = [c async for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].choices[0].delta.tool_calls[0].function.name == "get_weather"


async def test_a_chat_providers_error_reaches_a_messages_client_in_anthropics_shape(
    gateway: GatewayHarness,
) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=gateway.base_url, api_key="unused", max_retries=0
    ) as client:
        with pytest.raises(anthropic.BadRequestError) as raised:
            await client.messages.create(
                model="error-400", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    body = raised.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    row = await gateway.row(raised.value.response.headers[INTERACTION_HEADER])
    assert (row["endpoint"], row["status"], row["http_status"]) == ("messages", "error", 400)
