"""Helpers for the feedback and review tests: a config with a known token secret, raw HTTP
calls (feedback is not in the OpenAI SDK), and feedback rows read straight from the database."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import aiohttp
import asyncpg
import orjson
from multidict import CIMultiDictProxy

from gateway.feedback.tokens import FeedbackTokens
from gateway.ids import uuid7
from gateway.records.feedback import Feedback
from gateway.records.interaction import CLIENT_DISCONNECTED, ERROR, Interaction
from gateway.store import Store
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness

SECRET = "test-feedback-secret-0123456789abcdef"
APP_ORIGIN = "http://app.example.test"
TOKENS = FeedbackTokens(SECRET, ttl_seconds=3600)
FEEDBACK_JSON = ("dimensions", "tags")


def feedback_config(upstream: FakeUpstream, database_url: str, **sections: Any) -> dict[str, Any]:
    config = base_config(upstream, database_url)
    config["server"]["cors_origins"] = [APP_ORIGIN]
    config["feedback"] = {"token_secret": SECRET}
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


@dataclass
class Answer:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


async def request(
    gateway: GatewayHarness,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            gateway.base_url + path,
            data=None if body is None else orjson.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as response,
    ):
        raw = await response.read()
        parsed = orjson.loads(raw) if raw and response.content_type == "application/json" else raw
        return Answer(response.status, parsed, response.headers)


async def post_feedback(
    gateway: GatewayHarness, body: Any, headers: dict[str, str] | None = None
) -> Answer:
    return await request(gateway, "POST", "/v1/feedback", body, headers)


async def chat(gateway: GatewayHarness, content: str = "What is a flywheel?", **kwargs: Any):
    """One chat call with the SDK: (interaction id, feedback token, completion)."""
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model=kwargs.pop("model", "fake-chat"),
        messages=[{"role": "user", "content": content}],
        **kwargs,
    )
    return (
        raw.headers["Flywheel-Interaction-Id"],
        raw.headers["Flywheel-Feedback-Token"],
        raw.parse(),
    )


async def fetch_feedback(database_url: str, interaction_id: str | None = None) -> list[dict]:
    """Feedback rows as stored, oldest first (all of them when no interaction is given)."""
    where = "" if interaction_id is None else " WHERE interaction_id = {}"
    if database_url.startswith("sqlite"):
        return await asyncio.to_thread(_sqlite_feedback, database_url, where, interaction_id)
    conn = await asyncpg.connect(database_url)
    try:
        sql = f"SELECT * FROM feedback{where.format('$1')} ORDER BY created_at, id"
        rows = await conn.fetch(sql, *([interaction_id] if interaction_id else []))
    finally:
        await conn.close()
    records = []
    for row in rows:
        record = dict(row)
        record["id"], record["interaction_id"] = str(record["id"]), str(record["interaction_id"])
        for name in FEEDBACK_JSON:
            if isinstance(record[name], str):
                record[name] = orjson.loads(record[name])
        records.append(record)
    return records


def _sqlite_feedback(database_url: str, where: str, interaction_id: str | None) -> list[dict]:
    conn = sqlite3.connect(urlparse(database_url).path[1:])
    conn.row_factory = sqlite3.Row
    try:
        sql = f"SELECT * FROM feedback{where.format('?')} ORDER BY created_at, id"
        rows = conn.execute(sql, [interaction_id] if interaction_id else []).fetchall()
    finally:
        conn.close()
    records = []
    for row in rows:
        record = dict(row)
        for name in FEEDBACK_JSON:
            if record[name] is not None:
                record[name] = orjson.loads(record[name])
        records.append(record)
    return records


# -- a seeded dataset for the review API and the store contract ------------------------------
T0 = datetime(2025, 3, 1, tzinfo=UTC)
ANSWERS = {"i0": "The capital of France is Paris.", "i1": 'Berlin is in "Germany".'}


def _seed_interactions() -> dict[str, Interaction]:
    """12 interactions an hour apart: i0..i11, latencies 100..1200 ms."""
    specs: dict[str, dict[str, Any]] = {
        "i0": {"user": "u1", "session": "s1", "tags": {"team": "search", "env": "prod"}},
        "i1": {"user": "u2", "session": "s1", "tags": {"team": "search"}},
        "i2": {"user": "u1", "status": ERROR, "http_status": 502},
        "i3": {"requested_model": "exp", "variant": "a", "user": "u3", "tags": {"team": "ads"}},
        "i4": {"requested_model": "exp", "variant": "b", "user": "u3"},
        "i5": {"requested_model": "exp", "variant": "b", "status": CLIENT_DISCONNECTED},
    }
    seeded = {}
    for n in range(12):
        name = f"i{n}"
        spec = {"requested_model": "chat-a", **specs.get(name, {})}
        text = ANSWERS.get(name, f"answer number {n}")
        failed = spec.get("status") == ERROR
        seeded[name] = Interaction(
            id=uuid7(),
            created_at=T0 + timedelta(hours=n),
            endpoint="chat/completions",
            request={"messages": [{"role": "user", "content": f"question {n}"}]},
            response=None if failed else {"choices": [{"message": {"content": text}}]},
            response_id=None if failed else f"chatcmpl-seed-{n}",
            error_type="upstream_error" if failed else None,
            error_message="Upstream provider 'fake' failed: boom" if failed else None,
            latency_ms=100.0 * (n + 1),
            cost_usd=0.001 * (n + 1),
            prompt_tokens=10,
            completion_tokens=5,
            quality_flags=["truncated"] if name == "i1" else [],
            **spec,
        )
    return seeded


def _seed_feedback(ids: dict[str, str]) -> list[Feedback]:
    events = [
        ("i0", {"thumbs": "up"}),
        ("i0", {"rating": 5, "outcome": "accepted"}),
        ("i1", {"rating": 2, "outcome": "rejected"}),
        ("i1", {"rating": 4}),
        ("i2", {"thumbs": "down"}),
        ("i3", {"thumbs": "down"}),
        ("i4", {"thumbs": "up", "outcome": "modified", "correction": "x"}),
    ]
    return [
        Feedback(
            id=uuid7(),
            interaction_id=ids[name],
            created_at=T0 + timedelta(days=1, minutes=n),
            correction_type="minor_edit" if "correction" in fields else None,
            **fields,
        )
        for n, (name, fields) in enumerate(events)
    ]


async def seed_review_data(store: Store) -> dict[str, str]:
    """Insert the dataset through a store; returns name -> interaction id."""
    interactions = _seed_interactions()
    await store.insert_interactions(list(interactions.values()))
    ids = {name: it.id for name, it in interactions.items()}
    await store.insert_feedback(_seed_feedback(ids))
    return ids
