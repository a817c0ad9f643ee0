"""Hot reload: a valid file swaps models, routes and keys at once; an invalid one is refused."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gateway.records.headers import VARIANT_HEADER
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness
from tests.serving import ServedGateway

MESSAGES = [{"role": "user", "content": "hi"}]


async def _reload(gateway: GatewayHarness) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.base_url}/admin/reload") as response,
    ):
        return response.status, await response.json()


async def _models(base_url: str) -> list[str]:
    async with (
        aiohttp.ClientSession() as session,  # a new connection each time: any worker may answer
        session.get(f"{base_url}/v1/models") as response,
    ):
        return [m["id"] for m in (await response.json())["data"]]


async def test_reload_applies_a_valid_file_and_rejects_an_invalid_one(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str, tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yaml"
    config = base_config(upstream, sqlite_url)
    gateway = await make_gateway(config, config_file)
    assert "exp" not in await _models(gateway.base_url)

    config["models"]["exp"] = {
        "variants": [{"name": "new-arm", "provider": "fake", "model": "fake-model", "weight": 1}]
    }
    config_file.write_text(yaml.safe_dump(config))
    status, body = await _reload(gateway)
    assert (status, body["status"]) == (200, "reloaded")
    assert "exp" in body["models"]
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="exp", messages=MESSAGES
    )
    assert raw.headers[VARIANT_HEADER] == "new-arm"

    config["models"]["broken"] = {"provider": "nowhere"}
    config_file.write_text(yaml.safe_dump(config))
    status, body = await _reload(gateway)
    assert status == 400
    assert body["error"]["code"] == "invalid_config"
    assert "models.broken.provider" in body["error"]["message"]
    assert "exp" in await _models(gateway.base_url)  # the running config is kept
    assert "broken" not in await _models(gateway.base_url)


async def test_sighup_reloads_every_worker(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = base_config(upstream, f"sqlite:///{tmp_path}/flywheel.db", str(tmp_path / "spool"))
    config["server"]["workers"] = 2
    served = ServedGateway(tmp_path, config)
    try:
        await served.wait_ready()
        config["models"]["added-later"] = {"provider": "demo", "model": "flywheel-demo-1"}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        served.process.send_signal(signal.SIGHUP)
        for _ in range(200):
            seen = [("added-later" in await _models(served.base_url)) for _ in range(10)]
            if all(seen):
                break
            await asyncio.sleep(0.05)
        assert all(seen), "some worker still serves the old config"
        assert await served.terminate() == 0
    finally:
        served.close()
