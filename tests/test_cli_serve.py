"""The quick start, for real: `flywheel serve` with the repo's config.yaml in a fresh folder."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import openai

from gateway.proxy.handlers import INTERACTION_HEADER
from tests.serving import ServedGateway

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
