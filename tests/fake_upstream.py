"""A fake LLM provider for Flywheel's end-to-end tests.

``FakeUpstream`` is a real aiohttp server on 127.0.0.1 (random free port) that
speaks OpenAI's wire format closely enough for the official SDK, plus
Anthropic's Messages API on ``/v1/messages``.  A real socket (rather than a
mocked HTTP client) means the gateway's pooling, chunked streaming, timeouts
and disconnect handling are exercised for real.

Behaviour is chosen by substrings of the request's ``model`` field, so a test
only picks a model name (e.g. ``"fake-tools-no-usage"``) to get a scenario:

==============  ===============================================================
substring       effect
==============  ===============================================================
(none)          normal answer: ``expected_content(last user text)``
``tools``       one ``get_weather`` tool call instead of content
``no-usage``    never send usage (even if ``stream_options.include_usage``)
``length``      finish_reason ``"length"`` (Anthropic: ``"max_tokens"``)
``filtered``    finish_reason ``"content_filter"`` and empty content
``empty``       empty content, finish_reason ``"stop"``
``error-500``   the provider's 500 error body (also ``error-400``/``error-429``)
``slow``        sleep ``slow_seconds`` before answering (not ``slow-stream``)
``slow-stream`` ``SLOW_STREAM_TOKENS`` content chunks, ``chunk_delay`` apart
``cutoff``      stream 4 events (OpenAI: role + 3 content chunks), then drop
                the TCP connection; non-stream chat: hang up with no response
==============  ===============================================================

Misbehaving answers (too big, endless, stalled, gzip bombs, SSE without
delimiters, malformed shapes) are described in ``tests/fake_misbehaviour.py``;
their sizes and delays are ``FakeUpstream.misbehaving``.

Every request (any path, even 404s) is recorded in ``FakeUpstream.requests``
*before* it is answered, so tests can assert on what the gateway forwarded.
Token counts are fixed module constants so usage accounting can be asserted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fake_misbehaviour import MisbehaviourSettings, misbehave, pick

JSONDict = dict[str, Any]

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7
CACHED_TOKENS = 2
EMBEDDING_DIMENSIONS = 8
SLOW_STREAM_TOKENS = 200
CUTOFF_CONTENT_CHUNKS = 3
TOOL_CALL_ID = "call_fake1"
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = '{"city": "Paris"}'
MODEL_ID = "fake-model"

# status -> (message, type, param, code), worded as OpenAI words them.
OPENAI_ERRORS: dict[int, tuple[str, str, str | None, str | None]] = {
    500: ("The server had an error while processing your request.", "server_error", None, None),
    400: (
        "Invalid value for 'temperature'.",
        "invalid_request_error",
        "temperature",
        "invalid_value",
    ),
    429: ("Rate limit reached for requests.", "requests", None, "rate_limit_exceeded"),
}
# status -> (type, message) for Anthropic's {"type": "error", "error": {...}}.
ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    500: ("api_error", "Internal server error"),
    400: ("invalid_request_error", "Invalid request."),
    429: ("rate_limit_error", "Rate limit exceeded."),
}

_Handler = Callable[[web.Request, JSONDict, "_Behaviour"], Awaitable[web.StreamResponse]]


def expected_content(last_user_text: str) -> str:
    """The assistant content returned for a given last user message."""
    return "Hello! You said: " + last_user_text


def expected_completion_text(prompt: str) -> str:
    """The text the legacy ``/v1/completions`` endpoint returns for a prompt."""
    return " completed: " + prompt


def slow_stream_pieces() -> list[str]:
    """The content chunks of the ``slow-stream`` model: "tok0", " tok1", ..."""
    return [f"tok{i}" if i == 0 else f" tok{i}" for i in range(SLOW_STREAM_TOKENS)]


def expected_embedding(text: str) -> list[float]:
    """Deterministic embedding for ``text``.

    Values are multiples of 1/128, which float32 represents exactly, so the
    float and base64 (float32) encodings decode to identical Python floats.
    """
    digest = hashlib.sha256(text.encode()).digest()
    return [(b - 128) / 128 for b in digest[:EMBEDDING_DIMENSIONS]]


def openai_usage() -> JSONDict:
    """The usage object attached to every chat/completions answer."""
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _dumps(obj: Any) -> str:
    # Compact separators, as OpenAI's own payloads use.
    return json.dumps(obj, separators=(",", ":"))


def _pieces(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _last_user_text(messages: Any) -> str:
    """Text of the last user message: string content, or its text parts joined."""
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
                return "".join(str(p.get("text", "")) for p in parts)
            return content if isinstance(content, str) else ""
    return ""


@dataclass
class ReceivedRequest:
    """One request as the fake saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass(frozen=True)
class _Behaviour:
    """Scenario flags decoded from the request's ``model`` string."""

    model: str
    error_status: int | None
    slow: bool
    slow_stream: bool
    tools: bool
    no_usage: bool
    cutoff: bool
    blank: bool
    finish_reason: str
    misbehaviour: str | None = None

    @classmethod
    def from_body(cls, body: JSONDict) -> _Behaviour:
        model = str(body.get("model", MODEL_ID))
        finish = "tool_calls" if "tools" in model else "stop"
        finish = "length" if "length" in model else finish
        finish = "content_filter" if "filtered" in model else finish
        return cls(
            model=model,
            error_status=next((s for s in OPENAI_ERRORS if f"error-{s}" in model), None),
            # "slow-stream" contains "slow" but must not delay the headers.
            slow="slow" in model.replace("slow-stream", ""),
            slow_stream="slow-stream" in model,
            tools="tools" in model,
            no_usage="no-usage" in model,
            cutoff="cutoff" in model,
            blank="filtered" in model or "empty" in model,
            finish_reason=finish,
            misbehaviour=pick(model),
        )

    def pieces(self, user_text: str) -> list[str]:
        """The answer content split into stream chunks; joined, the full content."""
        if self.slow_stream:
            return slow_stream_pieces()
        return _pieces("" if self.blank else expected_content(user_text))


class FakeUpstream:
    """Real local HTTP server imitating OpenAI (and Anthropic Messages)."""

    def __init__(self) -> None:
        self.slow_seconds = 2.0
        self.chunk_delay = 0.05
        self.requests: list[ReceivedRequest] = []
        # Bumped when a stream write fails because the peer went away, so
        # client-disconnect tests can check the gateway hung up upstream too.
        self.disconnects = 0
        self.misbehaving = MisbehaviourSettings()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.anthropic_base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Root URL; Anthropic clients append ``/v1/messages`` themselves."""
        if self._port is None:
            raise RuntimeError("FakeUpstream.start() has not been awaited")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._route(self._chat))
        app.router.add_post("/v1/completions", self._route(self._completions))
        app.router.add_post("/v1/embeddings", self._route(self._embeddings))
        app.router.add_get("/v1/models", self._route(self._models))
        app.router.add_post("/v1/messages", self._route(self._messages, anthropic=True))
        app.router.add_post(
            "/v1/messages/count_tokens", self._route(self._count_tokens, anthropic=True)
        )
        app.router.add_post("/v1/responses", self._route(self._responses))
        # Catch-all so requests to wrong paths are still recorded (then 404).
        app.router.add_route("*", "/{tail:.*}", self._route(self._not_found))
        # Short shutdown timeout so close() does not wait on slow handlers.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------

    def _route(
        self, handler: _Handler, anthropic: bool = False
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a handler: record the request, then apply slow/error scenarios."""

        async def endpoint(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.requests.append(ReceivedRequest(request.method, request.path, headers, body))
            b = _Behaviour.from_body(body or {})
            if b.slow:
                await asyncio.sleep(self.slow_seconds)
            if b.error_status is None:
                return await handler(request, body or {}, b)
            if anthropic:
                kind, message = ANTHROPIC_ERRORS[b.error_status]
                error = {"type": "error", "error": {"type": kind, "message": message}}
            else:
                message, kind, param, code = OPENAI_ERRORS[b.error_status]
                error = {"error": {"message": message, "type": kind, "param": param, "code": code}}
            return web.json_response(error, status=b.error_status, dumps=_dumps)

        return endpoint

    async def _sse(
        self, request: web.Request, b: _Behaviour, events: list[tuple[str | None, Any]]
    ) -> web.StreamResponse:
        """Write ``(event name or None, data)`` pairs as SSE, one HTTP chunk each.

        Also plays the ``slow-stream`` (delay between events) and ``cutoff``
        (drop the socket after the role + 3 content events) scenarios.
        """
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        try:
            for i, (name, data) in enumerate(events):
                prefix = f"event: {name}\n" if name else ""
                payload = data if isinstance(data, str) else _dumps(data)
                await resp.write(f"{prefix}data: {payload}\n\n".encode())
                if b.cutoff and i >= CUTOFF_CONTENT_CHUNKS:
                    # Close mid-body: no finish event, no terminating zero-length
                    # chunk, no [DONE].  aiohttp then swallows the ConnectionError
                    # its own write_eof() hits.
                    assert request.transport is not None
                    request.transport.close()
                    break
                if b.slow_stream:
                    await asyncio.sleep(self.chunk_delay)
        except ConnectionResetError:
            self.disconnects += 1
        return resp

    async def _openai_stream(
        self,
        request: web.Request,
        body: JSONDict,
        b: _Behaviour,
        choices: list[JSONDict],
        envelope: JSONDict,
    ) -> web.StreamResponse:
        """One chunk per choice (the last being the finish), then usage and [DONE].

        As OpenAI does it: with ``include_usage`` every chunk carries
        ``"usage": null`` and an extra final chunk with ``"choices": []``
        carries the usage; without it no chunk has a ``usage`` key at all.
        """
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        with_usage = with_usage and not b.no_usage
        usage_field: JSONDict = {"usage": None} if with_usage else {}
        chunks: list[Any] = [{**envelope, "choices": [c], **usage_field} for c in choices]
        if with_usage:
            chunks.append({**envelope, "choices": [], "usage": openai_usage()})
        return await self._sse(request, b, [(None, c) for c in [*chunks, "[DONE]"]])

    # -- OpenAI endpoints ---------------------------------------------------

    async def _chat(
        self, request: web.Request, body: JSONDict, b: _Behaviour
    ) -> web.StreamResponse:
        if b.misbehaviour is not None:
            return await misbehave(request, body, b.misbehaviour, self.misbehaving)
        pieces = b.pieces(_last_user_text(body.get("messages")))
        content = "".join(pieces)
        envelope = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk" if body.get("stream") else "chat.completion",
            "created": int(time.time()),
            "model": b.model,
            "system_fingerprint": "fp_fake",
        }
        function = {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}
        tool_call = {"id": TOOL_CALL_ID, "type": "function", "function": function}
        if not body.get("stream"):
            if b.cutoff:
                # Non-stream cutoff: hang up before sending any response bytes.
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            message: JSONDict = {"role": "assistant", "content": content, "refusal": None}
            if b.tools:
                message.update(content=None, tool_calls=[tool_call])
            choice = {"index": 0, "message": message, "logprobs": None}
            result: JSONDict = {
                **envelope,
                "choices": [{**choice, "finish_reason": b.finish_reason}],
            }
            if not b.no_usage:
                result["usage"] = openai_usage()
            return web.json_response(result, dumps=_dumps)

        def choice_of(delta: JSONDict, finish: str | None = None) -> JSONDict:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        if b.tools:
            # The first chunk announces the call with empty arguments, as OpenAI does.
            announce = {**tool_call, "index": 0, "function": {**function, "arguments": ""}}
            deltas = [{"role": "assistant", "content": None, "tool_calls": [announce]}]
            deltas += [
                {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                for piece in _pieces(TOOL_ARGUMENTS)
            ]
        else:
            deltas = [{"role": "assistant", "content": ""}]
            deltas += [{"content": piece} for piece in pieces]
        choices = [choice_of(d) for d in deltas] + [choice_of({}, b.finish_reason)]
        return await self._openai_stream(request, body, b, choices, envelope)

    async def _completions(
        self, request: web.Request, body: JSONDict, b: _Behaviour
    ) -> web.StreamResponse:
        prompt = body.get("prompt", "")
        # A list prompt is a batch: one choice per prompt, like OpenAI.
        prompts = [str(p) for p in prompt] if isinstance(prompt, list) else [str(prompt)]
        texts = ["" if b.blank else expected_completion_text(p) for p in prompts]
        envelope = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": b.model,
            "system_fingerprint": "fp_fake",
        }

        def choice_of(index: int, text: str, finish: str | None) -> JSONDict:
            return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}

        if not body.get("stream"):
            choices = [choice_of(i, t, b.finish_reason) for i, t in enumerate(texts)]
            result: JSONDict = {**envelope, "choices": choices}
            if not b.no_usage:
                result["usage"] = openai_usage()
            return web.json_response(result, dumps=_dumps)
        choices = [choice_of(i, piece, None) for i, t in enumerate(texts) for piece in _pieces(t)]
        choices += [choice_of(i, "", b.finish_reason) for i in range(len(texts))]
        return await self._openai_stream(request, body, b, choices, envelope)

    async def _embeddings(
        self, request: web.Request, body: JSONDict, b: _Behaviour
    ) -> web.StreamResponse:
        raw = body.get("input", "")
        # Token-array inputs are hashed via their JSON form; still deterministic.
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        texts = [t if isinstance(t, str) else _dumps(t) for t in inputs]
        # The openai SDK asks for base64 by default and decodes little-endian float32.
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vector: Any = expected_embedding(text)
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(max(1, len(t.split())) for t in texts)  # one token per word
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        result = {"object": "list", "data": data, "model": b.model, "usage": usage}
        return web.json_response(result, dumps=_dumps)

    async def _models(self, request: web.Request, body: JSONDict, b: _Behaviour) -> web.Response:
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "fake"}
        return web.json_response({"object": "list", "data": [model]}, dumps=_dumps)

    async def _not_found(self, request: web.Request, body: JSONDict, b: _Behaviour) -> web.Response:
        error = {"message": f"Unknown path {request.path}", "type": "invalid_request_error"}
        payload = {"error": {**error, "param": None, "code": None}}
        return web.json_response(payload, status=404, dumps=_dumps)

    # -- Anthropic Messages API ---------------------------------------------

    async def _messages(
        self, request: web.Request, body: JSONDict, b: _Behaviour
    ) -> web.StreamResponse:
        pieces = b.pieces(_last_user_text(body.get("messages")))
        content = "".join(pieces)
        stop_reason = "max_tokens" if b.finish_reason == "length" else "end_turn"
        block: JSONDict = {"type": "text", "text": content}
        if b.tools:  # one get_weather call instead of text
            stop_reason = "tool_use"
            tool_id = f"toolu_fake{uuid.uuid4().hex[:16]}"
            block = {"type": "tool_use", "id": tool_id, "name": TOOL_NAME, "input": {}}
            block["input"] = json.loads(TOOL_ARGUMENTS)
        message = {
            "id": f"msg_fake{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": b.model,
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
        }
        if not body.get("stream"):
            return web.json_response(message, dumps=_dumps)

        def event(kind: str, **fields: Any) -> tuple[str, JSONDict]:
            return kind, {"type": kind, **fields}

        start_usage = {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        if b.tools:
            opened = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": p} for p in _pieces(TOOL_ARGUMENTS)
            ]
        else:
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in pieces]
        events: list[tuple[str | None, Any]] = [
            event("message_start", message=start),
            event("content_block_start", index=0, content_block=opened),
            *(event("content_block_delta", index=0, delta=d) for d in deltas),
            event("content_block_stop", index=0),
            event(
                "message_delta",
                delta={"stop_reason": stop_reason, "stop_sequence": None},
                usage={"output_tokens": COMPLETION_TOKENS},
            ),
            event("message_stop"),
        ]
        return await self._sse(request, b, events)

    async def _count_tokens(
        self, request: web.Request, body: JSONDict, b: _Behaviour
    ) -> web.StreamResponse:
        """``/v1/messages/count_tokens``: always ``PROMPT_TOKENS``, so a test can tell the
        upstream's count from the gateway's own estimate."""
        return web.json_response({"input_tokens": PROMPT_TOKENS}, dumps=_dumps)

    # -- OpenAI Responses API -----------------------------------------------

    async def _responses(
        self, request: web.Request, body: JSONDict, b: _Behaviour
    ) -> web.StreamResponse:
        """``/v1/responses``, whole or as its SSE events: the answer of ``_chat``
        (``tools``, ``no-usage``, ``length``/``filtered`` as ``incomplete``,
        ``cutoff`` after the 3rd text delta) in the Responses API's shapes."""
        import dataclasses

        raw = body.get("input")
        items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
        messages = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "role" in item:  # input_text parts read as text
                content = item.get("content")
                if isinstance(content, list):
                    parts = [p for p in content if isinstance(p, dict) and "text" in p]
                    content = [{**p, "type": "text"} for p in parts]
                messages.append({"role": item["role"], "content": content})
        pieces = b.pieces(_last_user_text(messages))
        reason = {"length": "max_output_tokens", "content_filter": "content_filter"}
        incomplete = reason.get(b.finish_reason)
        key = uuid.uuid4().hex
        if b.tools:
            item_id, deltas = f"fc_fake{key}", _pieces(TOOL_ARGUMENTS)
            done: JSONDict = {"type": "function_call", "id": item_id, "call_id": TOOL_CALL_ID}
            done.update(name=TOOL_NAME, arguments=TOOL_ARGUMENTS, status="completed")
            added = {**done, "arguments": "", "status": "in_progress"}
        else:
            item_id, deltas = f"msg_fake{key}", pieces
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            added = {"type": "message", "id": item_id, "status": "in_progress"}
            added.update(role="assistant", content=[])
            done = {**added, "status": "incomplete" if incomplete else "completed"}
            done["content"] = [{**part, "text": "".join(pieces)}]
        usage = {
            "input_tokens": PROMPT_TOKENS,
            "input_tokens_details": {"cached_tokens": CACHED_TOKENS, "cache_write_tokens": 0},
            "output_tokens": COMPLETION_TOKENS,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        }
        response: JSONDict = {
            "id": f"resp_fake{key}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed",
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"),
            "model": b.model,
            "output": [done],
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "store": body.get("store", True),
            "temperature": 1.0,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_p": 1.0,
            "usage": None if b.no_usage else usage,
        }
        if not body.get("stream"):
            if b.cutoff:  # hang up before sending any response bytes
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return web.json_response(response, dumps=_dumps)

        def event(kind: str, **fields: Any) -> tuple[str, JSONDict]:
            return kind, {"type": kind, **fields}

        place = {"item_id": item_id, "output_index": 0}
        at = {**place, "content_index": 0}
        start = {**response, "status": "in_progress", "output": [], "usage": None}
        start["incomplete_details"] = None
        events = [
            event("response.created", response=start),
            event("response.in_progress", response=start),
            event("response.output_item.added", output_index=0, item=added),
        ]
        if b.tools:
            events += [
                *(
                    event("response.function_call_arguments.delta", **place, delta=d)
                    for d in deltas
                ),
                event(
                    "response.function_call_arguments.done",
                    **place,
                    name=TOOL_NAME,
                    arguments=TOOL_ARGUMENTS,
                ),
            ]
        else:
            text = done["content"][0]
            events += [
                event("response.content_part.added", **at, part=part),
                *(event("response.output_text.delta", **at, delta=d, logprobs=[]) for d in deltas),
                event("response.output_text.done", **at, text=text["text"], logprobs=[]),
                event("response.content_part.done", **at, part=text),
            ]
        events.append(event("response.output_item.done", output_index=0, item=done))
        events.append(event(f"response.{response['status']}", response=response))
        numbered: list[tuple[str | None, Any]] = [
            (kind, {**data, "sequence_number": i}) for i, (kind, data) in enumerate(events)
        ]
        if not b.cutoff:
            return await self._sse(request, b, numbered)
        # The head, the text part and 3 deltas, then the connection drops.
        cut = 4 + CUTOFF_CONTENT_CHUNKS
        resp = await self._sse(request, dataclasses.replace(b, cutoff=False), numbered[:cut])
        assert request.transport is not None
        request.transport.close()
        return resp
