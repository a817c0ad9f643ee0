"""Start the real gateway on a loopback port and read what it stored, straight from the database.

Rows are read with plain sqlite3 / asyncpg queries, not through the gateway's own Store, so the
tests check what really landed in the tables.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import asyncpg
import openai
import orjson
import yaml
from aiohttp import web

from gateway.app import create_app
from gateway.config import load_config, parse_config

JSON_COLUMNS = ("tags", "request", "response", "quality_flags")


def with_database(server_url: str, name: str) -> str:
    return urlunparse(urlparse(server_url)._replace(path=f"/{name}"))


@dataclass
class GatewayHarness:
    app: web.Application
    runner: web.AppRunner
    base_url: str  # http://127.0.0.1:PORT
    database_url: str
    _clients: list[openai.AsyncOpenAI | openai.OpenAI] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def client(self, api_key: str = "sk-client", **kwargs: Any) -> openai.AsyncOpenAI:
        # No retries: a test must see the gateway's first answer, not a retried one.
        client = openai.AsyncOpenAI(base_url=self.api_url, api_key=api_key, max_retries=0, **kwargs)
        self._clients.append(client)
        return client

    def sync_client(self, api_key: str = "sk-client", **kwargs: Any) -> openai.OpenAI:
        client = openai.OpenAI(base_url=self.api_url, api_key=api_key, max_retries=0, **kwargs)
        self._clients.append(client)
        return client

    async def row(self, interaction_id: str, wait: float = 10.0) -> dict[str, Any]:
        """The stored interaction, waiting for the asynchronous recorder to write it."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            row = await fetch_interaction(self.database_url, interaction_id)
            if row is not None:
                return row
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"interaction {interaction_id} never reached the database")
            await asyncio.sleep(0.02)

    async def latest_row(self, where: str, wait: float = 10.0) -> dict[str, Any]:
        """The newest stored interaction matching the SQL condition `where` (test-written
        text, never input), waiting for the recorder like `row`."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            found = await _latest_id(self.database_url, where)
            if found is not None:
                return await self.row(found)
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no interaction where {where}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        for client in self._clients:
            if isinstance(client, openai.AsyncOpenAI):
                await client.close()
            else:
                client.close()
        await self.runner.cleanup()


async def start_gateway(config: dict[str, Any], config_file: Path | None = None) -> GatewayHarness:
    """Start on `config`; with `config_file`, written there and loaded from it (for reloads)."""
    if config_file is not None:
        config_file.write_text(yaml.safe_dump(config))
        app = create_app(load_config(config_file))
    else:
        app = create_app(parse_config(config, source="<test>"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return GatewayHarness(app, runner, f"http://127.0.0.1:{port}", config["storage"]["url"])


async def fetch_interaction(database_url: str, interaction_id: str) -> dict[str, Any] | None:
    if database_url.startswith("sqlite"):
        return await asyncio.to_thread(_sqlite_row, database_url, interaction_id)
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM interactions WHERE id = $1", interaction_id)
    finally:
        await conn.close()
    if row is None:
        return None
    record = dict(row)
    record["id"] = str(record["id"])
    for name in JSON_COLUMNS:
        if isinstance(record[name], str):
            record[name] = orjson.loads(record[name])
    return record


def _sqlite_row(database_url: str, interaction_id: str) -> dict[str, Any] | None:
    path = urlparse(database_url).path[1:]
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM interactions WHERE id = ?", (interaction_id,)).fetchone()
    except sqlite3.OperationalError:
        return None  # table not created yet
    finally:
        conn.close()
    if row is None:
        return None
    record = dict(row)
    for name in JSON_COLUMNS:
        if record[name] is not None:
            record[name] = orjson.loads(record[name])
    record["stream"] = bool(record["stream"])
    record["usage_estimated"] = bool(record["usage_estimated"])
    return record


async def _latest_id(database_url: str, where: str) -> str | None:
    query = f"SELECT id FROM interactions WHERE {where} ORDER BY created_at DESC LIMIT 1"
    if database_url.startswith("sqlite"):
        return await asyncio.to_thread(_sqlite_latest_id, database_url, query)
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetchval(query)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()
    return str(found) if found is not None else None


def _sqlite_latest_id(database_url: str, query: str) -> str | None:
    conn = sqlite3.connect(urlparse(database_url).path[1:])
    try:
        found = conn.execute(query).fetchone()
    except sqlite3.OperationalError:
        return None  # table not created yet
    finally:
        conn.close()
    return str(found[0]) if found else None
