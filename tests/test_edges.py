"""Request bodies at their edges (issue 13): no in-flight slot for a client that has not
authenticated, a deadline on reading a body (408), and aiohttp's own body and parser errors."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from typing import Any

import openai
import orjson
import pytest

from gateway.appkeys import IN_FLIGHT
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import feedback_config
from tests.harness import GatewayHarness
from tests.raw_http import connect, head, read_answer, send

KEYS = [{"name": "alice", "key": "fw-alice", "scopes": ["inference", "feedback"]}]
MESSAGES = [{"role": "user", "content": "hi"}]
# What a trickling client announces, and the few bytes of it that it ever sends.
ANNOUNCED = 1_000
PARTIAL_BODY = b'{"interaction_id": "'


async def _gateway(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    database_url: str,
    max_in_flight: int,
    body_read_timeout: float = 60,
) -> GatewayHarness:
    server = {"max_in_flight": max_in_flight, "body_read_timeout": body_read_timeout}
    config = feedback_config(upstream, database_url, server=server, auth={"keys": KEYS})
    return await make_gateway(config)


async def _trickle(gateway: GatewayHarness, path: str, **headers: str) -> Any:
    """A connection that sends its headers and the start of a body, then nothing more."""
    reader, writer = await connect(gateway.base_url)
    announce = {"Content-Type": "application/json", "Content-Length": str(ANNOUNCED), **headers}
    writer.write(head("POST", path, announce) + PARTIAL_BODY)
    await writer.drain()
    return reader, writer


async def test_trickling_unauthenticated_bodies_take_no_in_flight_slot(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    """16 keyless `POST /v1/feedback` that never finish their body used to fill every slot,
    and every keyed request got 503 while they were held. They have a pool of their own now
    (8 slots here): the first 8 are held open, the rest turned away at once."""
    gateway = await _gateway(make_gateway, upstream, sqlite_url, max_in_flight=4)
    trickles = [await _trickle(gateway, "/v1/feedback") for _ in range(16)]
    await asyncio.sleep(0.2)  # their handlers are now waiting on the body
    try:
        client = gateway.client(api_key="fw-alice")
        for _ in range(8):
            completion = await client.chat.completions.create(model="fake-chat", messages=MESSAGES)
            assert completion.choices[0].message.content
        limit = gateway.app[IN_FLIGHT]
        assert (limit.tokens_limit, limit.tokens_in_flight, limit.rejected) == (8, 8, 8)
        answers = [await read_answer(reader) for reader, _ in trickles[8:]]
        assert {answer.status for answer in answers} == {503}
        assert all(not reader.at_eof() for reader, _ in trickles[:8])  # still held open
    finally:
        for _, writer in trickles:
            writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_408_and_frees_its_slot(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    sqlite_url: str,
) -> None:
    gateway = await _gateway(
        make_gateway, upstream, sqlite_url, max_in_flight=1, body_read_timeout=0.5
    )
    client = gateway.client(api_key="fw-alice")
    # An authenticated trickle holds the only slot, until the deadline lets it go.
    reader, writer = await _trickle(
        gateway, "/v1/chat/completions", Authorization="Bearer fw-alice"
    )
    await asyncio.sleep(0.1)
    with pytest.raises(openai.InternalServerError) as overloaded:
        await client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    assert overloaded.value.status_code == 503
    answer = await read_answer(reader)
    writer.close()
    assert answer.status == 408
    assert answer.json()["error"] == {
        "message": "The request body did not arrive within 0.5 seconds.",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_timeout",
    }
    row = await gateway.row(answer.headers["flywheel-interaction-id"])
    assert (row["status"], row["http_status"], row["api_key_name"]) == ("error", 408, "alice")
    completion = await client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    assert completion.choices[0].message.content
    # Unauthenticated bodies get the same deadline.
    reader, writer = await _trickle(gateway, "/v1/feedback")
    answer = await read_answer(reader)
    writer.close()
    assert (answer.status, answer.json()["error"]["code"]) == (408, "request_timeout")


@pytest.mark.parametrize(
    ("framing", "body", "words"),
    [
        ({"Content-Encoding": "gzip"}, b"not gzip at all", "Can not decode content-encoding"),
        ({"Content-Encoding": "gzip"}, gzip.compress(b"{nope"), "could not parse the JSON"),
        # orjson reads it, but could write it neither upstream nor into the store.
        ({}, b'{"model": "fake-chat", "x": ' + b"[" * 300 + b"]" * 300 + b"}", "nested deeper"),
    ],
)
async def test_a_body_that_cannot_be_read_is_400_in_openais_shape(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    sqlite_url: str,
    framing: dict[str, str],
    body: bytes,
    words: str,
) -> None:
    gateway = await _gateway(make_gateway, upstream, sqlite_url, max_in_flight=4)
    headers = {
        "Authorization": "Bearer fw-alice",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **framing,
    }
    answer = await send(gateway.base_url, head("POST", "/v1/chat/completions", headers) + body)
    assert answer.status == 400
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", None)
    assert words in error["message"]
    row = await gateway.row(answer.headers["flywheel-interaction-id"])
    assert (row["status"], row["http_status"]) == ("error", 400)


@pytest.mark.parametrize(
    "raw",
    [
        head("GET", "/v1/models", {f"X-Header-{n}": "x" for n in range(200)}),
        head("POST", "/v1/feedback", {"Content-Length": "abc"}),
        head("POST", "/v1/feedback", {"Content-Length": "5", "Transfer-Encoding": "chunked"}),
        head("POST", "/v1/feedback", {"Transfer-Encoding": "chunked"}) + b"zz\r\nabc\r\n0\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        # A body that fails to decode only at its end fails in the parser, too.
        head("POST", "/v1/feedback", {"Content-Encoding": "deflate", "Content-Length": "3"})
        + b"\x00\x01\x02",
    ],
)
async def test_requests_aiohttps_parser_refuses_are_400_not_500(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str, raw: bytes
) -> None:
    """aiohttp answers these itself, in text/plain, before the application (and so any
    middleware) sees a request: its `RequestHandler` offers no hook to shape them."""
    gateway = await _gateway(make_gateway, upstream, sqlite_url, max_in_flight=4)
    answer = await send(gateway.base_url, raw)
    assert answer.status == 400
    assert gateway.app[IN_FLIGHT].in_flight == 0


async def test_what_reaches_the_app_is_answered_in_openais_shape(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    gateway = await _gateway(make_gateway, upstream, sqlite_url, max_in_flight=4)
    alice = {"Authorization": "Bearer fw-alice", "Connection": "close"}
    cases = [
        (head("GET", "/v1/nowhere", alice), 404),
        (head("DELETE", "/v1/chat/completions", alice), 405),
        (head("POST", "/v1/chat/completions", {**alice, "Content-Length": "99999999999"}), 413),
    ]
    for raw, status in cases:
        answer = await send(gateway.base_url, raw)
        assert answer.status == status
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    body = orjson.dumps({"model": "fake-chat", "messages": MESSAGES})
    headers = {**alice, "Content-Type": "text/plain", "Content-Length": str(len(body))}
    answer = await send(gateway.base_url, head("POST", "/v1/chat/completions", headers) + body)
    assert (answer.status, answer.json()["error"]["code"]) == (415, "unsupported_media_type")
