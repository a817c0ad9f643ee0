"""What an upstream sends back is bounded and never breaks the recording: answers too large or
too long, gzip bombs, endless and stalled streams, SSE without event ends, malformed shapes.

Each case runs through the real gateway in front of the misbehaving fake upstream
(tests/fake_misbehaviour.py) and checks what the client got and what row landed in the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError, UpstreamError
from gateway.providers.limits import Limits
from gateway.proxy import assembler
from gateway.proxy.assembler import ResponseAssembler
from gateway.proxy.exchange import DERIVATION_FAILED
from gateway.records.headers import INTERACTION_HEADER
from gateway.tokens import MAX_COUNTED_CHARS, count_completion, count_prompt, count_text
from tests.conftest import base_config
from tests.fake_misbehaviour import MALFORMED
from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness

MESSAGES = [{"role": "user", "content": "hi"}]
MODES = ["big-body", "gzip-bomb", "endless", "stall-stream", "no-delimiter", "long-tool-call"]
MODES += [f"malformed-{shape}" for shape in MALFORMED]
STREAMED = "Hello! You said: hi"  # what the malformed streams carry besides their broken event
KIB = 1024


def _config(upstream: FakeUpstream, database_url: str, **fake: Any) -> dict[str, Any]:
    """The test config, every misbehaviour a model of its own, `fake` overriding the provider."""
    config = base_config(upstream, database_url)
    config["providers"]["fake"].update(fake)
    config["models"].update({mode: {"provider": "fake", "model": f"fake-{mode}"} for mode in MODES})
    return config


async def _chat(
    gateway: GatewayHarness, model: str, stream: bool
) -> tuple[int, bytes, dict[str, Any]]:
    """Status and raw body the client got, and the row recorded for it."""
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}  # nothing hidden: bytes as sent
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.api_url}/chat/completions", json=body) as response,
    ):
        raw = await response.read()
        row = await gateway.row(response.headers[INTERACTION_HEADER])
        return response.status, raw, row


def _last_event(raw: bytes) -> dict[str, Any]:
    events = [e for e in raw.split(b"\n\n") if e.startswith(b"data: ")]
    parsed: dict[str, Any] = orjson.loads(events[-1].removeprefix(b"data: "))
    return parsed


def _streamed_content(row: dict[str, Any]) -> str:
    return str(row["response"]["choices"][0]["message"]["content"] or "")


# -- limits -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "limits", "key"),
    [
        ("big-body", {"max_response_bytes": 64 * KIB}, "max_response_bytes"),
        ("gzip-bomb", {"max_response_bytes": 256 * KIB}, "max_response_bytes"),
    ],
)
async def test_answer_over_a_limit_is_502_naming_provider_and_limit(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    sqlite_url: str,
    mode: str,
    limits: dict[str, int],
    key: str,
) -> None:
    upstream.misbehaving.body_bytes = 8 * 1024 * KIB  # inflated, for the bomb
    gateway = await make_gateway(_config(upstream, sqlite_url, **limits))
    status, raw, row = await _chat(gateway, mode, stream=False)
    assert status == 502
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "'fake'" in error["message"] and key in error["message"]
    assert (row["status"], row["http_status"], row["error_type"]) == (
        "error",
        502,
        "upstream_error",
    )
    assert row["error_message"] == error["message"]
    assert row["response"] is None


@pytest.mark.parametrize(
    ("mode", "limits", "key", "error_type"),
    [
        ("endless", {"max_stream_bytes": 256 * KIB}, "max_stream_bytes", "upstream_error"),
        ("endless", {"total_timeout": 0.5}, "total_timeout", "upstream_timeout"),
        ("gzip-bomb", {"max_stream_bytes": 256 * KIB}, "max_stream_bytes", "upstream_error"),
        ("no-delimiter", {"max_response_bytes": 64 * KIB}, "max_response_bytes", "upstream_error"),
        ("stall-stream", {"read_timeout": 0.5}, "read timeout", "upstream_timeout"),
    ],
    ids=["endless-bytes", "endless-time", "gzip-bomb", "no-delimiter", "stalled"],
)
async def test_stream_over_a_limit_ends_with_an_error_event(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    sqlite_url: str,
    mode: str,
    limits: dict[str, Any],
    key: str,
    error_type: str,
) -> None:
    upstream.misbehaving.body_bytes = 8 * 1024 * KIB
    upstream.misbehaving.chunk_delay = 0.01 if "total_timeout" in limits else 0.0
    gateway = await make_gateway(_config(upstream, sqlite_url, **limits))
    status, raw, row = await _chat(gateway, mode, stream=True)
    assert status == 200  # the headers were gone before the limit tripped
    error = _last_event(raw)["error"]
    assert error["type"] == error_type
    assert "'fake'" in error["message"] and key in error["message"]
    assert b"[DONE]" not in raw
    assert (row["status"], row["error_type"]) == ("error", error_type)
    assert row["error_message"] == error["message"]
    # What was streamed before the limit is kept, and no more than the limit allowed.
    assert len(orjson.dumps(row["response"])) < 1024 * KIB
    if mode in ("endless", "stall-stream"):
        assert _streamed_content(row).startswith("endless " if mode == "endless" else "Hello! ")


async def test_whole_answer_past_total_timeout_is_504(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    upstream.slow_seconds = 5
    config = _config(upstream, sqlite_url, read_timeout=10, total_timeout=0.5)
    gateway = await make_gateway(config)
    status, raw, row = await _chat(gateway, "slow", stream=False)
    assert status == 504
    assert "total_timeout" in orjson.loads(raw)["error"]["message"]
    assert (row["http_status"], row["error_type"]) == (504, "upstream_timeout")


@pytest.mark.parametrize("key", ["total_timeout", "max_response_bytes", "max_stream_bytes"])
def test_limits_must_be_positive(key: str) -> None:
    raw = {"providers": {"p": {"type": "demo", key: 0}}}
    with pytest.raises(ConfigError, match=rf"providers\.p\.{key} must be more than 0"):
        parse_config(raw)


async def _chunks(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _drain(limits: Limits, *pieces: bytes) -> bytes:
    return b"".join([c async for c in limits.stream(_chunks(*pieces), limits.deadline())])


@pytest.mark.parametrize("end", [b"\n\n", b"\r\r", b"\r\n\r\n"])
async def test_event_ends_split_across_reads_are_seen(end: bytes) -> None:
    limits = Limits("p", total_timeout=10, max_response_bytes=100, max_stream_bytes=10_000)
    event = b"data: " + b"x" * 80 + end  # under the limit; two of them are over it
    for cut in range(1, len(end)):
        assert await _drain(limits, *[event[:-cut], event[-cut:]] * 5) == event * 5
    with pytest.raises(UpstreamError, match="one SSE event exceeds max_response_bytes"):
        await _drain(limits, event.replace(end, b"\n"), event.replace(end, b"\n"))


async def test_long_streamed_tool_call_is_assembled_whole(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    upstream.misbehaving.body_bytes = 2 * 1024 * KIB  # 40,000 pieces: was quadratic
    gateway = await make_gateway(_config(upstream, sqlite_url))
    status, raw, row = await _chat(gateway, "long-tool-call", stream=True)
    assert status == 200 and raw.endswith(b"data: [DONE]\n\n")
    (call,) = row["response"]["choices"][0]["message"]["tool_calls"]
    assert call["id"] == "call_long"
    assert call["function"] == {
        "name": "write_file",
        "arguments": "x" * (2 * 1024 * KIB // 50 * 50),
    }
    assert row["status"] == "success"


def test_streamed_text_is_kept_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assembler, "MAX_KEPT_CHARS", 10)
    answer = ResponseAssembler("chat/completions")
    delta = {"choices": [{"index": 0, "delta": {"content": "abcd"}}]}
    events = b"data: " + orjson.dumps(delta) + b"\n\n"
    assert answer.feed(events * 4, now=0.0) == events * 4  # relayed whole
    assert answer.response()["choices"][0]["message"]["content"] == "abcdabcd"
    assert answer.truncated


# -- malformed shapes -------------------------------------------------------------------------
@pytest.fixture
async def misbehaving(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    """The gateway before the misbehaving fake, on SQLite and on PostgreSQL."""
    return await make_gateway(_config(upstream, database_url))


@pytest.mark.parametrize("shape", list(MALFORMED))
async def test_malformed_whole_answer_is_relayed_as_is_and_recorded(
    misbehaving: GatewayHarness, shape: str
) -> None:
    status, raw, row = await _chat(misbehaving, f"malformed-{shape}", stream=False)
    assert (status, raw) == (200, MALFORMED[shape])
    assert (row["status"], row["http_status"]) == ("success", 200)
    _assert_read_cleanly(row)


@pytest.mark.parametrize("shape", list(MALFORMED))
async def test_malformed_stream_event_is_relayed_as_is_and_the_rest_assembled(
    misbehaving: GatewayHarness, shape: str
) -> None:
    status, raw, row = await _chat(misbehaving, f"malformed-{shape}", stream=True)
    assert status == 200
    assert b"data: " + MALFORMED[shape] + b"\n\ndata: [DONE]\n\n" in raw
    assert raw.endswith(b"data: [DONE]\n\n")
    assert row["status"] == "success"
    assert _streamed_content(row).startswith(STREAMED)
    _assert_read_cleanly(row)


def _assert_read_cleanly(row: dict[str, Any]) -> None:
    assert DERIVATION_FAILED not in row["quality_flags"]  # read without the handler's safety net
    for column in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"):
        assert row[column] is None or 0 <= row[column] < 2**63


# -- token estimates --------------------------------------------------------------------------
def test_estimate_is_exact_under_the_bound_and_close_past_it() -> None:
    short = "The quick brown fox jumps over the lazy dog. " * 100
    assert count_prompt("completions", {"prompt": short}) == count_text(short)
    long = short * (4 * MAX_COUNTED_CHARS // len(short))
    estimate = count_prompt("completions", {"prompt": long})
    assert abs(estimate - count_text(long)) / count_text(long) < 0.01


def _parses(payload: bytes) -> bool:
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return True


@pytest.mark.parametrize("shape", [shape for shape, data in MALFORMED.items() if _parses(data)])
def test_estimates_read_any_json_shape(shape: str) -> None:
    body = orjson.loads(MALFORMED[shape])
    if isinstance(body, dict):
        assert count_completion(body) >= 0
        assert count_prompt("chat/completions", {"messages": body.get("choices")}) >= 0
    assert count_prompt("chat/completions", {"messages": [body, {"tool_calls": body}]}) >= 0
