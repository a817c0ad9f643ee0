"""The export API through the real gateway: preview, run a job and an ad-hoc export, list,
read the manifest, download a file. Runs happen in the gateway's export process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway.store.base import Store
from tests.conftest import base_config
from tests.exporters.conftest import export
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import request
from tests.harness import GatewayHarness

ADMIN = {"Authorization": "Bearer fw-ops-key"}


def admin_config(upstream: FakeUpstream, database_url: str, tmp_path: Path) -> dict[str, Any]:
    config = base_config(upstream, database_url)
    config["auth"] = {"keys": [{"name": "ops", "key": "fw-ops-key", "scopes": ["admin"]}]}
    config["storage"]["exports_dir"] = str(tmp_path / "adhoc")
    config["exports"] = {
        "approved": {
            "format": "openai",
            "out": str(tmp_path / "jobs"),
            "filters": {"outcomes": ["accepted", "modified"]},
        }
    }
    return config


async def finished(gateway: GatewayHarness, run_id: str) -> dict[str, Any]:
    for _ in range(600):
        answer = await request(gateway, "GET", f"/admin/exports/{run_id}", headers=ADMIN)
        if answer.status == 200 and answer.body["status"] not in ("running",):
            return answer.body
        await asyncio.sleep(0.05)
    raise AssertionError(f"export run {run_id} did not finish")


async def test_preview_run_list_and_download(
    store: Store,
    seeded: dict[str, str],
    database_url: str,
    upstream: FakeUpstream,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
) -> None:
    gateway = await make_gateway(admin_config(upstream, database_url, tmp_path))

    preview = await request(
        gateway, "GET", "/admin/exports/preview?format=openai&min_rating=5", headers=ADMIN
    )
    assert preview.status == 200, preview.body
    real = await export(store, tmp_path / "real", "openai", min_rating=5)
    assert preview.body["counts"] == real.manifest["counts"]
    assert preview.body["files"] == []

    started = await request(gateway, "POST", "/admin/exports", {"job": "approved"}, ADMIN)
    assert started.status == 202
    run = await finished(gateway, started.body["id"])
    assert run["status"] == "succeeded" and run["job"] == "approved"
    assert run["manifest"]["counts"]["records_written"] == run["rows"] == 3
    # The run row carries its progress, as the console shows it while it runs.
    read = run["manifest"]["counts"]["interactions_read"]
    progress = run["progress"]
    assert progress["read"] == progress["total"] == read > 0
    assert progress["written"] == 3
    assert progress["dropped"] == sum(run["manifest"]["counts"]["dropped"].values())
    assert progress["eta_seconds"] == 0
    assert {"rate", "seconds", "updated_at"} <= progress.keys()

    adhoc = await request(
        gateway,
        "POST",
        "/admin/exports",
        {"format": "openai", "filters": {"models": "other"}},
        ADMIN,
    )
    adhoc_run = await finished(gateway, adhoc.body["id"])
    assert adhoc_run["rows"] == 1 and adhoc_run["out_dir"].startswith(str(tmp_path / "adhoc"))

    listing = await request(gateway, "GET", "/admin/exports?job=approved", headers=ADMIN)
    assert [r["id"] for r in listing.body["data"]] == [run["id"]]

    name = next(f for f in run["files"] if f.endswith(".jsonl"))
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{gateway.base_url}/admin/exports/{run['id']}/files/{name}", headers=ADMIN
        ) as got,
    ):
        assert got.status == 200
        body = b"".join([chunk async for chunk in got.content.iter_chunked(1024)])
    assert body == (Path(run["out_dir"]) / name).read_bytes()
    # Only the run's own files: no path from the URL reaches the disk.
    escape = f"/admin/exports/{run['id']}/files/..%2F..%2Fadhoc"
    refused = await request(gateway, "GET", escape, headers=ADMIN)
    assert refused.status == 404 and refused.body["error"]["param"] == "name"


async def test_bad_requests_get_clear_errors(
    store: Store,
    database_url: str,
    upstream: FakeUpstream,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
) -> None:
    gateway = await make_gateway(admin_config(upstream, database_url, tmp_path))
    for path, status, param in (
        ("/admin/exports/preview?format=parquet", 422, "format"),
        ("/admin/exports/preview?format=openai&colour=red", 422, "filters"),
        ("/admin/exports/preview?format=openai&min_rating=high", 422, "filters.min_rating"),
        ("/admin/exports/0193b1c2-0000-7000-8000-000000000000", 404, "id"),
        ("/admin/exports/not-a-run", 404, "id"),
    ):
        answer = await request(gateway, "GET", path, headers=ADMIN)
        assert answer.status == status, (path, answer.body)
        assert answer.body["error"]["param"] == param, path
    missing = await request(gateway, "POST", "/admin/exports", {"job": "nightly"}, ADMIN)
    assert missing.status == 404 and missing.body["error"]["param"] == "job"
    assert (await request(gateway, "GET", "/admin/exports")).status == 401
