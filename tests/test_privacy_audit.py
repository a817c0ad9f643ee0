"""The audit trail through the real gateway, on SQLite and PostgreSQL: each admin action is
recorded with who (the key's name), what and when, and read back through `GET /admin/audit`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.privacy.subjects import subject_hash
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import request
from tests.harness import GatewayHarness

OPS = {"Authorization": "Bearer sk-ops-key"}


def _config(upstream: FakeUpstream, database_url: str, tmp_path: Path) -> dict[str, Any]:
    config = base_config(upstream, database_url, spool_dir=str(tmp_path / "spool"))
    config["storage"]["exports_dir"] = str(tmp_path / "exports")
    config["anonymize"] = {"salt": "pepper"}
    config["auth"] = {
        "keys": [
            {"name": "app", "key": "sk-client", "scopes": ["inference"]},
            {"name": "ops", "key": "sk-ops-key", "scopes": ["admin"]},
        ]
    }
    return config


async def _finished(gateway: GatewayHarness, run_id: str) -> dict[str, Any]:
    for _ in range(600):
        answer = await request(gateway, "GET", f"/admin/exports/{run_id}", headers=OPS)
        if answer.status == 200 and answer.body["status"] != "running":
            return answer.body
        await asyncio.sleep(0.05)
    raise AssertionError(f"export run {run_id} did not finish")


async def test_each_admin_action_is_recorded_with_who_what_and_when(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    config = _config(upstream, database_url, tmp_path)
    gateway = await make_gateway(config, tmp_path / "config.yaml")
    await gateway.client().chat.completions.create(
        model="fake-chat",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"Flywheel-User": "ulla"},
    )

    started = await request(gateway, "POST", "/admin/exports", {"format": "jsonl"}, OPS)
    assert started.status == 202, started.body
    run = await _finished(gateway, started.body["id"])
    assert run["status"] == "succeeded", run
    download = await request(
        gateway, "GET", f"/admin/exports/{run['id']}/files/manifest.json", headers=OPS
    )
    assert download.status == 200
    assert (await request(gateway, "POST", "/admin/reload", headers=OPS)).status == 200
    forgot = await request(gateway, "DELETE", "/admin/users/ulla", headers=OPS)
    assert forgot.status == 200
    assert (await request(gateway, "GET", "/admin/interactions", headers=OPS)).status == 200

    answer = await request(gateway, "GET", "/admin/audit", headers=OPS)

    assert answer.status == 200, answer.body
    entries = answer.body["data"]
    assert [(e["actor"], e["action"], e["status"]) for e in entries] == [
        ("ops", "forget.user", 200),
        ("ops", "config.reload", 200),
        ("ops", "export.download", 200),
        ("ops", "export.start", 202),
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["export.start"]["target"] == run["id"]
    assert by_action["export.download"]["target"] == run["id"]
    assert by_action["export.download"]["detail"]["file"] == "manifest.json"
    assert by_action["forget.user"]["target"] == subject_hash("pepper", "ulla")
    assert by_action["forget.user"]["detail"]["export_runs"] == 1
    assert "ulla" not in str(entries)  # the trail never holds the forgotten id
    assert all(e["created_at"] for e in entries)


async def test_the_audit_listing_pages_and_filters(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    gateway = await make_gateway(_config(upstream, database_url, tmp_path))
    for user in ("u1", "u2", "u3"):
        assert (await request(gateway, "DELETE", f"/admin/users/{user}", headers=OPS)).status == 200
    await request(gateway, "DELETE", "/admin/sessions/s1", headers=OPS)

    first = await request(gateway, "GET", "/admin/audit?action=forget.user&limit=2", headers=OPS)
    assert first.status == 200
    assert len(first.body["data"]) == 2 and first.body["has_more"] is True
    cursor = first.body["next_cursor"]
    rest = await request(
        gateway, "GET", f"/admin/audit?action=forget.user&limit=2&cursor={cursor}", headers=OPS
    )
    targets = [e["target"] for e in first.body["data"] + rest.body["data"]]
    assert targets == [subject_hash("pepper", u) for u in ("u3", "u2", "u1")]
    assert rest.body["has_more"] is False

    bad = await request(gateway, "GET", "/admin/audit?cursor=nope", headers=OPS)
    assert bad.status == 422
    unknown = await request(gateway, "GET", "/admin/audit?who=ops", headers=OPS)
    assert unknown.status == 422
    denied = await request(
        gateway, "GET", "/admin/audit", headers={"Authorization": "Bearer sk-client"}
    )
    assert denied.status == 403


async def test_a_reload_by_signal_is_recorded_too(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    from gateway.appkeys import STORE
    from gateway.reload import reload_logged

    config = _config(upstream, sqlite_url, tmp_path)
    gateway = await make_gateway(config, tmp_path / "config.yaml")
    await reload_logged(gateway.app)  # what SIGHUP runs
    (tmp_path / "config.yaml").write_text("server: {nope: 1}\n")
    await reload_logged(gateway.app)
    entries = await gateway.app[STORE].audit_entries("config.reload")
    assert [(e["actor"], e["status"]) for e in entries] == [
        ("signal:SIGHUP", 400),
        ("signal:SIGHUP", 200),
    ]
