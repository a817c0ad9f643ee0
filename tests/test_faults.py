"""Nothing answered is lost: PostgreSQL stopped during traffic and started again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.proxy.handlers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]


class ControlledPostgres:
    """A PostgreSQL server of this test's own (pgserver), which it can stop and start."""

    def __init__(self, folder: Path):
        import pgserver

        self.server = pgserver.get_server(folder, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture
def controlled_postgres(tmp_path: Path) -> Iterator[ControlledPostgres]:
    postgres = ControlledPostgres(tmp_path / "pgdata")
    try:
        yield postgres
    finally:
        postgres.server.cleanup()


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM interactions"))
    finally:
        await conn.close()


async def _answered_ids(client: Any, model: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        assert raw.parse().choices[0].message.content
        ids.append(raw.headers[INTERACTION_HEADER])
    return ids


async def test_postgres_outage_loses_nothing_and_stores_each_row_once(
    make_gateway: Callable[..., Any],
    upstream: FakeUpstream,
    controlled_postgres: ControlledPostgres,
    tmp_path: Path,
) -> None:
    config = base_config(upstream, controlled_postgres.url, spool_dir=str(tmp_path / "spool"))
    config["capture"]["write_timeout"] = 2
    gateway = await make_gateway(config)
    client = gateway.client()

    before = await _answered_ids(client, "fake-chat", 20)
    await asyncio.to_thread(controlled_postgres.stop)
    during = await _answered_ids(client, "fake-chat", 30)  # answered while the store is down
    stream = await client.chat.completions.create(model="demo", messages=MESSAGES, stream=True)
    assert [chunk async for chunk in stream]
    await asyncio.to_thread(controlled_postgres.start)

    expected = len(before) + len(during) + 1
    for _ in range(600):
        if await _count(controlled_postgres.url) >= expected:
            break
        await asyncio.sleep(0.05)
    conn = await asyncpg.connect(controlled_postgres.url)
    try:
        stored = [str(r["id"]) for r in await conn.fetch("SELECT id FROM interactions")]
    finally:
        await conn.close()
    assert len(stored) == expected == len(set(stored))  # every answered request, exactly once
    assert set(before + during) <= set(stored)
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # the spool was replayed and emptied
