"""The overview on the hourly rollups, on SQLite and PostgreSQL: what the recorder writes is
counted at once, and the page says when its percentiles come from the histogram."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness
from tests.test_console import ADMIN_KEY, browser_like, chat, console_config, http_sign_in


async def _overview(gateway: GatewayHarness, range_name: str) -> str:
    async with browser_like() as http:
        await http_sign_in(http, gateway, ADMIN_KEY)
        async with http.get(f"{gateway.base_url}/console/?range={range_name}") as response:
            assert response.status == 200
            return await response.text()


@pytest.mark.parametrize("exact_up_to", [10_000, 1])
async def test_the_overview_counts_from_the_rollups_and_names_its_approximation(
    database_url: str,
    upstream: FakeUpstream,
    make_gateway: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    exact_up_to: int,
) -> None:
    monkeypatch.setattr("gateway.store.stats_sql.EXACT_PERCENTILES_MAX", exact_up_to)
    monkeypatch.setattr("gateway.console.overview.EXACT_PERCENTILES_MAX", exact_up_to)
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    await chat(gateway, "What is a flywheel?", user="alice")
    await chat(gateway, "And a rollup?", user="bob")
    await gateway.stop()  # every row written
    gateway = await make_gateway(console_config(upstream, database_url))
    for range_name in ("1h", "7d", "all"):
        text = await _overview(gateway, range_name)
        total = re.search(r'id="total-requests"[^>]*>([^<]+)<', text)
        assert total is not None and total.group(1) == "2", range_name
        assert ('id="percentile-note"' in text) == (exact_up_to == 1), range_name
