"""The Responses API wire format (gateway/apis/responses*.py), checked against the official
openai SDK: every response object and stream event it emits validates as the SDK's pydantic
types, a translated stream adds up in the SDK's own stream accumulator, and the native
Assembler reads what the fake upstream's `/v1/responses` sends.
"""

from __future__ import annotations

import json
import random
from typing import Any

import aiohttp
import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.apis import responses
from gateway.apis.responses import (
    Assembler,
    ChatStreamTranslator,
    error_body,
    from_chat_response,
    to_chat_request,
    to_chat_response,
    usage_to_chat,
)
from gateway.errors import InvalidRequest
from gateway.proxy.assembler import ResponseAssembler
from tests.fake_upstream import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    CUTOFF_CONTENT_CHUNKS,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
    TOOL_NAME,
    FakeUpstream,
    expected_content,
)

EVENT = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 2},
    "completion_tokens_details": {"reasoning_tokens": 3},
}


# -- helpers ---------------------------------------------------------------------------------
def chat_completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
        **extra,
    }


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def text_stream(pieces: list[str], finish: str = "stop", usage: bool = True) -> list[bytes]:
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    events.append(chunk({}, finish))
    if usage:
        events.append(chunk(None, usage=USAGE))
    return [*events, b"data: [DONE]\n\n"]


def tool_stream() -> list[bytes]:
    announce = {"index": 0, "id": "call_1", "type": "function"}
    announce["function"] = {"name": "get_weather", "arguments": ""}
    events = [chunk({"role": "assistant", "content": None, "tool_calls": [announce]})]
    for piece in ['{"ci', 'ty": "Pa', 'ris"}']:
        events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    return [*events, chunk({}, "tool_calls"), chunk(None, usage=USAGE), b"data: [DONE]\n\n"]


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """Responses SSE as event payloads; each one's `event:` line must name its `type`."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip() or block.startswith(":"):
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        payload = json.loads(lines[1][len("data: ") :])
        assert lines[0] == f"event: {payload['type']}"
        events.append(payload)
    return events


def validated(raw: bytes) -> list[dict[str, Any]]:
    """The events, each validated as the SDK's ResponseStreamEvent, numbered 0, 1, 2..."""
    events = parse_sse(raw)
    for event in events:
        EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def translate(request: dict[str, Any], events: list[bytes]) -> bytes:
    translator = ChatStreamTranslator(request)
    return b"".join(translator.feed(event) for event in events) + translator.finish()


def assembled_chat(events: list[bytes]) -> dict[str, Any]:
    """What the chat assembler (the record of the upstream's answer) makes of a chat stream."""
    assembler = ResponseAssembler("chat/completions")
    for event in events:
        assembler.feed(event, 0.0)
    return assembler.response()


def sdk_client(body: bytes, content_type: str = "text/event-stream") -> openai.OpenAI:
    """An openai client whose every request is answered with `body`."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, content=body)

    transport = httpx.MockTransport(answer)
    return openai.OpenAI(
        api_key="sk-test", base_url="http://test/v1", http_client=httpx.Client(transport=transport)
    )


def assemble(raw: bytes, step: int | None = None) -> tuple[Assembler, bytes]:
    """Feed `raw` to a native Assembler (in pieces of `step` bytes); what it forwarded."""
    assembler = Assembler()
    step = step or len(raw) or 1
    out = b"".join(
        assembler.feed(raw[i : i + step], float(i)) for i in range(0, len(raw), step)
    ) + assembler.flush(1e9)
    return assembler, out


# -- to_chat_request -------------------------------------------------------------------------
def test_request_plain_text_and_settings() -> None:
    chat = to_chat_request(
        {
            "model": "gpt-test",
            "instructions": "Be brief.",
            "input": "hi there",
            "temperature": 0.2,
            "top_p": 0.9,
            "max_output_tokens": 100,
            "user": "u-1",
            "reasoning": {"effort": "low", "summary": "auto"},
            "text": {"format": {"type": "text"}, "verbosity": "low"},
            "parallel_tool_calls": False,  # dropped: chat refuses it without tools
            "tool_choice": "auto",  # likewise
            "store": True,
            "metadata": {"k": "v"},
            "stream": True,
        }
    )
    assert chat == {
        "model": "gpt-test",
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi there"},
        ],
        "max_completion_tokens": 100,
        "verbosity": "low",
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_request_multi_turn_items() -> None:
    chat = to_chat_request(
        {
            "model": "m",
            "input": [
                {"role": "developer", "content": "Answer in French."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "a"}],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "b", "annotations": []}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look:"},
                        {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,AA==",
                            "filename": "a.pdf",
                        },
                    ],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look:"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,AA==", "filename": "a.pdf"},
                },
            ],
        },
    ]


def test_request_tools_calls_and_outputs() -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather"}
    chat = to_chat_request(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Let me check."},
                {**call, "arguments": '{"city":"Paris"}', "id": "fc_1", "status": "completed"},
                {**call, "call_id": "call_2", "arguments": '{"city":"Rome"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "call_2",
                    "output": [{"type": "input_text", "text": "rain"}],
                },
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": True,
        }
    )
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
    ]
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
    ]
    function = {k: WEATHER[k] for k in ("name", "description", "parameters", "strict")}
    assert chat["tools"] == [{"type": "function", "function": function}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is True
    # A call with no text before it is an assistant message of its own.
    alone = to_chat_request({"model": "m", "input": [{**call, "arguments": "{}"}]})
    assert alone["messages"] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("required", "required"),
        ("none", "none"),
        (
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
        ),
    ],
)
def test_request_tool_choice(choice: Any, expected: Any) -> None:
    chat = to_chat_request({"model": "m", "input": "x", "tools": [WEATHER], "tool_choice": choice})
    assert chat["tool_choice"] == expected


def test_request_text_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}
    chat = to_chat_request({"model": "m", "input": "x", "text": {"format": fmt}})
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }
    chat = to_chat_request(
        {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}
    )
    assert chat["response_format"] == {"type": "json_object"}
    chat = to_chat_request({"model": "m", "input": "x", "text": {"format": {"type": "text"}}})
    assert "response_format" not in chat


STRICT_ERRORS = [
    ({"tools": [{"type": "web_search"}]}, "tools[0]", "web_search"),
    ({"tools": [WEATHER, {"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[1]", "file"),
    ({"tools": [{"type": "computer_use_preview"}]}, "tools[0]", "computer_use_preview"),
    ({"previous_response_id": "resp_1"}, "previous_response_id", "whole conversation as `input`"),
    ({"conversation": "conv_1"}, "conversation", "Responses API"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "item_reference"),
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0]", "web_search_call"),
    ({"input": None}, "input", "required"),
    ({"input": 42}, "input", "string or a list"),
    ({"input": []}, "input", "at least one message"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "one of"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        "input[0].content[0]",
        "file_id",
    ),
    (
        {
            "input": [
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_image", "image_url": "u"}],
                }
            ]
        },
        "input[0].output[0]",
        "text",
    ),
    ({"tools": [WEATHER], "tool_choice": {"type": "web_search"}}, "tool_choice", "function"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format", "schema"),
    ({"background": True}, "background", "background"),
]


@pytest.mark.parametrize(("fields", "param", "words"), STRICT_ERRORS)
def test_request_strict_errors(fields: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat_request({"model": "m", "input": "x", **fields})
    assert caught.value.param == param
    assert words in caught.value.message
    assert caught.value.to_body()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(("fields", "param", "words"), STRICT_ERRORS)
def test_request_lenient_never_raises(fields: dict[str, Any], param: str, words: str) -> None:
    chat = to_chat_request({"model": "m", "input": "x", **fields}, strict=False)
    assert isinstance(chat["messages"], list)
    assert all(tool["type"] == "function" for tool in chat.get("tools", []))


def test_request_lenient_skips_what_chat_cannot_say() -> None:
    chat = to_chat_request(
        {
            "model": "m",
            "previous_response_id": "resp_1",
            "input": [
                {"type": "item_reference", "id": "msg_1"},
                "garbage",
                {"role": "user", "content": "kept"},
                {"type": "function_call"},
            ],
            "tools": [{"type": "web_search"}, WEATHER, 7],
        },
        strict=False,
    )
    assert chat["messages"] == [{"role": "user", "content": "kept"}]
    assert [t["function"]["name"] for t in chat["tools"]] == ["get_weather"]
    for body in ({}, {"input": {"no": 1}}, {"input": [None, [], {"role": 5}]}, {"tools": "x"}):
        to_chat_request(body, strict=False)
    to_chat_request("not a dict", strict=False)  # type: ignore[arg-type]


# -- from_chat_response ----------------------------------------------------------------------
def test_response_plain_text() -> None:
    request = {
        "model": "alias",
        "input": "hi",
        "instructions": "Be brief.",
        "temperature": 0.5,
        "max_output_tokens": 50,
        "tools": [WEATHER],
        "metadata": {"k": "v"},
    }
    body = from_chat_response(chat_completion({"role": "assistant", "content": "Hello!"}), request)
    sdk = Response.model_validate(body)
    assert "output_text" not in body  # an SDK convenience, not part of the wire object
    assert sdk.output_text == "Hello!"
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert body["id"] == from_chat_response(chat_completion({"content": "other"}), {})["id"]
    other = from_chat_response({**chat_completion({"content": "x"}), "id": "chatcmpl-xyz"}, {})
    assert other["id"] != body["id"]
    assert (body["created_at"], body["model"], body["status"]) == (
        1700000000,
        "gpt-test",
        "completed",
    )
    assert body["incomplete_details"] is None and body["error"] is None
    [item] = body["output"]
    assert item["type"] == "message" and item["role"] == "assistant"
    assert item["status"] == "completed" and item["id"].startswith("msg_")
    assert body["usage"] == {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 18,
    }
    # The request's settings are echoed, as the API does.
    assert (body["instructions"], body["temperature"], body["max_output_tokens"]) == (
        "Be brief.",
        0.5,
        50,
    )
    assert body["tools"][0]["name"] == "get_weather" and body["metadata"] == {"k": "v"}
    assert (body["tool_choice"], body["top_p"], body["parallel_tool_calls"]) == ("auto", 1.0, True)


def test_response_tool_calls_and_reasoning() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "The user wants weather.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
            },
        ],
    }
    body = from_chat_response(chat_completion(message, "tool_calls"), {"tools": [WEATHER]})
    Response.model_validate(body)
    kinds = [item["type"] for item in body["output"]]
    assert kinds == ["reasoning", "function_call", "function_call"]
    assert body["output"][0]["content"] == [
        {"type": "reasoning_text", "text": "The user wants weather."}
    ]
    calls = body["output"][1:]
    assert [(c["call_id"], c["name"], c["arguments"]) for c in calls] == [
        ("call_1", "get_weather", '{"city":"Paris"}'),
        ("call_2", "get_weather", '{"city":"Rome"}'),
    ]
    assert len({c["id"] for c in calls}) == 2 and all(c["id"].startswith("fc_") for c in calls)


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_response_incomplete(finish: str, reason: str) -> None:
    body = from_chat_response(chat_completion({"content": "Hel"}, finish), {})
    Response.model_validate(body)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": reason}
    assert body["output"][-1]["status"] == "incomplete"
    assert to_chat_response(body)["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    "chat",
    [
        {},
        {"choices": "x"},
        {"choices": [None]},
        {"id": 5, "created": "x", "usage": "x"},
        {"choices": [{"message": {"content": 5, "tool_calls": [None, {"function": 3}]}}]},
        chat_completion(
            {"content": [{"type": "text", "text": "parts"}]}, usage={"prompt_tokens": -1}
        ),
    ],
)
def test_response_from_odd_chat_validates(chat: dict[str, Any]) -> None:
    Response.model_validate(from_chat_response(chat, {"tools": "x", "text": 5}))


# -- to_chat_response and usage --------------------------------------------------------------
def test_to_chat_round_trip() -> None:
    message = {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "hmm",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
            }
        ],
    }
    chat = to_chat_response(from_chat_response(chat_completion(message, "tool_calls"), {}))
    ChatCompletion.model_validate(chat)
    choice = chat["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == message
    assert chat["usage"]["prompt_tokens"] == 11
    assert chat["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
    assert chat["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}


def test_to_chat_of_native_shapes() -> None:
    refusal = {
        "type": "message",
        "id": "m",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "refusal", "refusal": "No."}],
    }
    chat = to_chat_response({"id": "resp_1", "status": "completed", "output": [refusal]})
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": None, "refusal": "No."}
    summary = {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "s"}]}
    chat = to_chat_response({"status": "failed", "output": [summary]})
    assert chat["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": None, "reasoning_content": "s"},
        "finish_reason": None,
    }
    for odd in (
        {},
        {"output": "x"},
        {"output": [None, {"type": "message", "content": 3}]},
        {"created_at": "x", "status": "incomplete", "incomplete_details": 4},
    ):
        to_chat_response(odd)
    to_chat_response(None)  # type: ignore[arg-type]


def test_usage_to_chat() -> None:
    usage = {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 18,
    }
    assert usage_to_chat(usage) == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    assert usage_to_chat(None) is None and usage_to_chat({}) is None and usage_to_chat([]) is None
    # Counts pass as they came: capture decides what is plausible (and flags the rest).
    assert usage_to_chat({"input_tokens": "many"}) == {"prompt_tokens": "many"}
    assert usage_to_chat({"prompt_tokens": 3}) == {"prompt_tokens": 3}


def test_error_body_and_endpoint() -> None:
    error = InvalidRequest("bad", param="input")
    assert error_body(error) == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "input", "code": None}
    }
    assert responses.ENDPOINT == "responses"


# -- ChatStreamTranslator --------------------------------------------------------------------
def test_stream_text() -> None:
    chat_events = text_stream(["Hel", "lo ", "there"])
    request = {"model": "alias", "input": "hi", "stream": True, "instructions": "Be brief."}
    events = validated(translate(request, chat_events))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    )
    assert "".join(e["delta"] for e in events if "delta" in e) == "Hello there"
    assert events[7]["text"] == "Hello there"
    final = events[-1]["response"]
    Response.model_validate(final)
    assert final["usage"]["input_tokens"] == 11 and final["usage"]["output_tokens"] == 7
    # The same object the whole translation gives for the answer the chat assembler records.
    assert final == from_chat_response(assembled_chat(chat_events), request)
    assert {e["response"]["id"] for e in events if "response" in e} == {final["id"]}


def test_stream_tool_call_and_reasoning() -> None:
    events_in = [
        chunk({"role": "assistant", "reasoning_content": "Weather, "}),
        chunk({"reasoning_content": "so call it."}),
        *tool_stream(),
    ]
    request = {"model": "m", "input": "weather?", "tools": [WEATHER], "stream": True}
    events = validated(translate(request, events_in))
    types = [e["type"] for e in events]
    assert "response.reasoning_text.delta" in types
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == '{"city": "Paris"}'
    [done] = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done["arguments"] == '{"city": "Paris"}'
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed"
    assert [item["type"] for item in final["output"]] == ["reasoning", "function_call"]
    assert final == from_chat_response(assembled_chat(events_in), request)
    assert to_chat_response(final)["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_length_is_incomplete() -> None:
    events = validated(translate({"model": "m"}, text_stream(["Hel"], finish="length")))
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    [done] = [e for e in events if e["type"] == "response.output_item.done"]
    assert done["item"]["status"] == "incomplete"


def test_stream_without_usage_and_empty_answer() -> None:
    events = validated(translate({"model": "m"}, text_stream([], usage=False)))
    final = events[-1]["response"]
    assert final["usage"] is None
    assert final["output"][0]["content"] == [
        {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ]


def test_stream_cut_short_fails_with_what_was_said() -> None:
    translator = ChatStreamTranslator({"model": "m"})
    out = b"".join(translator.feed(e) for e in text_stream(["Hel", "lo"])[:3])
    out += translator.finish()
    events = validated(out)
    assert events[-1]["type"] == "response.failed"
    final = events[-1]["response"]
    assert final["status"] == "failed" and final["error"]["code"] == "server_error"
    assert final["output"][0]["status"] == "incomplete"
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert translator.finish() == b"" and translator.feed(chunk({"content": "x"})) == b""


def test_stream_missing_done_after_finish_completes() -> None:
    out = translate({"model": "m"}, text_stream(["ok"])[:-1])  # no [DONE]
    events = validated(out)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["total_tokens"] == 18


def test_stream_error_event() -> None:
    translator = ChatStreamTranslator({"model": "m"})
    out = translator.feed(text_stream(["Hel"])[1])
    out += translator.error_event("Upstream provider 'p' failed: reset", "upstream_error")
    events = validated(out)
    error = events[-2]
    assert error["type"] == "error" and error["message"].startswith("Upstream provider")
    assert error["code"] == "upstream_error" and error["error"]["type"] == "upstream_error"
    assert events[-1]["type"] == "response.failed"
    assert translator.finish() == b"" and translator.error_event("again", "x") == b""
    # An error before anything else still starts the response first.
    events = validated(ChatStreamTranslator({}).error_event("boom", "upstream_timeout"))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "error",
        "response.failed",
    ]


def test_stream_chat_error_chunk_becomes_error_event() -> None:
    bad = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    events = validated(translate({}, [text_stream(["a"])[1], bad]))
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]


def test_stream_bytes_in_any_pieces_and_keepalives() -> None:
    raw = b": keep-alive\n\n" + b"".join(text_stream(["Hel", "lo"]))
    whole = translate({"model": "m"}, [raw])
    assert whole.startswith(b": keep-alive\n\n")
    translator = ChatStreamTranslator({"model": "m"})
    bytewise = b"".join(translator.feed(raw[i : i + 1]) for i in range(len(raw)))
    assert bytewise + translator.finish() == whole


def test_stream_odd_chat_never_raises() -> None:
    odd = [
        b"data: not json\n\n",
        b"data: [1, 2]\n\n",
        b'data: {"choices": 5}\n\n',
        b'data: {"choices": [{"delta": {"content": 5, "tool_calls": [7, {"index": "x"}]}}]}\n\n',
        b'data: {"choices": [{"index": 3, "delta": {"content": "other choice"}}]}\n\n',
        b'data: {"usage": "x", "choices": [{"delta": null, "finish_reason": 9}]}\n\n',
        b"event: x\n\n",
        b"data: [DONE]\n\n",
    ]
    events = validated(translate({"tools": 5, "text": []}, odd))
    assert events[-1]["type"] == "response.completed"
    rng = random.Random(7)
    for _ in range(200):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
        translate({}, [b"data: " + junk + b"\n\n", junk])


def sdk_final(raw: bytes) -> Any:
    with sdk_client(raw).responses.stream(model="m", input="hi", tools=[WEATHER]) as stream:
        types = [event.type for event in stream]
        return types, stream.get_final_response()


def test_stream_adds_up_in_the_sdk() -> None:
    types, final = sdk_final(translate({"model": "m"}, text_stream(["Hel", "lo"])))
    assert types[-1] == "response.completed" and final.output_text == "Hello"
    types, final = sdk_final(translate({"model": "m", "tools": [WEATHER]}, tool_stream()))
    [call] = final.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.parsed_arguments == {"city": "Paris"}  # parsed by the SDK: the tool is strict
    raw = translate({"model": "m"}, text_stream(["Hi"]))
    events = list(sdk_client(raw).responses.create(model="m", input="hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_stream_error_raises_in_the_sdk() -> None:
    translator = ChatStreamTranslator({"model": "m"})
    raw = translator.feed(text_stream(["Hel"])[1]) + translator.error_event(
        "boom", "upstream_error"
    )
    with pytest.raises(openai.APIError, match="boom"):
        sdk_final(raw)


# -- Assembler (native Responses answers) ----------------------------------------------------
async def fake_raw(fake: FakeUpstream, model: str, stream: bool = True, **body: Any) -> bytes:
    """The bytes the fake's /v1/responses answers (up to where it hangs up)."""
    payload = {"model": model, "input": "hi there", "stream": stream, **body}
    chunks = []
    url = f"{fake.base_url}/responses"
    async with aiohttp.ClientSession() as session, session.post(url, json=payload) as resp:
        try:
            async for piece in resp.content.iter_any():
                chunks.append(piece)
        except aiohttp.ClientPayloadError:
            pass  # the cutoff scenario
    return b"".join(chunks)


async def test_assembler_native_stream(upstream: FakeUpstream) -> None:
    raw = await fake_raw(upstream, "fake-model")
    events = validated(raw)
    for step in (None, 1, 7):
        assembler, out = assemble(raw, step)
        assert out == raw  # forwarded as it came
        assert assembler.saw_done and not assembler.truncated
        assert assembler.response() == events[-1]["response"]
        Response.model_validate(assembler.response())
        assert assembler.answer_text() == expected_content("hi there")
        assert assembler.finish_reason == "stop" and not assembler.has_tool_calls()
        assert assembler.response_id == events[0]["response"]["id"]
        assert assembler.usage == {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "cache_write_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        # TTFT: when the piece that completed the first text delta event came.
        end = raw.index(b"\n\n", raw.index(b"event: response.output_text.delta")) + 2
        assert assembler.first_token_at == float((end - 1) // (step or len(raw)) * (step or 0))


async def test_assembler_native_tools_length_and_no_usage(upstream: FakeUpstream) -> None:
    raw = await fake_raw(upstream, "fake-tools", tools=[WEATHER])
    validated(raw)
    assembler, _ = assemble(raw)
    assert assembler.has_tool_calls() and assembler.finish_reason == "tool_calls"
    chat = to_chat_response(assembler.response())
    assert chat["choices"][0]["message"]["tool_calls"] == [
        {
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS},
        }
    ]
    raw = await fake_raw(upstream, "fake-length-no-usage")
    assert validated(raw)[-1]["type"] == "response.incomplete"
    assembler, _ = assemble(raw)
    assert assembler.finish_reason == "length" and assembler.usage is None
    assert assembler.response()["status"] == "incomplete"


async def test_assembler_native_cut_short(upstream: FakeUpstream) -> None:
    raw = await fake_raw(upstream, "fake-cutoff")
    assert b"response.completed" not in raw
    for step in (None, 3):
        assembler, out = assemble(raw, step)
        assert out == raw and not assembler.saw_done
        partial = assembler.response()
        Response.model_validate(partial)
        assert partial["status"] == "in_progress"
        assert assembler.answer_text() == expected_content("hi there")[: 4 * CUTOFF_CONTENT_CHUNKS]
        assert assembler.finish_reason is None and assembler.usage is None
    # Cut inside the tool call's arguments: the pieces so far.
    assembler, _ = assemble(await fake_raw(upstream, "fake-tools-cutoff", tools=[WEATHER]))
    [call] = assembler.response()["output"]
    assert call["arguments"] == TOOL_ARGUMENTS[:16] and assembler.has_tool_calls()


async def test_assembler_load_whole(upstream: FakeUpstream) -> None:
    body = json.loads(await fake_raw(upstream, "fake-model", stream=False))
    Response.model_validate(body)
    assembler = Assembler()
    assembler.load(body)
    assert assembler.whole is body and assembler.response() is body
    assert assembler.response_id == body["id"] and assembler.usage is not None
    assert assembler.usage["prompt_tokens"] == PROMPT_TOKENS
    assert assembler.answer_text() == expected_content("hi there")
    assert assembler.finish_reason == "stop"


async def test_fake_responses_with_the_sdk(upstream: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="sk-test", max_retries=0)
    async with client:
        plain = await client.responses.create(model="fake-model", input="hi there")
        assert plain.output_text == expected_content("hi there")
        items = [{"role": "user", "content": [{"type": "input_text", "text": "hi items"}]}]
        plain = await client.responses.create(model="fake-model", input=items)  # type: ignore[arg-type]
        assert plain.output_text == expected_content("hi items")
        async with client.responses.stream(model="fake-model", input="hi") as stream:
            final = await stream.get_final_response()
        assert final.output_text == expected_content("hi")
        tools = await client.responses.create(model="fake-tools", input="x", tools=[WEATHER])  # type: ignore[list-item]
        assert tools.output[0].type == "function_call"
        length = await client.responses.create(model="fake-length", input="x")
        assert length.status == "incomplete"
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model="fake-error-429", input="x")


def test_assembler_translated_stream_reads_back() -> None:
    """A translated stream, read as a native one, is the response it completed with."""
    raw = translate({"model": "m", "tools": [WEATHER]}, tool_stream())
    assembler, _ = assemble(raw)
    assert assembler.response() == parse_sse(raw)[-1]["response"]
    assert assembler.finish_reason == "tool_calls" and assembler.usage is not None
    # And cut short, it adds up from the deltas to the same call.
    cut = raw[: raw.index(b"event: response.function_call_arguments.done")]
    assembler, _ = assemble(cut)
    assert assembler.response()["output"][0]["arguments"] == '{"city": "Paris"}'


def test_assembler_error_event_and_failure() -> None:
    translator = ChatStreamTranslator({"model": "m"})
    raw = translator.feed(text_stream(["Hel"])[1]) + translator.error_event(
        "boom", "upstream_error"
    )
    assembler, _ = assemble(raw)
    assert assembler.saw_done  # response.failed is the stream's last event
    assert assembler.error is not None and assembler.error["message"] == "boom"
    assert assembler.finish_reason is None and assembler.answer_text() == "Hel"


def test_assembler_keeps_no_more_than_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.apis.responses_assembler.MAX_KEPT_CHARS", 4000)
    raw = translate({"model": "m"}, text_stream(["x" * 100] * 100))
    cut = raw[: raw.index(b"event: response.output_text.done")]
    assembler, out = assemble(cut)
    assert out == cut and assembler.truncated
    assert 0 < len(assembler.answer_text()) <= 4000


def test_assembler_odd_input_never_raises() -> None:
    odd = (
        b'event: response.output_text.delta\ndata: {"output_index": 0, "delta": 5}\n\n'
        b'data: {"type": "response.output_item.added", "output_index": -1, "item": {}}\n\n'
        b'data: {"type": "response.output_item.added", "output_index": 0, "item": []}\n\n'
        b'data: {"type": "response.output_item.added", "output_index": 0, '
        b'"item": {"type": "message"}}\n\n'
        b'data: {"type": "response.output_text.delta", "output_index": 0, '
        b'"content_index": "x", "delta": "ok"}\n\n'
        b'data: {"type": "response.output_text.delta", "output_index": [0], "delta": "x"}\n\n'
        b'data: {"type": "response.output_text.delta", "output_index": true, "delta": "x"}\n\n'
        b'data: {"type": "response.output_item.done", "output_index": 99999, "item": {}}\n\n'
        b'data: {"type": "response.completed", "response": "x"}\n\n'
        b'data: {"type": "response.created", "response": {"id": 5}}\n\n'
        b'data: [1]\n\ndata: nope\n\n: comment\n\ndata: {"type": "error"}'
    )
    assembler, out = assemble(odd)
    assert out == odd + b"\n\n"
    assert assembler.answer_text() == "ok" and assembler.finish_reason is None
    rng = random.Random(3)
    for _ in range(200):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(80)))
        assembler, _ = assemble(b"data: " + junk + b"\n\n" + junk)
        assembler.response(), assembler.answer_text(), assembler.has_tool_calls()
    assembler = Assembler()
    assembler.load([])  # type: ignore[arg-type]
    assert assembler.finish_reason is None
