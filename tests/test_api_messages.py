"""Anthropic's Messages wire format (gateway/apis/messages*.py), as pure units: what is emitted is
validated against the official anthropic SDK's own types, and streams are read back by the SDK's
own accumulation (`messages.stream(...).get_final_message()` over a mock transport)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai.types.chat as openai_chat
import orjson
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse

from gateway.apis import messages as api
from gateway.apis import messages_assembler
from gateway.errors import (
    ApiError,
    AuthenticationFailed,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RequestTimeout,
    UpstreamError,
    UpstreamTimeout,
    ValidationFailed,
)
from gateway.proxy.assembler import ResponseAssembler
from tests.fake_upstream import FakeUpstream

EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
CHUNK = openai_chat.ChatCompletionChunk


# -- helpers -------------------------------------------------------------------------------------
def sse(data: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) of each event in an SSE body."""
    out = []
    for raw in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not raw.strip():
            continue
        name, lines = None, []
        for line in raw.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                lines.append(line[5:].strip())
        body = b"\n".join(lines)
        out.append((name, body.decode() if body == b"[DONE]" else orjson.loads(body)))
    return out


def checked_events(data: bytes) -> list[dict[str, Any]]:
    """Every Messages event validated by the SDK's types, its `event:` line naming its type."""
    events = []
    for name, payload in sse(data):
        assert name == payload["type"], (name, payload)
        if payload["type"] == "error":
            ErrorResponse.model_validate(payload)
        elif payload["type"] != "ping":
            EVENTS.validate_python(payload)
        events.append(payload)
    return events


def accumulate(data: bytes) -> Message:
    """The message the SDK's own accumulation builds from these events."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in checked_events(data):
        if event["type"] in ("ping", "error"):
            continue
        snapshot = accumulate_event(
            event=EVENTS.validate_python(event), current_snapshot=snapshot, json_bufs=json_bufs
        )
    assert snapshot is not None
    return Message.model_validate(snapshot.model_dump())


def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(
        api_key="k", base_url="http://gateway.test", http_client=http, max_retries=0
    )


def chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> bytes:
    payload = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage_chunk(prompt: int = 11, completion: int = 7, cached: int = 2) -> bytes:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    payload = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [],
        "usage": usage,
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def text_stream(*pieces: str, finish: str = "stop") -> list[bytes]:
    return [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": p}) for p in pieces),
        chunk({}, finish),
        usage_chunk(),
        DONE,
    ]


def two_tool_stream() -> list[bytes]:
    def call(index: int, **fields: Any) -> bytes:
        return chunk({"tool_calls": [{"index": index, **fields}]})

    return [
        chunk({"role": "assistant", "content": "Checking."}),
        call(0, id="call_1", type="function", function={"name": "get_weather", "arguments": ""}),
        call(0, function={"arguments": '{"city": '}),
        call(0, function={"arguments": '"Paris"}'}),
        call(1, id="call_2", type="function", function={"name": "get_time", "arguments": ""}),
        call(1, function={"arguments": '{"tz": "CET"}'}),
        chunk({}, "tool_calls"),
        usage_chunk(),
        DONE,
    ]


def translate(request: dict[str, Any], chunks: list[bytes], *, finish: bool = True) -> bytes:
    translator = api.ChatStreamTranslator(request)
    out = b"".join(translator.feed(c) for c in chunks)
    return out + (translator.finish() if finish else b"")


def native(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


REQUEST: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Hi"}],
}


# -- to_chat_request -----------------------------------------------------------------------------
def test_plain_request_carries_every_setting() -> None:
    body = {
        **REQUEST,
        "system": "Be brief.",
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    assert api.to_chat_request(body) == {
        "model": "claude-test",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "max_tokens": 256,
        "stop": ["END"],
        "temperature": 0.3,
        "top_p": 0.9,
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_system_blocks_become_text_parts() -> None:
    cache = {"type": "ephemeral"}
    body = {
        **REQUEST,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": cache},
            {"type": "text", "text": "Project rules."},
        ],
    }
    chat = api.to_chat_request(body)
    assert chat["messages"][0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Project rules."},
        ],
    }
    one = api.to_chat_request({**REQUEST, "system": [{"type": "text", "text": "Only."}]})
    assert one["messages"][0] == {"role": "system", "content": "Only."}


PIXEL = base64.b64encode(b"\x89PNG fake").decode()


def test_multi_turn_with_tools_images_and_thinking() -> None:
    body = {
        **REQUEST,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris? See:"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should call it.", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xx"},
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [
                            {"type": "text", "text": "12:00"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": PIXEL,
                                },
                            },
                        ],
                        "is_error": False,
                    },
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ],
    }
    chat = api.to_chat_request(body)
    data_url = f"data:image/png;base64,{PIXEL}"
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris? See:"},
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "12:00"},
        # The image a tool returned, which a chat tool message cannot hold, opens the user turn.
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]
    # The chat request validates as the openai SDK's own request type.
    pydantic.TypeAdapter(list[openai_chat.ChatCompletionMessageParam]).validate_python(
        chat["messages"]
    )


def test_documents_that_chat_can_hold() -> None:
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    body = {
        **REQUEST,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "spec.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": "plain words",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "content",
                            "content": [{"type": "text", "text": "from blocks"}],
                        },
                    },
                ],
            }
        ],
    }
    assert api.to_chat_request(body)["messages"][0]["content"] == [
        {
            "type": "file",
            "file": {"filename": "spec.pdf", "file_data": f"data:application/pdf;base64,{pdf}"},
        },
        {"type": "text", "text": "plain words"},
        {"type": "text", "text": "from blocks"},
    ]


def test_tools_and_tool_choice() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    tools = [
        {
            "name": "get_weather",
            "description": "Weather.",
            "input_schema": schema,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    chat = api.to_chat_request({**REQUEST, "tools": tools})
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather.", "parameters": schema},
        }
    ]
    assert "tool_choice" not in chat and "parallel_tool_calls" not in chat
    cases = [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ]
    for choice, expected in cases:
        chat = api.to_chat_request({**REQUEST, "tools": tools, "tool_choice": choice})
        assert chat["tool_choice"] == expected
    parallel = {"type": "any", "disable_parallel_tool_use": True}
    chat = api.to_chat_request({**REQUEST, "tools": tools, "tool_choice": parallel})
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    # OpenAI refuses tool_choice without tools: it is not sent alone.
    assert "tool_choice" not in api.to_chat_request({**REQUEST, "tool_choice": {"type": "none"}})


def test_long_tool_names_are_shortened_and_mapped_back() -> None:
    long_name = "mcp__some_server_with_a_long_name__" + "a_tool_with_an_even_longer_name" * 2
    assert len(long_name) > 64
    request = {
        **REQUEST,
        "tools": [{"name": long_name, "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": long_name},
    }
    chat = api.to_chat_request(request)
    short = chat["tools"][0]["function"]["name"]
    assert len(short) == 64 and chat["tool_choice"]["function"]["name"] == short
    call = {"id": "call_1", "type": "function", "function": {"name": short, "arguments": "{}"}}
    answer = {"choices": [{"message": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]}
    assert api.from_chat_response(answer, request)["content"][0]["name"] == long_name
    streamed = translate(request, [chunk({"tool_calls": [{"index": 0, **call}]}), DONE])
    assert accumulate(streamed).content[0].name == long_name  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"model": None}, "model"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"tools": [{"name": "no_schema"}]}, "tools[0]"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
        ({"mcp_servers": [{"type": "url", "url": "https://mcp.test", "name": "m"}]}, "mcp_servers"),
        ({"container": "container_1"}, "container"),
        ({"system": 5}, "system"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"temperature": "hot"}, "temperature"),
        ({"stream": "yes"}, "stream"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].source",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "url", "url": "https://x.test/a.pdf"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].source",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "server_tool_use",
                                "id": "s",
                                "name": "web_search",
                                "input": {},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": 7, "content": "x"}],
                    }
                ]
            },
            "messages[0].content[0].tool_use_id",
        ),
    ],
)
def test_strict_refuses_what_chat_cannot_say(change: dict[str, Any], param: str) -> None:
    body = {k: v for k, v in {**REQUEST, **change}.items() if v is not None}
    with pytest.raises(InvalidRequest) as raised:
        api.to_chat_request(body)
    assert raised.value.param == param
    assert param.split(".")[0].split("[")[0] in raised.value.message
    api.to_chat_request(body, strict=False)  # reading a recorded request never raises


GARBAGE: list[Any] = [None, 7, -1, True, "x", [], {}, [None, 3, "s"], {"type": 5}, 1.5]


def test_not_strict_reads_anything() -> None:
    assert api.to_chat_request("not a dict", strict=False) == {"messages": []}  # type: ignore[arg-type]
    fields = [
        "model",
        "system",
        "messages",
        "max_tokens",
        "tools",
        "tool_choice",
        "metadata",
        "stop_sequences",
        "stream",
        "output_config",
        "temperature",
    ]
    for field in fields:
        for value in GARBAGE:
            api.to_chat_request({**REQUEST, field: value}, strict=False)
    for value in GARBAGE:
        message = {"role": "user", "content": [value, {"type": "tool_result", "content": value}]}
        api.to_chat_request({**REQUEST, "messages": [message, value]}, strict=False)
        for role in ("user", "assistant", "system"):
            blocks = [
                {"type": t, "source": value, "text": value, "input": value}
                for t in ("text", "image", "document", "tool_use", "search_result")
            ]
            api.to_chat_request(
                {**REQUEST, "messages": [{"role": role, "content": blocks}]}, strict=False
            )


# -- from_chat_response --------------------------------------------------------------------------
def chat_answer(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **extra}],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    }


def test_whole_text_answer() -> None:
    answer = chat_answer({"role": "assistant", "content": "Hello!"})
    message = api.from_chat_response(answer, REQUEST)
    parsed = Message.model_validate(message)
    assert parsed.id == "msg_abc123" == api.from_chat_response(answer, REQUEST)["id"]
    assert parsed.model == "gpt-test"
    assert [b.model_dump(exclude_none=True) for b in parsed.content] == [
        {"type": "text", "text": "Hello!"}
    ]
    assert parsed.stop_reason == "end_turn" and parsed.stop_sequence is None
    assert parsed.usage.input_tokens == 9  # 11 prompt tokens, 2 of them read from the cache
    assert parsed.usage.cache_read_input_tokens == 2
    assert parsed.usage.cache_creation_input_tokens == 0
    assert parsed.usage.output_tokens == 7
    # Back in chat vocabulary, the counts are what the upstream said.
    usage = api.to_chat_response(message)["usage"]
    assert usage["prompt_tokens"] == 11 and usage["completion_tokens"] == 7
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2


def test_whole_tool_calls_even_unparseable() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": '},
        },
    ]
    answer = chat_answer({"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls")
    message = Message.model_validate(api.from_chat_response(answer, REQUEST))
    assert message.stop_reason == "tool_use"
    blocks = [b.model_dump(exclude_none=True) for b in message.content]
    assert blocks == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
    ]
    # A provider that says "stop" after a tool call still ends the turn as tool_use.
    answer["choices"][0]["finish_reason"] = "stop"
    assert api.from_chat_response(answer, REQUEST)["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish", "extra", "stop_reason", "sequence"),
    [
        ("length", {}, "max_tokens", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),  # vLLM says which matched
        ("stop", {"stop_reason": "OTHER"}, "end_turn", None),
        (None, {}, "end_turn", None),
        ("something_new", {}, "end_turn", None),
    ],
)
def test_stop_reasons(
    finish: Any, extra: dict[str, Any], stop_reason: str, sequence: str | None
) -> None:
    request = {**REQUEST, "stop_sequences": ["END"]}
    answer = chat_answer({"role": "assistant", "content": "x"}, finish, **extra)
    message = Message.model_validate(api.from_chat_response(answer, request))
    assert (message.stop_reason, message.stop_sequence) == (stop_reason, sequence)


def test_reasoning_is_thinking_only_when_asked() -> None:
    answer = chat_answer({"role": "assistant", "content": "42", "reasoning_content": "Hmm."})
    plain = Message.model_validate(api.from_chat_response(answer, REQUEST))
    assert [b.type for b in plain.content] == ["text"]
    thinking = {**REQUEST, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    message = Message.model_validate(api.from_chat_response(answer, thinking))
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Hmm."  # type: ignore[union-attr]
    # Signed thinking blocks (litellm, from Claude on Bedrock) are kept as they came.
    signed = [{"type": "thinking", "thinking": "Hmm.", "signature": "sig"}]
    answer["choices"][0]["message"]["thinking_blocks"] = signed
    message = Message.model_validate(api.from_chat_response(answer, thinking))
    assert message.content[0].signature == "sig"  # type: ignore[union-attr]


def test_litellm_cache_writes_are_not_input_tokens() -> None:
    answer = chat_answer({"role": "assistant", "content": "x"})
    answer["usage"] = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 30, "cache_creation_tokens": 50},
    }
    usage = Message.model_validate(api.from_chat_response(answer, REQUEST)).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (20, 30)
    assert usage.cache_creation_input_tokens == 50
    assert api.usage_to_chat(usage.model_dump())["prompt_tokens"] == 100  # type: ignore[index]


def test_from_chat_response_never_raises() -> None:
    for value in GARBAGE:
        for answer in (
            value,
            {"choices": value, "usage": value, "id": value, "model": value},
            {"choices": [{"message": value, "finish_reason": value}]},
            {"choices": [{"message": {"content": value, "tool_calls": [value]}}]},
            {"choices": [{"message": {"tool_calls": [{"function": value, "id": value}]}}]},
        ):
            Message.model_validate(api.from_chat_response(answer, REQUEST))  # type: ignore[arg-type]
            api.from_chat_response(answer, value)  # type: ignore[arg-type]


# -- ChatStreamTranslator ------------------------------------------------------------------------
def test_stream_of_text() -> None:
    out = translate(REQUEST, text_stream("Hel", "lo", "!"))
    events = checked_events(out)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["id"] == "msg_abc123"
    message = accumulate(out)
    assert message.content[0].text == "Hello!"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    # The final usage chunk's counts, in Anthropic's vocabulary, reach the SDK's message.
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (9, 2)
    assert message.usage.output_tokens == 7


def test_stream_of_two_tool_calls() -> None:
    message = accumulate(translate(REQUEST, two_tool_stream()))
    blocks = [b.model_dump(exclude_none=True) for b in message.content]
    assert blocks == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {"tz": "CET"}},
    ]
    assert message.stop_reason == "tool_use"


def test_stream_cut_at_max_tokens() -> None:
    message = accumulate(translate(REQUEST, text_stream("Once upon", finish="length")))
    assert message.stop_reason == "max_tokens"


def test_stream_fed_byte_by_byte_is_the_same_stream() -> None:
    whole = translate(REQUEST, two_tool_stream())
    translator = api.ChatStreamTranslator(REQUEST)
    data = b"".join(two_tool_stream())
    pieces = b"".join(translator.feed(data[i : i + 1]) for i in range(len(data)))
    assert pieces + translator.finish() == whole
    # Each event goes out as soon as its chunk is complete.
    translator = api.ChatStreamTranslator(REQUEST)
    assert [name for name, _ in sse(translator.feed(chunk({"role": "assistant"})))] == [
        "message_start"
    ]
    assert len(sse(translator.feed(chunk({"content": "Hi"})))) == 2  # block start, delta


def test_stream_without_done_is_closed_by_finish() -> None:
    translator = api.ChatStreamTranslator(REQUEST)
    out = b"".join(translator.feed(c) for c in text_stream("Hi")[:-2])  # no usage, no [DONE]
    assert b"message_stop" not in out
    tail = translator.finish()
    message = accumulate(out + tail)
    assert message.content[0].text == "Hi" and message.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert translator.finish() == b""
    done = api.ChatStreamTranslator(REQUEST)
    assert b"message_stop" in b"".join(done.feed(c) for c in text_stream("Hi"))
    assert done.finish() == b""
    # A body that ended before any chunk is still a well-formed (empty) message.
    assert accumulate(api.ChatStreamTranslator(REQUEST).finish()).content == []


def test_stream_error_event() -> None:
    translator = api.ChatStreamTranslator(REQUEST)
    out = translator.feed(b"".join(text_stream("Hi")[:2]))
    error = translator.error_event("Upstream provider 'p' failed: reset", "upstream_error")
    assert sse(error) == [
        (
            "error",
            {
                "type": "error",
                "error": {"type": "api_error", "message": "Upstream provider 'p' failed: reset"},
            },
        ),
    ]
    checked_events(out + error)
    assert translator.feed(DONE) == b"" and translator.finish() == b""
    timeout = api.ChatStreamTranslator(REQUEST).error_event("slow", "upstream_timeout")
    assert sse(timeout)[0][1]["error"]["type"] == "timeout_error"
    # An upstream's own in-stream error (vLLM sends one) ends the Messages stream the same way.
    upstream = api.ChatStreamTranslator(REQUEST)
    bad = b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'
    events = checked_events(upstream.feed(chunk({"content": "Hi"}) + bad))
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "boom"}}


def test_stream_thinking_only_when_asked() -> None:
    chunks = [chunk({"reasoning_content": "Let me think."}), *text_stream("42")]
    assert [b.type for b in accumulate(translate(REQUEST, chunks)).content] == ["text"]
    thinking = {**REQUEST, "thinking": {"type": "adaptive"}}
    message = accumulate(translate(thinking, chunks))
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Let me think."  # type: ignore[union-attr]


def test_stream_without_usage_says_zero() -> None:
    chunks = [c for c in text_stream("Hi") if b'"usage"' not in c]
    message = accumulate(translate(REQUEST, chunks))
    assert message.usage.output_tokens == 0


def test_stream_never_raises_on_garbage() -> None:
    garbage = [
        b"data: not json\n\n",
        b"data: [1, 2]\n\n",
        b": comment\n\n",
        b"data:\n\n",
        b"event: x\n\n",
        b'data: {"choices": 5}\n\n',
        b'data: {"choices": [7]}\n\n',
        b'data: {"choices": [{"delta": 3, "finish_reason": 4}]}\n\n',
        b'data: {"choices": [{"delta": {"tool_calls": [1, {"index": "x"}]}}]}\n\n',
        b'data: {"choices": [{"delta": {"tool_calls": [{"index": 99999, "function": 3}]}}]}\n\n',
        b'data: {"usage": 5, "choices": [{"index": 1, "delta": {"content": "n=2"}}]}\n\n',
        b'data: {"error": 5}\n\n',
    ]
    translator = api.ChatStreamTranslator(REQUEST)
    out = b"".join(translator.feed(g) for g in garbage[:-1])
    out += translator.feed(b"".join(text_stream("ok"))) + translator.finish()
    message = accumulate(out)
    assert "".join(b.text for b in message.content if b.type == "text") == "ok"
    last = api.ChatStreamTranslator(REQUEST)
    assert checked_events(last.feed(garbage[-1]))[-1]["type"] == "error"


def test_the_sdk_reads_translated_answers() -> None:
    """The anthropic SDK itself, over a mock transport, reads both kinds of answer."""
    stream_body = translate(REQUEST, two_tool_stream())
    answer = chat_answer({"role": "assistant", "content": "Hello!"})

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if body.get("stream"):
            return httpx2.Response(
                200, content=stream_body, headers={"content-type": "text/event-stream"}
            )
        return httpx2.Response(200, json=api.from_chat_response(answer, body))

    client = sdk_client(handler)
    message = client.messages.create(**REQUEST)
    assert message.content[0].text == "Hello!"  # type: ignore[union-attr]
    with client.messages.stream(**REQUEST) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[2].input == {"tz": "CET"}  # type: ignore[union-attr]
    assert final.usage.input_tokens == 9 and final.stop_reason == "tool_use"
    # An error event mid-stream is raised by the SDK as an API error.
    translator = api.ChatStreamTranslator(REQUEST)
    stream_body = translator.feed(b"".join(text_stream("Hi")[:2]))
    stream_body += translator.error_event("provider failed", "upstream_error")
    failing = pytest.raises(anthropic.APIStatusError, match="provider failed")
    with failing, client.messages.stream(**REQUEST) as stream:
        stream.get_final_message()


# -- Assembler (native Messages streams) ---------------------------------------------------------
def native_start(**usage: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": "msg_native1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1, **usage},
    }
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def native_tool_stream() -> bytes:
    thinking = {"type": "thinking", "thinking": "", "signature": ""}
    tool = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    return native(
        native_start(cache_read_input_tokens=40, cache_creation_input_tokens=10),
        {"type": "ping"},
        block_start(0, thinking),
        block_delta(0, {"type": "thinking_delta", "thinking": "Need weather."}),
        block_delta(0, {"type": "signature_delta", "signature": "sig123"}),
        {"type": "content_block_stop", "index": 0},
        block_start(1, {"type": "text", "text": ""}),
        block_delta(1, {"type": "text_delta", "text": "Checking "}),
        block_delta(1, {"type": "text_delta", "text": "now."}),
        {"type": "content_block_stop", "index": 1},
        block_start(2, tool),
        block_delta(2, {"type": "input_json_delta", "partial_json": ""}),
        block_delta(2, {"type": "input_json_delta", "partial_json": '{"city": "Pa'}),
        block_delta(2, {"type": "input_json_delta", "partial_json": 'ris"}'}),
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 30},
        },
        {"type": "message_stop"},
    )


def test_assembler_reads_a_native_stream() -> None:
    data = native_tool_stream()
    assembler = api.Assembler()
    forwarded = b""
    for i in range(0, len(data), 7):  # odd-sized reads: events go out whole, byte for byte
        forwarded += assembler.feed(data[i : i + 7], now=float(i))
    forwarded += assembler.flush(now=1e9)
    assert forwarded == data
    assert assembler.saw_done and assembler.response_id == "msg_native1"
    # The first token arrived with the read that completed the first thinking delta.
    end = data.index(b"\n\n", data.index(b"thinking_delta")) + 2
    assert assembler.first_token_at == (end - 1) // 7 * 7
    assert assembler.finish_reason == "tool_calls" and assembler.has_tool_calls()
    assert assembler.answer_text() == "Checking now."
    assert assembler.usage == {
        "prompt_tokens": 55,
        "completion_tokens": 30,
        "total_tokens": 85,
        "prompt_tokens_details": {"cached_tokens": 40, "cache_creation_tokens": 10},
    }
    stored = assembler.response()
    assert Message.model_validate(stored) == accumulate(data)  # what the SDK builds itself
    chat = api.to_chat_response(stored)
    assert chat["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Checking now.",
        "reasoning_content": "Need weather.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert chat["choices"][0]["finish_reason"] == "tool_calls"
    assert chat["usage"] == assembler.usage
    pydantic.TypeAdapter(openai_chat.ChatCompletion).validate_python(chat)


def test_assembler_on_a_cut_stream() -> None:
    data = native_tool_stream()
    cut = data[: data.index(b"ris")]  # in the middle of the tool's input
    assembler = api.Assembler()
    assembler.feed(cut, now=1.0)
    assembler.flush(now=2.0)
    assert not assembler.saw_done and assembler.finish_reason is None
    partial = assembler.response()
    assert partial["stop_reason"] is None
    assert partial["content"][2] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {},
    }
    Message.model_validate(partial)
    # An unterminated last event is read at the end of the body, and passed on with its end.
    assembler = api.Assembler()
    stop = b'event: message_stop\ndata: {"type": "message_stop"}'
    assert assembler.feed(stop, now=1.0) == b""
    assert assembler.flush(now=2.0) == stop + b"\n\n" and assembler.saw_done


def test_assembler_whole_body_and_errors() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    assembler = api.Assembler()
    assembler.load(body)
    assert assembler.response() is body and assembler.finish_reason == "length"
    assert assembler.answer_text() == "Hi" and not assembler.has_tool_calls()
    assert assembler.usage is not None and assembler.usage["prompt_tokens"] == 3
    error = native({"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}})
    streamed = api.Assembler()
    assert streamed.feed(error, now=1.0) == error
    assert streamed.error == {"type": "overloaded_error", "message": "Busy"}


def test_assembler_never_raises_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = [
        b"data: nope\n\n",
        b"event: ping\n\n",
        b"data: [1]\n\n",
        b'data: {"type": 5}\n\n',
        b'data: {"type": "message_start", "message": 3}\n\n',
        b'data: {"type": "content_block_start", "index": -4, "content_block": 7}\n\n',
        b'data: {"type": "content_block_delta", "index": 9, "delta": {"type": "x"}}\n\n',
        b'data: {"type": "content_block_delta", "index": 3, "delta": 4}\n\n',
        b'data: {"type": "message_delta", "delta": 5, "usage": {"output_tokens": "x"}}\n\n',
        b'data: {"type": "message_delta", "delta": {}, "usage": 7}\n\n',
        b'data: {"type": "error", "error": "text"}\n\n',
    ]
    assembler = api.Assembler()
    for g in garbage:
        assert assembler.feed(g, now=1.0) == g
    assembler.response(), assembler.answer_text(), assembler.has_tool_calls()
    loaded = api.Assembler()
    for value in GARBAGE:
        loaded.load(value)  # type: ignore[arg-type]
        loaded.finish_reason, loaded.answer_text(), loaded.has_tool_calls()

    monkeypatch.setattr(messages_assembler, "MAX_KEPT_CHARS", 100)
    assembler = api.Assembler()
    pieces = [block_delta(0, {"type": "text_delta", "text": "x" * 30}) for _ in range(10)]
    data = native(
        native_start(),
        block_start(0, {"type": "text", "text": ""}),
        *pieces,
        {"type": "message_stop"},
    )
    assert assembler.feed(data, now=1.0) == data  # everything relayed...
    assert assembler.truncated and len(assembler.answer_text()) < 100  # ...not all kept
    assert assembler.saw_done


async def test_assembler_reads_the_fake_upstreams_messages(upstream: FakeUpstream) -> None:
    """The bytes a native provider sends, as the fake upstream (and the e2e tests) send them."""
    url = f"{upstream.anthropic_base_url}/v1/messages"
    async with httpx2.AsyncClient() as client:
        whole = await client.post(url, json=REQUEST)
        streamed = await client.post(url, json={**REQUEST, "stream": True})
        counted = await client.post(f"{url}/count_tokens", json=REQUEST)
    assert counted.json() == {"input_tokens": 11}
    assert upstream.requests[-1].path == "/v1/messages/count_tokens"
    assembler = api.Assembler()
    assert assembler.feed(streamed.content, now=1.0) == streamed.content
    assert assembler.saw_done and assembler.finish_reason == "stop"
    assert assembler.answer_text() == whole.json()["content"][0]["text"]
    Message.model_validate(assembler.response())
    assert assembler.usage is not None and assembler.usage["completion_tokens"] == 7


# -- usage_to_chat and to_chat_response ----------------------------------------------------------
def test_usage_to_chat() -> None:
    assert api.usage_to_chat(None) is None and api.usage_to_chat({}) is None
    assert api.usage_to_chat({"service_tier": "standard"}) is None
    assert api.usage_to_chat({"input_tokens": 4, "output_tokens": 6}) == {
        "prompt_tokens": 4,
        "completion_tokens": 6,
        "total_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    usage = {
        "input_tokens": 4,
        "output_tokens": 6,
        "cache_read_input_tokens": 100,
        "output_tokens_details": {"thinking_tokens": 3},
    }
    chat = api.usage_to_chat(usage)
    assert chat is not None and chat["prompt_tokens"] == 104
    assert chat["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert (
        api.usage_to_chat(
            {"input_tokens": True, "output_tokens": -1, "cache_read_input_tokens": "9"}
        )
        is None
    )


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, None),
    ],
)
def test_to_chat_response_finish_reasons(stop: str | None, finish: str | None) -> None:
    message: dict[str, Any] = {"id": "msg_1", "model": "m", "content": [], "stop_reason": stop}
    assert api.to_chat_response(message)["choices"][0]["finish_reason"] == finish


def test_to_chat_response_never_raises() -> None:
    for value in GARBAGE:
        for message in (
            value,
            {"content": value, "usage": value, "id": value},
            {"content": [value, {"type": "tool_use", "input": value}]},
        ):
            chat = api.to_chat_response(message)  # type: ignore[arg-type]
            assert chat["object"] == "chat.completion"


# -- error_body ----------------------------------------------------------------------------------
class _Custom(ApiError):
    def __init__(self, status: int):
        super().__init__("custom")
        self.status = status


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InvalidRequest("bad", param="max_tokens"), "invalid_request_error"),
        (ValidationFailed("bad fields"), "invalid_request_error"),
        (RequestTimeout("slow body"), "invalid_request_error"),
        (AuthenticationFailed("who?"), "authentication_error"),
        (PermissionDenied("no"), "permission_error"),
        (NotFound("none"), "not_found_error"),
        (ModelNotFound("claude-x"), "not_found_error"),
        (PayloadTooLarge("big"), "request_too_large"),
        (_Custom(429), "rate_limit_error"),
        (ApiError("oops"), "api_error"),
        (UpstreamError("p", "reset"), "api_error"),
        (Overloaded("busy"), "overloaded_error"),
        (_Custom(529), "overloaded_error"),
        (UpstreamTimeout("p", "slow"), "timeout_error"),
    ],
)
def test_error_body(error: ApiError, kind: str) -> None:
    body = api.error_body(error)
    assert body == {"type": "error", "error": {"type": kind, "message": error.message}}
    if kind != "request_too_large":  # documented, but not (yet) in the SDK's union
        ErrorResponse.model_validate(body)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(error.status, json=body)

    with pytest.raises(anthropic.APIStatusError) as raised:
        sdk_client(handler).messages.create(**REQUEST)
    assert raised.value.status_code == error.status and raised.value.body == body


def test_errors_between_shapes() -> None:
    openai_error = {
        "error": {"message": "Too fast", "type": "rate_limit_exceeded", "param": None, "code": None}
    }
    assert api.error_from_chat(429, openai_error) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Too fast"},
    }
    native_error = {"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}}
    assert api.error_from_chat(529, native_error) is native_error
    assert api.error_from_chat(502, b"garbage")["error"] == {
        "type": "api_error",
        "message": "HTTP 502",
    }
    assert api.error_to_chat(529, native_error) == {
        "error": {"message": "Busy", "type": "overloaded_error", "param": None, "code": None}
    }
    assert api.error_to_chat(500, None)["error"]["message"] == "HTTP 500"


# -- the other way: chat clients served by Messages providers ------------------------------------
def test_from_chat_request() -> None:
    data_url = f"data:image/png;base64,{PIXEL}"
    call: dict[str, Any] = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    body: dict[str, Any] = {
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_completion_tokens": 300,
        "stop": "END",
        "temperature": 1.6,
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 1,
        "seed": 4,
    }
    request = api.from_chat_request(body)
    assert request == {
        "model": "claude-x",
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "max_tokens": 300,
        "stop_sequences": ["END"],
        "temperature": 1.0,
        "metadata": {"user_id": "u-1"},
        "stream": True,
        "tools": [
            {
                "name": "get_weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }
    # And back again, it is the chat request it came from, as far as Messages can say it.
    again = api.to_chat_request(request)["messages"]
    assert [m["role"] for m in again] == ["system", "user", "assistant", "tool", "user"]
    assert again[1:] == [
        body["messages"][2],
        body["messages"][3]
        | {
            "tool_calls": [
                call | {"function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
            ]
        },
        *body["messages"][4:],
    ]
    assert api.from_chat_request({"messages": []})["max_tokens"] == 4096
    for value in GARBAGE:
        api.from_chat_request(value)  # type: ignore[arg-type]
        api.from_chat_request(
            {
                "messages": [
                    value,
                    {"role": "user", "content": value},
                    {"role": "assistant", "tool_calls": [value]},
                ],
                "tools": [value],
                "stop": value,
                "tool_choice": value,
            }
        )


def chat_read(data: bytes) -> ResponseAssembler:
    assembler = ResponseAssembler("chat/completions")
    assert assembler.feed(data, now=1.0) == data
    return assembler


def test_messages_stream_as_chat_stream() -> None:
    translator = api.MessagesToChatStream({"model": "claude-x"}, created=7)
    out = translator.feed(native_tool_stream()) + translator.finish()
    events = sse(out)
    assert events[-1] == (None, "[DONE]")
    for _, payload in events[:-1]:
        CHUNK.model_validate(payload)
    assert events[-2][1]["choices"] == []  # the usage chunk, last before [DONE]
    assembler = chat_read(out)
    assert assembler.saw_done and assembler.finish_reason == "tool_calls"
    answer = assembler.response()["choices"][0]["message"]
    assert answer["content"] == "Checking now." and answer["reasoning_content"] == "Need weather."
    assert answer["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert assembler.usage is not None and assembler.usage["prompt_tokens"] == 55
    assert translator.finish() == b""


def test_round_trip_chat_through_messages_and_back() -> None:
    """chat SSE -> Messages SSE -> chat SSE: the same answer, tool calls and usage."""
    for chunks in (text_stream("Hel", "lo"), two_tool_stream()):
        original = chat_read(b"".join(chunks))
        messages_sse = translate(REQUEST, chunks)
        back = api.MessagesToChatStream({"model": "gpt-test"})
        again = chat_read(back.feed(messages_sse) + back.finish())
        before, after = original.response()["choices"][0], again.response()["choices"][0]
        assert after["message"]["content"] == before["message"]["content"]
        assert after["message"].get("tool_calls") == before["message"].get("tool_calls")
        assert after["finish_reason"] == before["finish_reason"]
        assert again.usage is not None and original.usage is not None
        assert again.usage["prompt_tokens"] == original.usage["prompt_tokens"]
        assert again.usage["completion_tokens"] == original.usage["completion_tokens"]


def test_messages_to_chat_stream_cut_and_errors() -> None:
    data = native_tool_stream()
    translator = api.MessagesToChatStream({"model": "claude-x"})
    out = translator.feed(data[: data.index(b"message_delta") - 7]) + translator.finish()
    assembler = chat_read(out)
    assert assembler.saw_done and assembler.finish_reason == "tool_calls"
    failing = api.MessagesToChatStream({"model": "claude-x"})
    error = native({"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}})
    assert sse(failing.feed(error)) == [
        (
            None,
            {"error": {"message": "Busy", "type": "overloaded_error", "param": None, "code": None}},
        )
    ]
    assert failing.finish() == b""
    garbage = api.MessagesToChatStream({})
    for g in (
        b"data: x\n\n",
        b'data: {"type": 3}\n\n',
        b'event: ping\ndata: {"type": "ping"}\n\n',
        b'data: {"type": "content_block_delta", "index": "a", "delta": 5}\n\n',
    ):
        garbage.feed(g)
    assert garbage.finish().endswith(b"data: [DONE]\n\n")
