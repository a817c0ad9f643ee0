"""Export jobs from `exports:` in config: incremental runs, thresholds, failures, one runner
across replicas, and the webhook. Real stores; the clock is the store's own timestamps."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporters.jobs import run_job
from gateway.config import Config, parse_config
from gateway.errors import ConfigError
from gateway.records.feedback import Feedback
from gateway.store import open_store
from gateway.store.base import Store


def job_config(database_url: str, out: Path, **job: Any) -> Config:
    settings = {"format": "openai", "out": str(out), "filters": {"outcomes": ["accepted"]}}
    return parse_config(
        {"storage": {"url": database_url}, "exports": {"approved": {**settings, **job}}}
    )


async def give_feedback(store: Store, interaction_id: str, **fields: Any) -> None:
    event = Feedback(str(uuid.uuid4()), interaction_id, datetime.now(UTC), **fields)
    await store.insert_feedback([event])


async def test_incremental_runs_export_what_became_eligible_since(
    store: Store, seeded: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    config = job_config(database_url, tmp_path)
    first = await run_job(store, config, "approved")
    assert first is not None and first["status"] == "succeeded"
    assert first["rows"] == 2  # `accepted` and `personal`
    assert first["manifest"]["changed_since"] is None

    # An old answer rated after the first run is exported by the next one, and only it.
    await give_feedback(store, seeded["session_turn_1"], outcome="accepted")
    second = await run_job(store, config, "approved")
    assert second is not None and second["rows"] == 1
    assert second["manifest"]["changed_since"] == first["watermark"].isoformat()
    (record,) = [r for r in _records(second) if r]
    assert record["messages"][-1]["content"] == "A lumbar vertebra."

    third = await run_job(store, config, "approved")
    assert third is not None and third["rows"] == 0
    everything = await run_job(store, config, "approved", full=True)
    assert everything is not None and everything["rows"] == 3
    runs = await store.export_runs(job="approved")
    assert [r["status"] for r in runs] == ["succeeded"] * 4


async def test_min_new_examples_holds_the_job_back_then_releases_it(
    store: Store, seeded: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = job_config(database_url, out, min_new_examples=2)
    assert (await run_job(store, config, "approved"))["status"] == "succeeded"  # type: ignore[index]
    await give_feedback(store, seeded["session_turn_1"], outcome="accepted")
    held = await run_job(store, config, "approved")
    assert held is not None and held["status"] == "skipped" and held["rows"] == 1
    assert "fewer than min_new_examples (2)" in held["error"]
    assert len(list(out.iterdir())) == 1  # the first run's folder only
    await give_feedback(store, seeded["tool_call"], outcome="accepted")
    released = await run_job(store, config, "approved")
    assert released is not None and released["status"] == "succeeded" and released["rows"] == 2


async def test_a_failed_run_keeps_the_watermark(
    store: Store, seeded: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    config = job_config(database_url, tmp_path / "out")
    first = await run_job(store, config, "approved")
    assert first is not None and first["status"] == "succeeded"
    await give_feedback(store, seeded["session_turn_1"], outcome="accepted")

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the job wants a folder")
    failed = await run_job(store, job_config(database_url, blocked), "approved")
    assert failed is not None and failed["status"] == "failed" and failed["error"]

    retried = await run_job(store, config, "approved")
    assert retried is not None and retried["status"] == "succeeded"
    assert retried["rows"] == 1  # the feedback given before the failed run is not lost
    assert retried["manifest"]["changed_since"] == first["watermark"].isoformat()


async def test_two_replicas_run_a_scheduled_firing_once(postgres_url: str, tmp_path: Path) -> None:
    stores = [await open_store(postgres_url) for _ in range(2)]
    try:
        await stores[0].migrate()
        from tests.exporters.seed import seed

        await seed(stores[0])
        config = job_config(postgres_url, tmp_path)
        firing = datetime.now(UTC) - timedelta(seconds=1)
        results = await asyncio.gather(
            *(run_job(s, config, "approved", scheduled_for=firing) for s in stores)
        )
        assert sorted(r is None for r in results) == [False, True]
        assert len(await stores[0].export_runs(job="approved")) == 1
    finally:
        for s in stores:
            await s.close()


async def test_webhook_is_called_and_retried(
    store: Store, seeded: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=503 if len(received) == 1 else 204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        config = job_config(
            database_url, tmp_path, webhook={"url": f"http://127.0.0.1:{port}/hook"}
        )
        run = await run_job(store, config, "approved")
    finally:
        await runner.cleanup()
    assert run is not None
    assert len(received) == 2  # a 503, then delivered
    assert received[1]["event"] == "export.finished"
    assert received[1]["id"] == run["id"] and received[1]["rows"] == 2
    assert received[1]["manifest"]["counts"]["records_written"] == 2


async def test_unknown_job_is_named(store: Store, database_url: str, tmp_path: Path) -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="no export job named 'nightly'"):
        await run_job(store, job_config(database_url, tmp_path), "nightly")


def _records(run: dict[str, Any]) -> list[dict[str, Any]]:
    import orjson

    out = Path(run["out_dir"])
    return [
        orjson.loads(line)
        for name in run["files"]
        if name.endswith(".jsonl")
        for line in (out / name).read_bytes().splitlines()
    ]


async def test_a_job_with_two_jobs_writes_what_one_writes(
    store: Store, seeded: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    one = await run_job(store, job_config(database_url, tmp_path / "one"), "approved")
    config = job_config(database_url, tmp_path / "two", jobs=2)
    two = await run_job(store, config, "approved", full=True)  # not only what came since
    assert one is not None and two is not None and two["status"] == "succeeded"
    assert _records(two) == _records(one) and one["rows"] == 2
    assert two["manifest"]["redactions"] == one["manifest"]["redactions"]
    with pytest.raises(ConfigError, match=r"exports\.approved\.jobs"):
        job_config(database_url, tmp_path, jobs=0)
