"""Moving through the console's listing, on SQLite and PostgreSQL: newer and older pages under
the same filters, the newer and older interaction from one interaction's page, the thumbs
filter, and text search from the form (in Chromium)."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from gateway.appkeys import STORE
from gateway.ids import uuid7
from gateway.records.feedback import Feedback
from gateway.records.interaction import Interaction
from gateway.store.queries import InteractionQuery
from tests.browser import Page
from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness
from tests.test_console import (
    ADMIN_KEY,
    browser_like,
    chat,
    console_config,
    http_sign_in,
    needs_chromium,
    page_fixture,  # noqa: F401 (the `page` fixture)
    sign_in,
)

T0 = datetime(2025, 6, 1, tzinfo=UTC)


async def _store_rows(gateway: GatewayHarness, user: str, count: int) -> list[str]:
    """`count` interactions a minute apart; their ids, newest first."""
    rows = [
        Interaction(
            id=uuid7(),
            created_at=T0 + timedelta(minutes=n),
            endpoint="chat/completions",
            requested_model="fake-chat",
            user=user,
            request={"messages": [{"role": "user", "content": f"Question number {n}"}]},
            response={"choices": [{"message": {"content": f"Answer {n}"}}]},
            status="success",
            http_status=200,
        )
        for n in range(count)
    ]
    await gateway.app[STORE].insert_interactions(rows)
    return [row.id for row in reversed(rows)]


async def _page(http: aiohttp.ClientSession, url: str) -> tuple[list[str], dict[str, str]]:
    """The listing's row ids, and its pager links by id (hrefs unescaped)."""
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    ids = re.findall(r'<tr data-id="([^"]+)"', text)
    links = {
        m[1]: html.unescape(m[0]) for m in re.findall(r'<a href="([^"]+)" id="([a-z-]+)"', text)
    }
    return ids, links


async def test_newer_and_older_pages_under_the_same_filter(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    ids = await _store_rows(gateway, "pager", 120)
    await _store_rows(gateway, "someone-else", 3)  # outside the filter: never listed
    async with browser_like() as http:
        await http_sign_in(http, gateway, ADMIN_KEY)
        base = f"{gateway.base_url}/console/interactions"
        first, links = await _page(http, f"{base}?user=pager")
        assert first == ids[:50]
        assert "prev-page" not in links and "newest-page" not in links
        second, links = await _page(http, gateway.base_url + links["next-page"])
        assert second == ids[50:100]
        assert "user=pager" in links["prev-page"]
        third, links = await _page(http, gateway.base_url + links["next-page"])
        assert third == ids[100:]
        assert "next-page" not in links  # the oldest page
        # Back up again: the same pages, in the same order.
        back, links = await _page(http, gateway.base_url + links["prev-page"])
        assert back == second
        back, links = await _page(http, gateway.base_url + links["prev-page"])
        assert back == first
        assert "prev-page" not in links  # nothing newer
        assert links["next-page"].startswith("/console/interactions?user=pager&cursor=")


async def test_one_interaction_links_to_the_newer_and_the_older_under_its_filter(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    newest, middle, oldest = await _store_rows(gateway, "alice", 3)
    await _store_rows(gateway, "bob", 3)  # interleaved in time, other user
    async with browser_like() as http:
        await http_sign_in(http, gateway, ADMIN_KEY)
        _, links = await _page(http, f"{gateway.base_url}/console/interactions/{middle}?user=alice")
        assert links["prev-interaction"] == f"/console/interactions/{newest}?user=alice"
        assert links["next-interaction"] == f"/console/interactions/{oldest}?user=alice"
        _, links = await _page(http, f"{gateway.base_url}/console/interactions/{newest}?user=alice")
        assert "prev-interaction" not in links
        _, links = await _page(http, f"{gateway.base_url}/console/interactions/{oldest}?user=alice")
        assert "next-interaction" not in links


async def test_the_thumbs_filter_lists_the_latest_thumbs_given(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    a, b, c = await _store_rows(gateway, "carol", 3)
    events = [(a, "down", 0), (b, "down", 1), (b, "up", 2), (c, "up", 3)]  # b changed its mind
    await gateway.app[STORE].insert_feedback(
        [
            Feedback(
                id=uuid7(), interaction_id=i, created_at=T0 + timedelta(days=1, minutes=m), thumbs=t
            )
            for i, t, m in events
        ]
    )
    async with browser_like() as http:
        await http_sign_in(http, gateway, ADMIN_KEY)
        down, _ = await _page(http, f"{gateway.base_url}/console/interactions?thumbs=down")
        up, _ = await _page(http, f"{gateway.base_url}/console/interactions?thumbs=up")
        async with http.get(f"{gateway.base_url}/console/interactions?thumbs=down") as response:
            form = await response.text()
    assert down == [a]
    assert up == [b, c]
    assert re.search(r'<option value="down"\s+selected>', form)
    async with browser_like() as http:
        await http_sign_in(http, gateway, ADMIN_KEY)
        async with http.get(f"{gateway.base_url}/console/interactions?thumbs=left") as response:
            assert response.status == 422  # the review API's check, named
            assert "thumbs" in await response.text()


async def test_a_short_search_says_it_looked_at_the_newest_rows_only(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    await _store_rows(gateway, "short", 3)
    async with browser_like() as http:
        await http_sign_in(http, gateway, ADMIN_KEY)
        base = f"{gateway.base_url}/console/interactions"
        for needle, bounded in (("r 1", False), ("r", True), ("1", True)):
            async with http.get(f"{base}?q={needle}") as response:
                text = await response.text()
            assert ('id="short-search"' in text) == bounded, needle
            assert "1 or 2 only the newest 5,000" in text  # the search box's hint
        ids, _ = await _page(http, f"{base}?q=1")
        assert len(ids) == 1  # "Question number 1", among the newest rows


@needs_chromium
async def test_text_search_from_the_form_finds_part_of_a_word(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], page: Page
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    target = await chat(gateway, "Where is Trondheim?", user="dora")
    await chat(gateway, "Where is Bergen?", user="dora")
    await sign_in(page, gateway, ADMIN_KEY, then="/console/interactions")
    hint = await page.evaluate("document.getElementById('f-q-hint').textContent")
    assert "anywhere" in hint and "ignoring case" in hint
    await page.evaluate("document.getElementById('f-q').value = 'ondHEI'")
    await page.evaluate("document.getElementById('f-thumbs').value = ''")
    await page.click("#apply")
    await page.wait_for("location.search.includes('q=ondHEI')")
    await page.wait_for("document.readyState === 'complete'")
    ids = await page.evaluate(
        "Array.from(document.querySelectorAll('#interactions tbody tr')).map(r => r.dataset.id)"
    )
    assert ids == [target]


async def test_the_console_indexes_new_interactions_in_the_background(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    await chat(gateway, "Index me, please", user="erin")
    store = gateway.app[STORE]
    for _ in range(200):  # the indexer takes a turn every 2 s
        if await store.search_backlog() == 0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the background indexer never caught up")
    found = await store.list_interactions(InteractionQuery(text="index ME"))
    assert [row["user"] for row in found] == ["erin"]


async def test_with_the_search_index_off_nothing_is_indexed_and_search_still_finds(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    config = console_config(upstream, database_url, console={"search_index": False})
    gateway: GatewayHarness = await make_gateway(config)
    await chat(gateway, "Leave me unindexed", user="finn")
    store = gateway.app[STORE]
    for _ in range(100):
        if await store.list_interactions(InteractionQuery(user="finn")):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.5)  # longer than the indexer's turn, were it running
    assert await store.search_backlog() == 1
    found = await store.list_interactions(InteractionQuery(text="me UNindexed"))
    assert [row["user"] for row in found] == ["finn"]
