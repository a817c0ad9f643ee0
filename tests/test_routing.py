"""A/B routing: sticky, deterministic assignment; weights; overrides; fallback."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.config import parse_config
from gateway.records.headers import INTERACTION_HEADER, VARIANT_HEADER
from gateway.routing import BUCKETS, Router, bucket
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream, expected_content
from tests.harness import GatewayHarness
from tests.scrape import scrape

# Everyone lands on `broken`, whose upstream answers 500; `stable` takes over.
FALLBACK_SPLIT = {
    "fallback": "stable",
    "variants": [
        {"name": "broken", "provider": "fake", "model": "fake-error-500", "weight": 1},
        {"name": "stable", "provider": "fake", "model": "fake-model", "weight": 0},
    ],
}
MESSAGES = [{"role": "system", "content": "Be verbose."}, {"role": "user", "content": "hi"}]


def _split(weights: tuple[float, float], **extra: Any) -> dict[str, Any]:
    return {
        "variants": [
            {"name": "a", "provider": "fake", "model": "fake-model-a", "weight": weights[0]},
            {"name": "b", "provider": "fake", "model": "fake-model-b", "weight": weights[1]},
        ],
        **extra,
    }


def _router(weights: tuple[float, float], **extra: Any) -> Router:
    config = parse_config(
        {
            "providers": {"fake": {"type": "openai_compat", "base_url": "http://127.0.0.1:9/v1"}},
            "models": {"exp": _split(weights, **extra)},
        }
    )
    return Router(config.models, config.providers)


def test_split_is_close_to_the_weights_and_sticky_per_user() -> None:
    router = _router((80, 20))
    users = [f"user-{n}" for n in range(2_000)]
    first = {u: router.route("exp", user=u).variant for u in users}
    share = Counter(first.values())["a"] / len(users)
    assert abs(share - 0.80) <= 0.03
    again = _router((80, 20))  # a restart, or another replica: no shared state
    assert all(again.route("exp", user=u).variant == first[u] for u in users)


def test_changing_weights_moves_only_the_users_whose_bucket_changed_hands() -> None:
    before, after = _router((80, 20)), _router((50, 50))
    moved = 0
    for n in range(2_000):
        user = f"user-{n}"
        old, new = before.route("exp", user=user).variant, after.route("exp", user=user).variant
        point = bucket("exp", f"user:{user}")
        if old != new:
            moved += 1
            assert (old, new) == ("a", "b")
            assert BUCKETS * 0.5 <= point < BUCKETS * 0.8  # exactly the buckets that changed hands
        else:
            assert not BUCKETS * 0.5 <= point < BUCKETS * 0.8
    assert 0.25 <= moved / 2_000 <= 0.35


def test_sticky_modes() -> None:
    auto = _router((50, 50))
    by_session = {auto.route("exp", session="s-1").variant for _ in range(50)}
    assert len(by_session) == 1  # no user: the session keeps its arm
    per_request = {
        _router((50, 50), sticky="none").route("exp", user="u").variant for _ in range(200)
    }
    assert per_request == {"a", "b"}
    session_only = _router((50, 50), sticky="session")
    assert len({session_only.route("exp", user="u", session="s").variant for _ in range(50)}) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"control": "c"}, "models.exp.control names unknown variant 'c'"),
        ({"fallback": "zz"}, "models.exp.fallback names unknown variant 'zz'"),
        ({"sticky": "device"}, "models.exp.sticky must be one of"),
    ],
)
def test_invalid_splits_are_rejected(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        _router((1, 1), **extra)


async def test_variant_is_recorded_and_announced_with_its_overrides(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, database_url: str
) -> None:
    config = base_config(upstream, database_url)
    split = _split((0, 1))  # everyone on `b`
    split["variants"][1].update({"params": {"temperature": 0.1}, "system_prompt": "Be brief."})
    config["models"]["exp"] = split
    gateway = await make_gateway(config)
    raw = await gateway.client(
        default_headers={"Flywheel-User": "u-1"}
    ).chat.completions.with_raw_response.create(model="exp", messages=MESSAGES, temperature=0.9)
    assert raw.headers[VARIANT_HEADER] == "b"
    assert raw.parse().choices[0].message.content == expected_content("hi")
    sent = upstream.requests[-1].body
    assert sent["model"] == "fake-model-b"
    assert sent["temperature"] == 0.1
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert (row["requested_model"], row["variant"], row["upstream_model"]) == (
        "exp",
        "b",
        "fake-model-b",
    )
    assert row["fallback_from"] is None


async def test_fallback_when_a_variant_upstream_fails(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, database_url: str
) -> None:
    config = base_config(upstream, database_url)
    config["models"]["exp"] = FALLBACK_SPLIT
    gateway = await make_gateway(config)
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="exp", messages=MESSAGES
    )
    assert raw.headers[VARIANT_HEADER] == "stable"
    assert [r.body["model"] for r in upstream.requests] == ["fake-error-500", "fake-model"]
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    assert (row["status"], row["variant"], row["fallback_from"]) == ("success", "stable", "broken")


async def test_2000_users_split_80_20_and_a_second_gateway_agrees(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, postgres_url: str
) -> None:
    """2,000 requests from 2,000 users: the split is within 3 points of the weights, and a
    second gateway over the same PostgreSQL sends every user to the same variant."""
    config = base_config(upstream, postgres_url)
    config["models"]["exp"] = {
        "variants": [
            {"name": "a", "provider": "demo", "model": "flywheel-demo-1", "weight": 80},
            {"name": "b", "provider": "demo", "model": "flywheel-demo-2", "weight": 20},
        ]
    }
    first, second = await make_gateway(config), await make_gateway(config)
    users = [f"user-{n}" for n in range(2_000)]
    limit = asyncio.Semaphore(32)

    async def call(session: aiohttp.ClientSession, gateway: GatewayHarness, user: str) -> str:
        async with (
            limit,
            session.post(
                f"{gateway.api_url}/chat/completions",
                json={"model": "exp", "messages": MESSAGES},
                headers={"Flywheel-User": user},
            ) as response,
        ):
            assert response.status == 200
            return response.headers[VARIANT_HEADER]

    async with aiohttp.ClientSession() as session:
        on_first = await asyncio.gather(*(call(session, first, u) for u in users))
        on_second = await asyncio.gather(*(call(session, second, u) for u in users))
    assert on_first == on_second
    await first.stop()
    await second.stop()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(
            'SELECT "user", count(DISTINCT variant) AS arms, min(variant) AS variant'
            " FROM interactions WHERE requested_model = 'exp' GROUP BY \"user\""
        )
    finally:
        await conn.close()
    assert len(rows) == 2_000
    assert all(r["arms"] == 1 for r in rows)  # nobody flipped between versions
    share = sum(r["variant"] == "a" for r in rows) / len(rows)
    assert abs(share - 0.80) <= 0.03


async def test_a_rescued_arm_still_counts_as_an_upstream_error(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    config = base_config(upstream, sqlite_url)
    config["models"]["exp"] = FALLBACK_SPLIT
    gateway = await make_gateway(config)
    await gateway.client().chat.completions.create(model="exp", messages=MESSAGES)
    metrics = await scrape(gateway.base_url)
    assert metrics.value("flywheel_upstream_errors_total", provider="fake", kind="http_5xx") == 1
    assert metrics.value("flywheel_requests_total", model="exp", variant="stable") == 1
