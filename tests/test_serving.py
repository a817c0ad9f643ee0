"""`flywheel serve` as operators run it: SIGTERM under load, and workers that die."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream
from tests.serving import ServedGateway

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def serve_gateway(tmp_path: Path) -> Iterator[Any]:
    started: list[ServedGateway] = []

    def start(config: dict[str, Any]) -> ServedGateway:
        served = ServedGateway(tmp_path, config)
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()


def _stored_ids(folder: Path) -> list[str]:
    with sqlite3.connect(folder / "flywheel.db") as conn:
        return [row[0] for row in conn.execute("SELECT id FROM interactions")]


async def _chat(session: aiohttp.ClientSession, url: str, model: str) -> str:
    async with session.post(f"{url}/v1/chat/completions", json={**CHAT, "model": model}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["choices"][0]["message"]["content"]
        return r.headers[INTERACTION_HEADER]


async def test_sigterm_under_load_finishes_in_flight_requests_and_stores_them(
    serve_gateway: Any, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = base_config(upstream, f"sqlite:///{tmp_path}/flywheel.db", str(tmp_path / "spool"))
    config["server"]["workers"] = 1
    served = serve_gateway(config)
    await served.wait_ready()
    upstream.slow_seconds = 1.0
    async with aiohttp.ClientSession() as session:
        in_flight = [
            asyncio.create_task(_chat(session, served.base_url, "slow")) for _ in range(10)
        ]
        while len(upstream.requests) < 10:
            await asyncio.sleep(0.01)
        served.process.send_signal(signal.SIGTERM)  # all ten are waiting on the upstream
        answered = await asyncio.gather(*in_flight)
    assert await asyncio.to_thread(served.process.wait, 60) == 0
    assert sorted(_stored_ids(tmp_path)) == sorted(answered)


async def test_a_dead_worker_is_replaced_and_nothing_answered_is_lost(
    serve_gateway: Any, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = base_config(upstream, f"sqlite:///{tmp_path}/flywheel.db", str(tmp_path / "spool"))
    config["server"]["workers"] = 2
    served = serve_gateway(config)
    await served.wait_ready()
    for _ in range(100):
        if len(served.worker_pids()) == 2:
            break
        await asyncio.sleep(0.05)
    workers = served.worker_pids()
    assert len(workers) == 2

    answered = []
    async with aiohttp.ClientSession() as session:
        answered += [await _chat(session, served.base_url, "demo") for _ in range(20)]
    # kill -9 may lose rows still in memory (the documented batch window): let them land.
    for _ in range(200):
        if len(_stored_ids(tmp_path)) == len(answered):
            break
        await asyncio.sleep(0.05)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    for _ in range(200):
        now = served.worker_pids()
        if len(now) == 2 and victim not in now:
            break
        await asyncio.sleep(0.05)
    assert len(served.worker_pids()) == 2 and victim not in served.worker_pids()
    await served.wait_ready()
    async with aiohttp.ClientSession() as session:  # new connections: none to the dead worker
        answered += [await _chat(session, served.base_url, "demo") for _ in range(20)]

    assert await served.terminate() == 0
    stored = _stored_ids(tmp_path)
    assert set(answered) <= set(stored)
    assert len(stored) == len(set(stored))
