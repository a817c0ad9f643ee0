"""The quick start, for real: `flywheel serve` with the repo's config.yaml in a fresh folder."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest

from gateway.proxy.handlers import INTERACTION_HEADER

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "FLYWHEEL_CONFIG")}
    env.pop("FLYWHEEL_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, port, tmp_path
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            assert process.poll() is None, "flywheel serve exited during startup"
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("flywheel serve never became ready")


async def test_quick_start_answers_and_records_then_drains_on_sigterm(
    served: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, folder = served
    await _wait_ready(port, process)
    async with openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": "hello flywheel"}]
        )
    assert raw.parse().choices[0].message.content.endswith("You said: hello flywheel")
    interaction_id = raw.headers[INTERACTION_HEADER]

    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0

    with sqlite3.connect(folder / "flywheel.db") as conn:
        row = conn.execute(
            "SELECT status, requested_model, upstream_model, cost_usd FROM interactions"
            " WHERE id = ?",
            (interaction_id,),
        ).fetchone()
    assert row[:3] == ("success", "demo", "flywheel-demo-1")
    assert row[3] > 0  # priced by the example config's `pricing` override
