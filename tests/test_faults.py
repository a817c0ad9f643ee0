"""Nothing answered is lost: PostgreSQL stopped during traffic and started again."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import pytest

from gateway.appkeys import RECORDER
from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream

pytestmark = pytest.mark.sdk  # rerun with each older openai major by `make test-clients`

MESSAGES = [{"role": "user", "content": "hi"}]


class ControlledPostgres:
    """A PostgreSQL server of this test's own (pgserver), which it can stop and start."""

    def __init__(self, folder: Path):
        import pgserver

        self.server = pgserver.get_server(folder, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        # As pgserver starts it (same socket folder, so the same URL), with a timeout that a
        # busy CI machine can meet: pgserver's own restart allows only 10 s.
        socket_dir = parse_qs(urlparse(self.url).query)["host"][0]
        self._pg_ctl("-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log), "start")

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(
            ["-w", "-t", "120", *args],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=150,
        )


@pytest.fixture
def controlled_postgres() -> Iterator[ControlledPostgres]:
    # Not under tmp_path, for the reason in conftest.postgres_server_url: another pytest run
    # started meanwhile may delete pytest's older temp folders, this server's data with them.
    with tempfile.TemporaryDirectory(prefix="flywheel-pgdata-") as folder:
        postgres = ControlledPostgres(Path(folder) / "pgdata")
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
    for _ in range(1200):  # up to a minute on a loaded machine
        if await _count(controlled_postgres.url) >= expected:
            break
        await asyncio.sleep(0.05)
    conn = await asyncpg.connect(controlled_postgres.url)
    try:
        stored = [str(r["id"]) for r in await conn.fetch("SELECT id FROM interactions")]
    finally:
        await conn.close()
    recorder = gateway.app[RECORDER]
    state = (
        f"spooling={recorder.spooling} written={recorder.written} spooled={recorder.spooled}"
        f" replayed={recorder.replayed} write_errors={recorder.write_errors}"
    )
    assert len(stored) == expected == len(set(stored)), state  # every request, exactly once
    assert set(before + during) <= set(stored)
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # the spool was replayed and emptied
