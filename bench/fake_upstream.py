"""A minimal, fast OpenAI-compatible upstream for the latency benchmark.

Unlike `tests/fake_upstream.py` (which plays many scenarios and records every request), this one
does as little as possible per request: every answer is pre-serialised at start, so the time it
spends is small and identical whichever client (benchmark, forwarder, gateway) calls it.

    python -m bench.fake_upstream --port 9000 [--latency-ms 0] [--chunks 20] [--chunk-spacing-ms 1]

`POST /v1/chat/completions` answers a fixed `chat.completion` with usage, or, with
`"stream": true`, `--chunks` SSE chunks `--chunk-spacing-ms` apart, a usage chunk when
`stream_options.include_usage` is set, then `data: [DONE]`.
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
CREATED = 1_700_000_000
USAGE = {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32}
ANSWER = "Hello! This is a fixed answer from the benchmark's fake upstream."


@dataclass(frozen=True)
class Settings:
    latency_s: float = 0.0
    chunks: int = 20
    chunk_spacing_s: float = 0.001


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


class Answers:
    """Every byte the fake can send, built once so a request costs only parse + write."""

    def __init__(self, chunks: int):
        self.completion = orjson.dumps(
            {
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
        )
        events = []
        for i in range(chunks):
            delta: dict[str, Any] = {"content": f"tok{i} "}
            if i == 0:
                delta["role"] = "assistant"
            events.append(_sse(_chunk(delta, "stop" if i == chunks - 1 else None)))
        self.events: tuple[bytes, ...] = tuple(events)
        self.usage = _sse({**_chunk({}, None), "choices": [], "usage": USAGE})
        self.done = b"data: [DONE]\n\n"


class ChatHandler:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.answers = Answers(settings.chunks)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if self.settings.latency_s > 0:
            await asyncio.sleep(self.settings.latency_s)
        if not body.get("stream"):
            return web.Response(body=self.answers.completion, content_type="application/json")
        return await self._stream(request, body)

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        spacing = self.settings.chunk_spacing_s
        for i, event in enumerate(self.answers.events):
            if i and spacing > 0:
                await asyncio.sleep(spacing)
            await response.write(event)
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            await response.write(self.answers.usage)
        await response.write(self.answers.done)
        await response.write_eof()
        return response


def build_app(settings: Settings) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", ChatHandler(settings))
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
