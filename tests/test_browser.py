"""The example page in a real headless Chromium: a user clicks 👍 and the row is in the database.

Skipped, saying why, where no Chromium is installed (`.ci/run` installs Debian's `chromium`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from tests.browser import chromium, chromium_path
from tests.fake_upstream import FakeUpstream, expected_content
from tests.feedback_support import feedback_config, fetch_feedback
from tests.harness import GatewayHarness

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feedback.html"
CHROMIUM = chromium_path()

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium here: the browser test needs one (Debian: apt-get install chromium; "
    ".ci/run installs it)",
)


@pytest.fixture
async def app_site() -> AsyncIterator[str]:
    """The app's own web server, on another origin than the gateway: it serves the example page."""

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(EXAMPLE)

    app = web.Application()
    app.router.add_get("/feedback.html", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_thumbs_up_from_another_origin_with_the_token(
    app_site: str, upstream: FakeUpstream, sqlite_url: str, make_gateway: Callable[..., Any]
) -> None:
    """The real-app flow: the backend calls the gateway with its key and renders the answer with
    its token; the page, on its own origin, posts 👍 with the token only (CORS, no key)."""
    config = feedback_config(upstream, sqlite_url)
    config["server"]["cors_origins"] = [app_site]
    config["auth"] = {"keys": [{"name": "app", "key": "fw-app-key", "scopes": ["inference"]}]}
    gateway: GatewayHarness = await make_gateway(config)
    raw = await gateway.client(api_key="fw-app-key").chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "What is a flywheel?"}]
    )
    interaction_id = raw.headers["Flywheel-Interaction-Id"]
    page_url = f"{app_site}/feedback.html?" + urlencode(
        {
            "gateway": gateway.base_url,
            "answer": raw.parse().choices[0].message.content,
            "interaction": interaction_id,
            "token": raw.headers["Flywheel-Feedback-Token"],
        }
    )
    assert CHROMIUM is not None
    async with chromium(CHROMIUM) as page:
        await page.goto(page_url)
        await page.wait_for("document.getElementById('answer').textContent.includes('flywheel')")
        await page.click("#thumbs-up")
        status = await page.wait_for(
            "document.getElementById('status').textContent.includes('saved as feedback')"
            " && document.getElementById('status').textContent"
        )
    [row] = await fetch_feedback(gateway.database_url, interaction_id)
    assert row["id"] in status
    assert (row["thumbs"], row["source"], row["api_key_name"]) == ("up", "example-page", None)
    assert row["idempotency_key"] and row["time_to_decision_ms"] >= 0


async def test_demo_page_on_the_gateway_asks_then_takes_a_thumbs_down(
    upstream: FakeUpstream, sqlite_url: str, make_gateway: Callable[..., Any]
) -> None:
    """`make run` users: open /static/example.html, ask, click 👎 (same origin, no keys)."""
    gateway: GatewayHarness = await make_gateway(feedback_config(upstream, sqlite_url))
    assert CHROMIUM is not None
    async with chromium(CHROMIUM) as page:
        await page.goto(f"{gateway.base_url}/static/example.html?model=fake-chat")
        await page.click("#ask-button")
        answer = await page.wait_for(
            "!document.getElementById('feedback').classList.contains('hidden')"
            " && document.getElementById('answer').textContent"
        )
        assert answer == expected_content("What is a flywheel?")
        await page.click("#thumbs-down")
        await page.wait_for(
            "document.getElementById('status').textContent.includes('saved as feedback')"
        )
    [row] = await fetch_feedback(gateway.database_url)
    assert row["thumbs"] == "down"
    assert (await gateway.row(row["interaction_id"]))["requested_model"] == "fake-chat"
