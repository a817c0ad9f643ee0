"""The quick start, for real: `flywheel serve` with the repo's config.yaml in a fresh folder."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from gateway.records.headers import INTERACTION_HEADER
from tests.serving import ServedGateway

pytestmark = pytest.mark.sdk  # rerun with each older openai major by `make test-clients`

REPO = Path(__file__).resolve().parent.parent


async def test_quick_start_answers_and_records_then_drains_on_sigterm(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    served = ServedGateway(tmp_path)  # no OPENAI_API_KEY, no FLYWHEEL_* variables
    try:
        await served.wait_ready()
        async with openai.AsyncOpenAI(
            base_url=f"{served.base_url}/v1", api_key="unused", max_retries=0
        ) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="demo", messages=[{"role": "user", "content": "hello flywheel"}]
            )
        assert raw.parse().choices[0].message.content.endswith("You said: hello flywheel")
        interaction_id = raw.headers[INTERACTION_HEADER]
        assert await served.terminate() == 0
    finally:
        served.close()

    with sqlite3.connect(tmp_path / "flywheel.db") as conn:
        row = conn.execute(
            "SELECT status, requested_model, upstream_model, cost_usd FROM interactions"
            " WHERE id = ?",
            (interaction_id,),
        ).fetchone()
    assert row[:3] == ("success", "demo", "flywheel-demo-1")
    assert row[3] > 0  # priced by the example config's `pricing` override


def test_open_gateway_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "auth.keys is empty" in result.stderr and "127.0.0.1" in result.stderr
    assert not (tmp_path / "flywheel.db").exists()  # stopped before opening anything
