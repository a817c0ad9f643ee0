"""Fixtures that start real things: PostgreSQL, the fake upstream, and the gateway on loopback.

PostgreSQL comes from FLYWHEEL_TEST_DATABASE_URL when set, otherwise from a throwaway `pgserver`
instance for the whole run; every gateway gets a fresh database of its own.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.store import Store, open_store
from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness, start_gateway, with_database


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("FLYWHEEL_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    # Not under pytest's tmp_path: pytest deletes all but the newest three of its temp folders,
    # so a second pytest run started meanwhile would delete this server's data under it.
    with tempfile.TemporaryDirectory(prefix="flywheel-pgdata-") as data:
        server = pgserver.get_server(data, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture
async def postgres_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    name = f"flywheel_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(postgres_server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/flywheel.db"


@pytest.fixture(params=["sqlite", "postgres"])
def unreachable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that cannot be reached: a file where a folder should be; a closed port."""
    if request.param == "postgres":
        return "postgresql://flywheel@127.0.0.1:1/flywheel"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    return f"sqlite:///{blocker}/flywheel.db"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per storage engine."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on each engine, closed after the test."""
    async with open_store(database_url) as opened:
        await opened.migrate()
        yield opened


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


# Every gateway's spool folder, under one folder this process removes when it exits: one
# folder per gateway left behind in /tmp was thousands a run.
_SPOOLS = tempfile.TemporaryDirectory(prefix="flywheel-test-spools-")


def base_config(
    upstream: FakeUpstream, database_url: str, spool_dir: str | None = None
) -> dict[str, Any]:
    """A config with the fake upstream as provider `fake`, and a few models routed to it."""
    return {
        "server": {"shutdown_timeout": 5},
        "storage": {"url": database_url},
        "capture": {"spool_dir": spool_dir or tempfile.mkdtemp(dir=_SPOOLS.name)},
        "providers": {
            "fake": {
                "type": "openai_compat",
                "base_url": upstream.base_url,
                "api_key": "sk-provider-secret",
                "read_timeout": 2,
            },
            "demo": {"type": "demo"},
        },
        "models": {
            "gpt-4o-mini": {"provider": "fake"},
            "fake-chat": {"provider": "fake", "model": "fake-model"},
            "tools": {"provider": "fake", "model": "fake-tools"},
            "no-usage": {"provider": "fake", "model": "fake-no-usage"},
            "slow": {"provider": "fake", "model": "fake-slow"},
            "slow-stream": {"provider": "fake", "model": "fake-slow-stream"},
            "cutoff": {"provider": "fake", "model": "fake-cutoff"},
            "length": {"provider": "fake", "model": "fake-length"},
            "filtered": {"provider": "fake", "model": "fake-filtered"},
            "empty": {"provider": "fake", "model": "fake-empty"},
            "error-400": {"provider": "fake", "model": "fake-error-400"},
            "error-500": {"provider": "fake", "model": "fake-error-500"},
            "demo": {"provider": "demo", "model": "flywheel-demo-1"},
        },
    }


@pytest.fixture
async def make_gateway() -> AsyncIterator[Callable[..., Any]]:
    """Start gateways from config dicts; all are stopped (and their recorders drained) after."""
    started: list[GatewayHarness] = []

    async def make(config: dict[str, Any], config_file: Path | None = None) -> GatewayHarness:
        harness = await start_gateway(config, config_file)
        started.append(harness)
        return harness

    yield make
    for harness in reversed(started):
        await harness.stop()


@pytest.fixture
async def gateway(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> GatewayHarness:
    """The gateway in front of the fake upstream, once on SQLite and once on PostgreSQL."""
    return await make_gateway(base_config(upstream, database_url))
