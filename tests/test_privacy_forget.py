"""Forgetting a person through the real gateway, on SQLite and PostgreSQL: exactly their rows
and feedback go, the spool and its dead letters are purged, the export runs that held them are
named, later exports and late (spooled, replayed) rows cannot bring them back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from exporters.jobs import run_recorded
from exporters.run import ExportRequest
from exporters.selection import Filters
from gateway.appkeys import CONFIG, STORE
from gateway.config import parse_config
from gateway.ids import uuid7
from gateway.privacy.forgotten import ForgottenSubjects
from gateway.privacy.subjects import subject_hash
from gateway.recorder import Recorder
from gateway.records.interaction import Interaction
from gateway.spool import DEAD_LETTER_DIR, Spool
from gateway.store import open_store
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import post_feedback, request
from tests.harness import GatewayHarness
from tests.store.test_contract import _query

ADMIN = {"Authorization": "Bearer sk-admin-key"}
APP = {"Authorization": "Bearer sk-client"}
SALT = "pepper"


def _config(upstream: FakeUpstream, database_url: str, spool: Path) -> dict[str, Any]:
    config = base_config(upstream, database_url, spool_dir=str(spool))
    config["capture"]["flush_interval"] = 0
    config["anonymize"] = {"salt": SALT}
    config["auth"] = {
        "keys": [
            {"name": "app", "key": "sk-client", "scopes": ["inference", "feedback"]},
            {"name": "ops", "key": "sk-admin-key", "scopes": ["admin"]},
        ]
    }
    return config


async def _chat(gateway: GatewayHarness, user: str, session: str) -> tuple[str, str]:
    """One chat call: (interaction id, feedback token)."""
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat",
        messages=[{"role": "user", "content": f"I am {user}"}],
        extra_headers={"Flywheel-User": user, "Flywheel-Session": session},
    )
    return raw.headers["Flywheel-Interaction-Id"], raw.headers["Flywheel-Feedback-Token"]


async def _people(gateway: GatewayHarness) -> dict[str, list[str]]:
    """alice (3 interactions, two sessions, one with feedback) and bob (2, one with feedback)."""
    ids: dict[str, list[str]] = {"alice": [], "bob": []}
    for user, session in [("alice", "a1"), ("alice", "a1"), ("alice", "a2"), ("bob", "b1")]:
        ids[user].append((await _chat(gateway, user, session))[0])
    ids["bob"].append((await _chat(gateway, "bob", "b1"))[0])
    for interaction_id in ids["alice"] + ids["bob"]:
        await gateway.row(interaction_id)
    for interaction_id in (ids["alice"][0], ids["bob"][1]):
        answer = await post_feedback(gateway, {"interaction_id": interaction_id, "rating": 5}, APP)
        assert answer.status in (200, 201), answer.body
    return ids


async def _counts(url: str, user: str) -> tuple[int, int]:
    interactions = f"SELECT count(*) FROM interactions WHERE \"user\" = '{user}'"
    feedback = (
        "SELECT count(*) FROM feedback f JOIN interactions i ON i.id = f.interaction_id"
        f" WHERE i.\"user\" = '{user}'"
    )
    return (await _query(url, interactions, interactions))[0][0], (
        await _query(url, feedback, feedback)
    )[0][0]


def _row(user: str, created_at: datetime | None = None) -> Interaction:
    return Interaction(
        id=uuid7(),
        created_at=created_at or datetime.now(UTC),
        endpoint="chat/completions",
        user=user,
        request={"messages": [{"role": "user", "content": f"spooled for {user}"}]},
    )


async def test_forget_a_user_removes_exactly_them_and_names_the_runs(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    gateway = await make_gateway(_config(upstream, database_url, spool_dir))
    await _people(gateway)
    store, config = gateway.app[STORE], gateway.app[CONFIG]
    everyone = await run_recorded(store, config, ExportRequest("jsonl"), tmp_path / "out")
    only_bob = ExportRequest("jsonl", Filters(users=("bob",)))
    bobs = await run_recorded(store, config, only_bob, tmp_path / "out")
    assert subject_hash(SALT, "alice") in everyone["manifest"]["user_hashes"]
    assert bobs["manifest"]["user_hashes"] == [subject_hash(SALT, "bob")]
    # Rows of alice and carol waiting in a sealed segment and in the dead letters.
    spool = Spool(spool_dir)
    spool.append([_row("alice"), _row("carol")])
    spool.seal()
    spool.dead_letter([_row("alice")])

    answer = await request(gateway, "DELETE", "/admin/users/alice", headers=ADMIN)

    assert answer.status == 200, answer.body
    assert answer.body["deleted"] == {"interactions": 3, "feedback": 1}
    assert answer.body["spool"]["rows_removed"] == 2
    assert [run["id"] for run in answer.body["export_runs"]] == [everyone["id"]]
    assert answer.body["subject_hash"] == subject_hash(SALT, "alice")
    assert await _counts(database_url, "alice") == (0, 0)
    assert await _counts(database_url, "bob") == (2, 1)
    left = b"".join(p.read_bytes() for p in spool_dir.rglob("*") if p.is_file())
    assert b"alice" not in left and b"carol" in left
    later = await run_recorded(store, config, ExportRequest("jsonl"), tmp_path / "out")
    assert later["manifest"]["user_hashes"] == [subject_hash(SALT, "bob")]


async def test_forget_a_session_removes_that_session_only(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    gateway = await make_gateway(_config(upstream, database_url, tmp_path / "spool"))
    ids = await _people(gateway)
    answer = await request(gateway, "DELETE", "/admin/sessions/a1", headers=ADMIN)
    assert answer.status == 200, answer.body
    assert answer.body["deleted"] == {"interactions": 2, "feedback": 1}
    assert await _counts(database_url, "alice") == (1, 0)
    remaining = await _query(
        database_url,
        "SELECT id FROM interactions WHERE session = 'a2'",
        "SELECT id::text FROM interactions WHERE session = 'a2'",
    )
    assert [r[0] for r in remaining] == [ids["alice"][2]]


async def test_forget_needs_the_admin_scope(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    gateway = await make_gateway(_config(upstream, sqlite_url, tmp_path / "spool"))
    await _chat(gateway, "alice", "a1")
    answer = await request(
        gateway, "DELETE", "/admin/users/alice", headers={"Authorization": "Bearer sk-client"}
    )
    assert answer.status == 403


async def test_late_rows_of_a_forgotten_person_are_dropped_on_replay(
    database_url: str, tmp_path: Path
) -> None:
    """A row spooled elsewhere before the forget, replayed after it, is not stored; a row of
    the same person created after the forget is."""
    store = await open_store(database_url)
    try:
        await store.migrate()
        before = datetime.now(UTC) - timedelta(days=2)
        late, other, back = _row("alice", before), _row("carol", before), _row("alice")
        spool = Spool(tmp_path / "spool")
        spool.append([late, other])
        spool.seal()
        forgotten_at = datetime.now(UTC) - timedelta(days=1)
        await store.add_forgotten("user", subject_hash(SALT, "alice"), forgotten_at)
        forgotten = ForgottenSubjects(store, SALT)
        recorder = Recorder(store, Spool(tmp_path / "spool"), probe_interval=0.02)
        recorder.forgotten = forgotten
        recorder.start()
        recorder.record(back)
        for _ in range(500):
            if not recorder.spooling and not list((tmp_path / "spool").glob("*.jsonl")):
                break
            await asyncio.sleep(0.01)
        await recorder.close(drain_seconds=10)
        assert await store.get_interaction(late.id) is None
        assert await store.get_interaction(other.id) is not None
        assert await store.get_interaction(back.id) is not None
        assert forgotten.dropped == 1
    finally:
        await store.close()


def test_the_cli_forgets_and_lists_the_runs(
    upstream: FakeUpstream, sqlite_url: str, tmp_path: Path
) -> None:
    config = _config(upstream, sqlite_url, tmp_path / "spool")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    async def seed() -> str:
        async with open_store(sqlite_url) as store:
            await store.migrate()
            await store.insert_interactions([_row("dave"), _row("erin")])
            run = await run_recorded(
                store, parse_config(config), ExportRequest("jsonl"), tmp_path / "out"
            )
            return str(run["id"])

    run_id = asyncio.run(seed())
    env = {**os.environ, "FLYWHEEL_CONFIG": str(path)}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "forget", "--user", "dave", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["deleted"] == {"interactions": 1, "feedback": 0}
    assert [run["id"] for run in result["export_runs"]] == [run_id]

    async def audit() -> list[dict[str, Any]]:
        async with open_store(sqlite_url) as store:
            return await store.audit_entries("forget.user")

    entries = asyncio.run(audit())
    assert [(e["actor"][:4], e["target"]) for e in entries] == [
        ("cli:", subject_hash(SALT, "dave"))
    ]
    assert "dave" not in orjson.dumps(entries).decode()


@pytest.mark.parametrize("kind", ["user", "session"])
def test_a_torn_or_unreadable_spool_line_naming_the_person_goes_too(
    tmp_path: Path, kind: str
) -> None:
    from gateway.privacy.forget import lines_of

    unwanted = lines_of(kind, "alice")
    assert unwanted(orjson.dumps({kind: "alice"}) + b"\n")
    assert not unwanted(orjson.dumps({kind: "alicia", "note": "not alice"}) + b"\n")
    assert unwanted(b'{"' + kind.encode() + b'": "alice", "cut of')
    assert not unwanted(b"{broken")
    folder = tmp_path / "spool" / DEAD_LETTER_DIR
    folder.mkdir(parents=True)
    (folder / "1.undecodable").write_bytes(b'{"user": "alice", torn\n{"user": "bob", torn\n')
    result = Spool(tmp_path / "spool").purge(lines_of("user", "alice"))
    assert result.rows_removed == 1
    assert (folder / "1.undecodable").read_bytes() == b'{"user": "bob", torn\n'
