"""Nothing a client or an upstream sends can stop the recording (issue 13's reproductions).

Each test sends the odd input through the real gateway, then ordinary traffic, and checks that
every answered request has its row, on SQLite and on PostgreSQL, and that the writer is alive.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.appkeys import RECORDER
from gateway.records.headers import INTERACTION_HEADER
from gateway.spool import DEAD_LETTER_DIR, Spool
from gateway.storable import REPLACED_FLAG
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness, start_gateway
from tests.serving import free_port
from tests.test_recorder import _interaction

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


class ScriptedUpstream:
    """A real local OpenAI-compatible server answering every chat call with `body`."""

    def __init__(self) -> None:
        self.body: Any = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> ScriptedUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        # json.dumps: orjson refuses some of the shapes this server exists to send.
        return web.Response(body=json.dumps(self.body).encode(), content_type="application/json")


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    async with ScriptedUpstream() as server:
        yield server


def _config(upstream: FakeUpstream, database_url: str, tmp_path: Path) -> dict[str, Any]:
    config = base_config(upstream, database_url, spool_dir=str(tmp_path / "spool"))
    config["capture"]["flush_interval"] = 0
    return config


async def _post(gateway: GatewayHarness, body: Any, headers: dict[str, str] | None = None) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.api_url}/chat/completions", json=body, headers=headers) as resp,
    ):
        await resp.read()
        return resp.headers[INTERACTION_HEADER]


async def _still_recording(gateway: GatewayHarness, count: int = 3) -> None:
    """Ordinary traffic after the odd input is still recorded, and /readyz says so."""
    for _ in range(count):
        row = await gateway.row(await _post(gateway, CHAT))
        assert row["status"] == "success"
    async with aiohttp.ClientSession() as session, session.get(f"{gateway.base_url}/readyz") as r:
        assert r.status == 200, await r.text()
    assert gateway.app[RECORDER].writer_restarts == 0


def _latin1_user_request(port: int) -> tuple[int, str]:
    # What Python's http.client sends for "José": the header's bytes in ISO-8859-1.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=orjson.dumps(CHAT),
            headers={"Content-Type": "application/json", "Flywheel-User": "José"},
        )
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader(INTERACTION_HEADER) or ""
    finally:
        conn.close()


async def test_a_latin1_header_is_recorded_as_meant_and_recording_goes_on(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    gateway = await make_gateway(_config(upstream, database_url, tmp_path))
    port = int(gateway.base_url.rsplit(":", 1)[1])
    status, interaction_id = await asyncio.to_thread(_latin1_user_request, port)
    assert status == 200
    assert (await gateway.row(interaction_id))["user"] == "José"
    await _still_recording(gateway)


@pytest.mark.parametrize(("model", "depth"), [("demo", 300), ("demo", 1000), ("fake-chat", 254)])
async def test_deeply_nested_json_gets_one_row_and_recording_goes_on(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    database_url: str,
    tmp_path: Path,
    model: str,
    depth: int,
) -> None:
    gateway = await make_gateway(_config(upstream, database_url, tmp_path))
    # Written by hand: json.dumps itself gives up before 1,000 levels.
    nested = '{"a":' * depth + '"bottom"' + "}" * depth
    body = json.dumps({**CHAT, "model": model})[:-1] + f', "metadata_deep": {nested}}}'
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.api_url}/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp,
    ):
        answer = await resp.json()
        interaction_id = resp.headers[INTERACTION_HEADER]
    assert resp.status == 400 and answer["error"]["type"] == "invalid_request_error"
    await gateway.row(interaction_id)
    await _still_recording(gateway)


# Shapes an upstream sent that broke capture once: each is answered and recorded.
ODD_ANSWERS = {
    "huge_usage": {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
        "usage": {"prompt_tokens": 2**64 - 1, "completion_tokens": 2**31, "total_tokens": 1},
    },
    "tool_calls_not_objects": {
        "id": "chatcmpl-2",
        "choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": ["x"]}}],
    },
    "tool_calls_false": {
        "id": "chatcmpl-3",
        "choices": [{"message": {"role": "assistant", "content": "x", "tool_calls": False}}],
    },
    "text_part_is_a_list": {
        "id": "chatcmpl-4",
        "choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": []}]}}],
    },
    "choices_not_a_list": {"id": "chatcmpl-5", "choices": {"0": "x"}},
    "usage_not_an_object": {"id": "chatcmpl-6", "choices": [], "usage": "lots"},
    "lone_surrogate": {
        "id": "chatcmpl-7",
        "choices": [{"message": {"role": "assistant", "content": "\ud800 broken"}}],
    },
}


@pytest.mark.parametrize("shape", sorted(ODD_ANSWERS))
async def test_odd_upstream_answers_are_recorded(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    scripted: ScriptedUpstream,
    database_url: str,
    tmp_path: Path,
    shape: str,
) -> None:
    config = _config(upstream, database_url, tmp_path)
    config["providers"]["scripted"] = {"type": "openai_compat", "base_url": scripted.base_url}
    config["models"]["odd"] = {"provider": "scripted", "model": "odd-model"}
    gateway = await make_gateway(config)
    scripted.body = ODD_ANSWERS[shape]
    interaction_id = await _post(gateway, {**CHAT, "model": "odd"})
    row = await gateway.row(interaction_id)
    assert row["http_status"] == 200
    if shape == "huge_usage":
        assert row["prompt_tokens"] is None and row["completion_tokens"] == 2**31
        assert "usage_out_of_range" in row["quality_flags"]
    if shape == "lone_surrogate":
        assert REPLACED_FLAG in row["quality_flags"]
        assert row["response"]["choices"][0]["message"]["content"] == "\\ud800 broken"
    await _still_recording(gateway)


async def test_a_row_the_store_refuses_goes_to_dead_letters_and_the_rest_are_written(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    """A value no repair can make acceptable (an id that is not a UUID, which PostgreSQL's uuid
    column refuses; SQLite gets a NOT NULL violation) is isolated from its batch."""
    gateway = await make_gateway(_config(upstream, database_url, tmp_path))
    recorder = gateway.app[RECORDER]
    good_ids = [await _post(gateway, CHAT) for _ in range(3)]
    await asyncio.gather(*(gateway.row(i) for i in good_ids))
    bad = _interaction()
    bad.id = "not-a-uuid" if database_url.startswith("postgres") else bad.id
    bad.endpoint = None  # type: ignore[assignment]  # NOT NULL in both engines
    batch = [_interaction(1), bad, _interaction(2)]
    for row in batch:
        recorder.record(row)
    for row in (batch[0], batch[2]):
        await gateway.row(row.id)
    assert recorder.dead_lettered == 1
    dead = list((tmp_path / "spool" / DEAD_LETTER_DIR).glob("*.jsonl"))
    assert len(dead) == 1 and b'"endpoint":null' in dead[0].read_bytes()
    await _still_recording(gateway)


async def test_replay_skips_a_poison_row_instead_of_stopping(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    """A spool left by an earlier run holds a refused row, an unreadable line and good rows:
    the good ones are stored, the others kept aside, and the spool is emptied."""
    spool = Spool(tmp_path / "spool")
    good = [_interaction(n) for n in range(4)]
    poison = _interaction(9)
    poison.endpoint = None  # type: ignore[assignment]
    spool.write([good[0], poison, good[1]])
    spool._current().write(b'{"id": "torn json\n')
    spool.write(good[2:])
    spool.close()

    gateway = await make_gateway(_config(upstream, database_url, tmp_path))
    for row in good:
        await gateway.row(row.id)
    recorder = gateway.app[RECORDER]
    for _ in range(200):
        if not list((tmp_path / "spool").glob("*.jsonl")):
            break
        await asyncio.sleep(0.05)
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    assert recorder.dead_lettered == 2
    kept = sorted(p.suffix for p in (tmp_path / "spool" / DEAD_LETTER_DIR).iterdir())
    assert kept == [".jsonl", ".undecodable"]
    await _still_recording(gateway)


async def test_a_dead_writer_fails_readyz_and_shutdown_spools_what_it_says(
    upstream: FakeUpstream, sqlite_url: str, tmp_path: Path
) -> None:
    """Rows still queued at shutdown, a surrogate among them, are in the spool afterwards."""
    config = _config(upstream, sqlite_url, tmp_path)
    config["server"]["shutdown_timeout"] = 0
    gateway = await start_gateway(config)
    try:
        recorder = gateway.app[RECORDER]
        rows = [_interaction(n) for n in range(5)]
        rows[2].user = "Jos\udce9"
        recorder._task.cancel()  # the writer is gone: nothing will drain the queue
        await asyncio.sleep(0.01)
        for row in rows:
            recorder.record(row)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{gateway.base_url}/readyz") as response,
        ):
            assert response.status == 503
            assert "recorder" in await response.json()
    finally:
        await gateway.stop()
    spooled = b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("*.jsonl"))
    for row in rows:
        assert row.id.encode() in spooled
    assert b"Jos\\\\xe9" in spooled


async def test_a_gateway_starts_and_answers_while_sqlite_is_locked_then_catches_up(
    upstream: FakeUpstream, sqlite_url: str, tmp_path: Path
) -> None:
    """A replacement worker started during an outage serves (rows wait in the spool), reports
    not ready, then migrates and stores everything once the lock is gone."""
    path = sqlite_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    config = _config(upstream, sqlite_url, tmp_path)
    gateway = await start_gateway(config)
    try:
        ids = [await _post(gateway, CHAT) for _ in range(3)]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{gateway.base_url}/readyz") as response,
        ):
            assert response.status == 503
        holder.execute("ROLLBACK")
        holder.close()
        for interaction_id in ids:
            assert (await gateway.row(interaction_id, wait=30))["status"] == "success"
        await _still_recording(gateway)
    finally:
        await gateway.stop()


async def test_a_gateway_starts_with_postgres_unreachable(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = _config(upstream, f"postgresql://flywheel@127.0.0.1:{free_port()}/none", tmp_path)
    gateway = await start_gateway(config)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{gateway.api_url}/chat/completions", json=CHAT) as answer:
                assert answer.status == 200
                interaction_id = answer.headers[INTERACTION_HEADER]
            async with session.get(f"{gateway.base_url}/readyz") as ready:
                assert ready.status == 503
                assert "schema not migrated" in (await ready.json())["store"]
        for _ in range(100):  # the row waits in the spool for the database
            if interaction_id.encode() in _spooled(tmp_path):
                break
            await asyncio.sleep(0.05)
        assert interaction_id.encode() in _spooled(tmp_path)
    finally:
        await gateway.stop()


def _spooled(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("*.jsonl"))
