"""A minimal, fast upstream for the benchmark: OpenAI's chat completions and Responses API, and
Anthropic's Messages API.

Unlike `tests/fake_upstream.py` (which plays many scenarios and records every request), this one
does as little as possible per request: every answer is pre-serialised at start, so the time it
spends is small and identical whichever client (benchmark, forwarder, gateway) calls it.

    python -m bench.fake_upstream --port 9000 [--latency-ms 0] [--chunks 20] [--chunk-spacing-ms 1]

Each endpoint answers one fixed answer with usage, or, with `"stream": true`, its SSE stream
with `--chunks` content events `--chunk-spacing-ms` apart (the events before and after them
follow at once):

- `POST /v1/chat/completions`: `chat.completion`; stream: the chunks, a usage chunk when
  `stream_options.include_usage` is set, then `data: [DONE]`;
- `POST /v1/responses`: a `response`; stream: `response.created`, the
  `response.output_text.delta` events, `response.completed` with the whole response and usage;
- `POST /v1/messages`: a `message`; stream: `message_start`, `content_block_start`, the
  `content_block_delta` events, `content_block_stop`, `message_delta` with usage,
  `message_stop`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from bench.serving import run

MODEL = "bench-upstream"
COMPLETION_ID = "chatcmpl-bench"
RESPONSE_ID = "resp_bench"
ITEM_ID = "msg_bench"
MESSAGE_ID = "msg_bench"
CREATED = 1_700_000_000
USAGE = {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32}
ANSWER = "Hello! This is a fixed answer from the benchmark's fake upstream."


@dataclass(frozen=True)
class Settings:
    latency_s: float = 0.0
    chunks: int = 20
    chunk_spacing_s: float = 0.001


@dataclass(frozen=True)
class Wire:
    """One endpoint's every byte: the whole answer, and its stream as the events before the
    content (`head`), the content events (paced), chat's optional usage chunk, and the rest."""

    whole: bytes
    head: tuple[bytes, ...]
    content: tuple[bytes, ...]
    usage: bytes | None
    tail: tuple[bytes, ...]


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(payload: dict[str, Any]) -> bytes:
    """A named SSE event, as the Responses and Messages APIs send them."""
    return b"event: " + payload["type"].encode() + b"\n" + _sse(payload)


def _pieces(chunks: int) -> list[str]:
    return [f"tok{i} " for i in range(chunks)]


def _chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def chat_wire(chunks: int) -> Wire:
    whole = {
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    events = []
    for i, piece in enumerate(_pieces(chunks)):
        delta: dict[str, Any] = {"content": piece}
        if i == 0:
            delta["role"] = "assistant"
        events.append(_sse(_chunk(delta, "stop" if i == chunks - 1 else None)))
    usage = _sse({**_chunk({}, None), "choices": [], "usage": USAGE})
    return Wire(orjson.dumps(whole), (), tuple(events), usage, (b"data: [DONE]\n\n",))


def _response(text: str, done: bool) -> dict[str, Any]:
    """The response object: as `response.created` carries it (in progress, no output, no
    usage), or done (the whole answer, and what `response.completed` carries)."""
    status = "completed" if done else "in_progress"
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item = {"type": "message", "id": ITEM_ID, "status": status, "role": "assistant"}
    usage = {
        "input_tokens": USAGE["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": USAGE["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": USAGE["total_tokens"],
    }
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": MODEL,
        "output": [{**item, "content": [part]}] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "store": True,
        "temperature": 0.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "usage": usage if done else None,
    }


def responses_wire(chunks: int) -> Wire:
    pieces = _pieces(chunks)
    at = {"item_id": ITEM_ID, "output_index": 0, "content_index": 0}
    created: dict[str, Any] = {"type": "response.created", "response": _response("", done=False)}
    deltas: list[dict[str, Any]] = [
        {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
        for piece in pieces
    ]
    completed: dict[str, Any] = {
        "type": "response.completed",
        "response": _response("".join(pieces), done=True),
    }
    for number, event in enumerate([created, *deltas, completed]):
        event["sequence_number"] = number
    whole = orjson.dumps(_response(ANSWER, done=True))
    return Wire(whole, (_event(created),), tuple(map(_event, deltas)), None, (_event(completed),))


def messages_wire(chunks: int) -> Wire:
    message = {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": ANSWER}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": USAGE["prompt_tokens"],
            "output_tokens": USAGE["completion_tokens"],
        },
    }
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": USAGE["prompt_tokens"], "output_tokens": 1},
    }
    head: tuple[dict[str, Any], ...] = (
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
        for p in _pieces(chunks)
    ]
    tail: tuple[dict[str, Any], ...] = (
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": USAGE["completion_tokens"]},
        },
        {"type": "message_stop"},
    )
    return Wire(
        orjson.dumps(message),
        tuple(map(_event, head)),
        tuple(map(_event, deltas)),
        None,
        tuple(map(_event, tail)),
    )


class Handler:
    """One endpoint: parse the body (as any server must), then write pre-serialised bytes."""

    def __init__(self, wire: Wire, settings: Settings):
        self.wire = wire
        self.settings = settings

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if self.settings.latency_s > 0:
            await asyncio.sleep(self.settings.latency_s)
        if not body.get("stream"):
            return web.Response(body=self.wire.whole, content_type="application/json")
        return await self._stream(request, body)

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for event in self.wire.head:
            await response.write(event)
        spacing = self.settings.chunk_spacing_s
        for i, event in enumerate(self.wire.content):
            if i and spacing > 0:
                await asyncio.sleep(spacing)
            await response.write(event)
        options = body.get("stream_options")
        if self.wire.usage and isinstance(options, dict) and options.get("include_usage"):
            await response.write(self.wire.usage)
        for event in self.wire.tail:
            await response.write(event)
        await response.write_eof()
        return response


def build_app(settings: Settings) -> web.Application:
    app = web.Application()
    wires = {
        "/v1/chat/completions": chat_wire(settings.chunks),
        "/v1/responses": responses_wire(settings.chunks),
        "/v1/messages": messages_wire(settings.chunks),
    }
    for path, wire in wires.items():
        app.router.add_post(path, Handler(wire, settings))
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_upstream", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument("--chunks", type=int, default=Settings.chunks, help="SSE content chunks")
    parser.add_argument(
        "--chunk-spacing-ms",
        type=float,
        default=Settings.chunk_spacing_s * 1000,
        help="delay between SSE chunks",
    )
    args = parser.parse_args(argv)
    if args.chunks < 1:
        parser.error("--chunks must be at least 1")
    settings = Settings(args.latency_ms / 1000, args.chunks, args.chunk_spacing_ms / 1000)
    run(build_app(settings), args.port)


if __name__ == "__main__":
    main()
