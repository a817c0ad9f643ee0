"""Upstream answers that misbehave, for FakeUpstream: too big, endless, stalled, compression
bombs, SSE without event delimiters, and OpenAI shapes broken in every way seen in the wild.

Chosen like every FakeUpstream scenario, by a substring of the request's ``model``:

=====================  ==================================================================
substring              effect (on ``/v1/chat/completions``)
=====================  ==================================================================
``big-body``           a non-stream answer padded to ``body_bytes``
``gzip-bomb``          ``Content-Encoding: gzip``, inflating to ``body_bytes`` (a JSON
                       answer, or SSE events when streaming)
``endless``            content events forever, ``chunk_delay`` apart (0: as fast as it can)
``stall-stream``       the role event and one content event, then silence for
                       ``stall_seconds``
``no-delimiter``       ``body_bytes`` of ``data:`` lines with no blank line between them
``long-tool-call``     one tool call whose arguments stream in ``body_bytes // 50``
                       pieces of ``"x" * 50``
``malformed-<shape>``  one JSON payload broken as ``MALFORMED[shape]`` says: the whole body
                       when not streaming; when streaming, an extra event between the usage
                       chunk and ``[DONE]`` of an otherwise normal stream
=====================  ==================================================================
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

HUGE = 2**64 - 1  # the largest integer JSON parsers commonly accept as an integer


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _choice(**fields: Any) -> dict[str, Any]:
    # Each shape carries both `delta` (read in streams) and `message` (read in whole bodies),
    # so one payload breaks both paths.
    return {"choices": [{"index": 0, **fields}]}


MALFORMED: dict[str, bytes] = {
    "choices-object": _json({"id": "chatcmpl-m", "choices": {"0": {"delta": {"content": "!"}}}}),
    "choices-string": _json({"choices": "abc"}),
    "choices-scalars": _json({"choices": ["abc", 5, None, []]}),
    "delta-string": _json(_choice(delta="hi", message="hi")),
    "content-types": _json(
        _choice(
            delta={"role": 7, "content": 5, "refusal": [1], "reasoning_content": {"a": 1}},
            message={"role": 7, "content": {"a": 1}},
        )
    ),
    "text-number": _json(_choice(text=5)),
    "tool-calls-string": _json(_choice(delta={"tool_calls": "x"}, message={"tool_calls": "x"})),
    "tool-calls-strings": _json(
        _choice(delta={"tool_calls": ["x"]}, message={"tool_calls": ["x"]})
    ),
    "tool-call-fields": _json(
        _choice(
            delta={
                "tool_calls": [
                    {
                        "index": "first",
                        "id": 5,
                        "type": [],
                        "function": {"name": 1, "arguments": {}},
                    },
                    {"index": 0, "function": "f"},
                ]
            },
            message={"content": "x", "tool_calls": [{"function": "f"}, {"function": {"name": 2}}]},
        )
    ),
    "index-huge": _json(_choice(index=HUGE, delta={"content": "x"}, message={"content": "x"})),
    "index-odd": _json(
        {"choices": [{"index": -1, "delta": {"content": "a"}}, {"index": 1.5, "text": "b"}]}
    ),
    "finish-reason-list": _json(_choice(delta={}, message={}, finish_reason=["stop"])),
    "usage-strings": _json(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": "11",
                "completion_tokens": "7",
                "prompt_tokens_details": "none",
                "completion_tokens_details": [1],
            },
        }
    ),
    "usage-huge": _json(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": HUGE,
                "completion_tokens": HUGE,
                "total_tokens": HUGE,
                "prompt_tokens_details": {"cached_tokens": HUGE},
                "completion_tokens_details": {"reasoning_tokens": -HUGE // 2},
            },
        }
    ),
    "usage-floats": b'{"choices":[],"usage":{"prompt_tokens":1.5e300,"completion_tokens":-3}}',
    "usage-string": _json({"choices": [], "usage": "lots"}),
    "head-types": _json({"id": {"a": 1}, "model": [1], "created": "yesterday", "choices": []}),
    "not-object": b"[1,2,3]",
    "json-string": b'"hello"',
    "non-utf8": b'{"choices":[{"index":0,"delta":{"content":"caf\xe9"},'
    b'"message":{"content":"\xff"}}]}',
    "lone-surrogate": b'{"choices":[{"index":0,"delta":{"content":"\\ud800"}}]}',
    "too-deep": b'{"a":' * 2000 + b"1" + b"}" * 2000,
}


@dataclass
class MisbehaviourSettings:
    """Sizes and times the misbehaving modes use; tests change them per case."""

    body_bytes: int = 1024 * 1024
    chunk_delay: float = 0.0
    stall_seconds: float = 30.0


def pick(model: str) -> str | None:
    """The misbehaviour a model name asks for, if any."""
    modes = ["big-body", "gzip-bomb", "endless", "stall-stream", "no-delimiter", "long-tool-call"]
    modes += [f"malformed-{shape}" for shape in MALFORMED]
    # Longest first, so that no name is mistaken for one it contains.
    return next((m for m in sorted(modes, key=len, reverse=True) if m in model), None)


async def misbehave(
    request: web.Request, body: dict[str, Any], mode: str, settings: MisbehaviourSettings
) -> web.StreamResponse:
    stream = bool(body.get("stream"))
    if mode.startswith("malformed-"):
        payload = MALFORMED[mode.removeprefix("malformed-")]
        if not stream:
            return web.Response(body=payload, content_type="application/json")
        return await _write_stream(
            request, [*_normal_events(), _event(payload), b"data: [DONE]\n\n"]
        )
    if mode == "big-body":
        return web.Response(
            body=_padded_answer(settings.body_bytes), content_type="application/json"
        )
    if mode == "gzip-bomb":
        return web.Response(
            body=_bomb(settings.body_bytes, stream),
            headers={
                "Content-Type": "text/event-stream" if stream else "application/json",
                "Content-Encoding": "gzip",
            },
        )
    if mode == "no-delimiter":
        line = b"data: " + _json({"choices": [{"index": 0, "delta": {"content": "x" * 100}}]})
        count = settings.body_bytes // (len(line) + 1)
        lines = [line + b"\n"] * count
        batch = 500  # ~64 KiB a write
        return await _write_stream(
            request, [b"".join(lines[i : i + batch]) for i in range(0, count, batch)]
        )
    if mode == "long-tool-call":
        return await _write_stream(request, _long_tool_call(settings.body_bytes // 50))
    response = await _start_stream(request)
    try:
        if mode == "stall-stream":
            for event in _normal_events()[:2]:
                await response.write(event)
            await asyncio.sleep(settings.stall_seconds)
        else:  # endless
            event = _event(_json({"choices": [{"index": 0, "delta": {"content": "endless "}}]}))
            while True:
                await response.write(event)
                await asyncio.sleep(settings.chunk_delay)
    except ConnectionResetError:
        pass  # the gateway hung up, as it should
    return response


def _event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def _normal_events() -> list[bytes]:
    """A short, well-formed chat stream up to its usage chunk: "Hello! You said: hi"."""
    head = {"id": "chatcmpl-misbehaving", "object": "chat.completion.chunk", "created": 0}
    deltas = [
        {"role": "assistant", "content": ""},
        {"content": "Hello! "},
        {"content": "You said: hi"},
    ]
    events = [
        {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        for delta in deltas
    ]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    events.append({**head, "choices": [], "usage": usage})
    return [_event(_json(e)) for e in events]


def _long_tool_call(pieces: int) -> list[bytes]:
    call = {"index": 0, "id": "call_long", "type": "function"}
    announce = {**call, "function": {"name": "write_file", "arguments": ""}}
    events = [_event(_json(_choice(delta={"role": "assistant", "tool_calls": [announce]})))]
    piece = {"index": 0, "function": {"arguments": "x" * 50}}
    events += [_event(_json(_choice(delta={"tool_calls": [piece]})))] * pieces
    events += [_event(_json(_choice(delta={}, finish_reason="tool_calls"))), b"data: [DONE]\n\n"]
    batch = 500  # events a write
    return [b"".join(events[i : i + batch]) for i in range(0, len(events), batch)]


def _padded_answer(size: int) -> bytes:
    message = {"role": "assistant", "content": "x" * size}
    return _json({"id": "chatcmpl-big", "choices": [{"index": 0, "message": message}]})


@functools.cache
def _bomb(size: int, stream: bool) -> bytes:
    if stream:
        event = _event(_json({"choices": [{"index": 0, "delta": {"content": " " * 1000}}]}))
        plain = event * (size // len(event))
    else:
        plain = _padded_answer(size)
    return gzip.compress(plain, compresslevel=9)


async def _start_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


async def _write_stream(request: web.Request, pieces: list[bytes]) -> web.StreamResponse:
    response = await _start_stream(request)
    try:
        for piece in pieces:
            await response.write(piece)
    except ConnectionResetError:
        pass
    return response
