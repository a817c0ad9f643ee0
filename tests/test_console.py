"""The console (/console) in a real headless Chromium against the real gateway, on SQLite and
PostgreSQL: sign in with a key, filter, open an interaction, judge and correct it, and find what
was saved in the database; refusals (a key without the scope, a missing CSRF token) are checked
over plain HTTP, as an attacker would send them.

The page tests also take the README's screenshots (docs/console/*.png), on SQLite, and write them
when `FLYWHEEL_SCREENSHOTS=1` (`make screenshots`): a plain test run leaves the checkout as it was.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import orjson
import pytest

from tests.browser import Page, chromium, chromium_path
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream, expected_content
from tests.feedback_support import fetch_feedback
from tests.harness import GatewayHarness

CHROMIUM = chromium_path()
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "console"
ADMIN_KEY, REVIEW_KEY, APP_KEY = "fw-admin-key-1", "fw-review-key-1", "fw-app-key-1"
KEYS = [
    {"name": "ops", "key": ADMIN_KEY, "scopes": ["admin", "feedback"]},
    {"name": "expert", "key": REVIEW_KEY, "scopes": ["review"]},
    {"name": "app", "key": APP_KEY, "scopes": ["inference", "feedback"]},
]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium here: the console tests need one (Debian: apt-get install chromium; "
    "scripts/install-test-tools.sh installs it)",
)


def console_config(upstream: FakeUpstream, database_url: str, **sections: Any) -> dict[str, Any]:
    config = base_config(upstream, database_url)
    config["auth"] = {"keys": KEYS}
    config["capture"]["flush_interval"] = 0.05
    config.update(sections)
    return config


@pytest.fixture(name="page")
async def page_fixture() -> AsyncIterator[Page]:
    """A fresh Chromium tab at 1280 x 900 (the README's screenshots are this size)."""
    assert CHROMIUM is not None
    async with chromium(CHROMIUM) as opened:
        await opened.send(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield opened


async def chat(gateway: GatewayHarness, text: str, user: str, model: str = "fake-chat") -> str:
    raw = await gateway.client(api_key=APP_KEY).chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": text},
        ],
        user=user,
    )
    interaction_id = raw.headers["Flywheel-Interaction-Id"]
    await gateway.row(interaction_id)  # written by the recorder before the page reads it
    return interaction_id


async def sign_in(page: Page, gateway: GatewayHarness, key: str, then: str = "/console/") -> None:
    await page.goto(f"{gateway.base_url}{then}")
    await page.wait_for("location.pathname === '/console/sign-in'")
    await page.evaluate(f"document.getElementById('key').value = {orjson.dumps(key).decode()}")
    await page.click("#sign-in")
    await page.wait_for(f"location.pathname === {orjson.dumps(then.split('?')[0]).decode()}")
    await page.wait_for("document.readyState === 'complete'")


async def text_of(page: Page, selector: str) -> str:
    return str(
        await page.wait_for(
            f"document.querySelector({orjson.dumps(selector).decode()})?.textContent"
        )
    )


async def screenshot(page: Page, name: str, database_url: str) -> None:
    """docs/console/NAME.png, from the SQLite run only (one set of pictures). Always taken, so
    the capture is tested; written only when asked for."""
    if not database_url.startswith("sqlite"):
        return
    shot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    if os.environ.get("FLYWHEEL_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


@needs_chromium
async def test_reviewer_finds_reads_and_corrects_an_interaction(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], page: Page
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    other = await chat(gateway, "What is the capital of Norway?", user="bob")
    target = await chat(gateway, "What is a flywheel?", user="alice")
    answer = expected_content("What is a flywheel?")

    await sign_in(page, gateway, ADMIN_KEY)
    assert await text_of(page, "#who") == "ops"
    assert await text_of(page, "#total-requests") == "2"
    # The requests chart over time adds up to the same two.
    bars = await page.evaluate(
        "Array.from(document.querySelectorAll('.chart')[0].querySelectorAll('rect.bar title'))"
        ".map(t => Number(t.textContent.split(': ').pop().replace(/,/g, '')))"
    )
    assert sum(bars) == 2 and len(bars) >= 24  # every hour of the day, quiet ones too
    await screenshot(page, "overview", database_url)

    # Filter by user through the form: the filter lands in the URL, and only Alice's row shows.
    await page.goto(f"{gateway.base_url}/console/interactions")
    await page.evaluate("document.getElementById('f-user').value = 'alice'")
    await page.click("#apply")
    await page.wait_for("location.search.includes('user=alice')")
    await page.wait_for("document.readyState === 'complete'")
    ids = await page.evaluate(
        "Array.from(document.querySelectorAll('#interactions tbody tr')).map(r => r.dataset.id)"
    )
    assert ids == [target]
    assert other not in ids
    await screenshot(page, "interactions", database_url)

    # Open it: the conversation, roles in order, the answer.
    await page.click(f"tr[data-id='{target}'] a")
    await page.wait_for(f"location.pathname === '/console/interactions/{target}'")
    roles = await page.wait_for(
        "Array.from(document.querySelectorAll('.conversation .msg .role')).map(e => e.textContent)"
    )
    assert roles == ["system", "user", "assistant"]
    assert await text_of(page, ".msg-assistant .text") == answer
    assert await page.evaluate("location.search") == "?user=alice"  # the filter travels along

    # Correct the answer in place, and judge it.
    corrected = "A flywheel stores rotational energy."
    await page.click("#edit summary")
    await page.evaluate(
        f"document.getElementById('correction').value = {orjson.dumps(corrected).decode()}"
    )
    await page.click("#save-correction")
    saved = await text_of(page, "#saved code")
    await page.click("#thumbs-down")
    await page.evaluate("document.getElementById('rating').value = '2'")
    await page.evaluate("document.getElementById('dim-accuracy').value = '1'")
    await page.evaluate("document.getElementById('comment').value = 'Too vague.'")
    await page.click("#save-judgement")
    await page.wait_for(f"!location.search.includes({orjson.dumps(saved).decode()})")
    await page.wait_for("document.querySelectorAll('.event').length === 2")
    shown_type = await text_of(page, ".event .correction-type")
    assert await page.evaluate("document.querySelector('.diff ins') !== null")
    await screenshot(page, "interaction", database_url)

    correction, judgement = await fetch_feedback(gateway.database_url, target)
    assert correction["id"] == saved
    assert correction["correction"] == corrected
    assert (correction["source"], correction["api_key_name"]) == ("console:ops", "ops")
    assert correction["correction_type"] == shown_type == "major_edit"
    assert correction["edit_distance"] is not None and correction["edit_distance"] > 0
    assert (judgement["thumbs"], judgement["rating"], judgement["comment"]) == (
        "down",
        2,
        "Too vague.",
    )
    assert judgement["dimensions"] == {"accuracy": 1}
    assert judgement["correction"] is None


async def test_a_console_correction_is_stored_as_post_v1_feedback_stores_it(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    """The same correction, once through the console's form and once through the API with the
    same key: the two rows differ only in id and time."""
    config = console_config(upstream, database_url)
    gateway: GatewayHarness = await make_gateway(config)
    target = await chat(gateway, "What is a flywheel?", user="alice")
    form = {"correction": "A flywheel keeps spinning.", "rating": "3", "outcome": "modified"}
    async with browser_like() as http:
        token = await http_sign_in(http, gateway, ADMIN_KEY)
        async with http.post(
            f"{gateway.base_url}/console/interactions/{target}/feedback",
            data={**form, "csrf_token": token},
            allow_redirects=False,
        ) as response:
            assert response.status == 303, await response.text()
        body = {
            "interaction_id": target,
            "correction": form["correction"],
            "rating": 3,
            "outcome": "modified",
            "source": "console:ops",
        }
        async with http.post(
            f"{gateway.base_url}/v1/feedback",
            json=body,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as response:
            assert response.status == 201, await response.text()
    console_row, api_row = await fetch_feedback(gateway.database_url, target)
    different = {"id", "created_at"}
    assert {k: v for k, v in console_row.items() if k not in different} == {
        k: v for k, v in api_row.items() if k not in different
    }
    assert console_row["correction_type"] is not None


def browser_like() -> aiohttp.ClientSession:
    """A client that keeps cookies, of 127.0.0.1 too (aiohttp's default jar skips IP hosts)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def http_sign_in(http: aiohttp.ClientSession, gateway: GatewayHarness, key: str) -> str:
    """Sign in over plain HTTP; the CSRF token of the session (read off the overview)."""
    async with http.post(
        f"{gateway.base_url}/console/sign-in", data={"key": key, "next": "/console/"}
    ) as response:
        assert response.status == 200, await response.text()
        page = await response.text()
    match = re.search(r'data-csrf="([^"]+)"', page)
    assert match is not None
    return match.group(1)


async def test_state_changes_need_the_csrf_token_and_the_same_origin(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    target = await chat(gateway, "Hello?", user="alice")
    url = f"{gateway.base_url}/console/interactions/{target}/feedback"
    async with browser_like() as http:
        token = await http_sign_in(http, gateway, ADMIN_KEY)
        for data, headers in (
            ({"thumbs": "up"}, {}),  # no token
            ({"thumbs": "up", "csrf_token": token[:-2] + "xx"}, {}),  # a wrong one
            ({"thumbs": "up", "csrf_token": token}, {"Origin": "http://evil.example"}),
        ):
            async with http.post(url, data=data, headers=headers, allow_redirects=False) as r:
                assert r.status == 403, await r.text()
                assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        async with http.post(
            url, data={"thumbs": "up", "csrf_token": token}, allow_redirects=False
        ) as response:
            assert response.status == 303  # the control: with the token it is saved
    assert [row["thumbs"] for row in await fetch_feedback(gateway.database_url, target)] == ["up"]


async def test_keys_without_a_console_scope_are_refused_and_pages_need_a_session(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, sqlite_url))
    async with browser_like() as http:
        async with http.get(
            f"{gateway.base_url}/console/interactions?user=x", allow_redirects=False
        ) as response:
            assert response.status == 303
            location = urlparse(response.headers["Location"])
            assert location.path == "/console/sign-in"
            assert parse_qs(location.query) == {"next": ["/console/interactions?user=x"]}
        for key, status in ((APP_KEY, 403), ("fw-not-a-key", 401)):
            async with http.post(
                f"{gateway.base_url}/console/sign-in", data={"key": key}, allow_redirects=False
            ) as response:
                assert response.status == status
                assert "flywheel_console" not in response.cookies
        # A forged cookie is no session either.
        http.cookie_jar.update_cookies({"flywheel_console": "e30.AAAA"})
        async with http.get(f"{gateway.base_url}/console/", allow_redirects=False) as response:
            assert response.status == 303


async def test_the_session_cookie_is_httponly_and_strict_and_sign_out_ends_it(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, sqlite_url))
    async with browser_like() as http:
        async with http.post(
            f"{gateway.base_url}/console/sign-in",
            data={"key": REVIEW_KEY},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
            cookie = response.cookies["flywheel_console"]
            assert cookie["httponly"] is True
            assert cookie["samesite"] == "Strict"
            assert cookie["path"] == "/console"
            assert not cookie["secure"]  # plain HTTP here; see console.secure_cookie
            assert REVIEW_KEY not in cookie.value
        async with http.get(f"{gateway.base_url}/console/") as response:
            page = await response.text()
            assert response.status == 200 and "expert" in page
        token = re.search(r'data-csrf="([^"]+)"', page)
        assert token is not None
        async with http.post(
            f"{gateway.base_url}/console/sign-out",
            data={"csrf_token": token.group(1)},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
        async with http.get(f"{gateway.base_url}/console/", allow_redirects=False) as response:
            assert response.status == 303  # signed out: back to sign-in


async def test_without_keys_the_console_opens_without_sign_in(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    config = base_config(upstream, sqlite_url)
    gateway: GatewayHarness = await make_gateway(config)
    target = await chat_open(gateway)
    async with browser_like() as http:
        async with http.get(f"{gateway.base_url}/console/interactions") as response:
            assert response.status == 200
            page = await response.text()
        assert target in page
        token = re.search(r'data-csrf="([^"]+)"', page)
        assert token is not None
        async with http.post(
            f"{gateway.base_url}/console/interactions/{target}/feedback",
            data={"thumbs": "up", "csrf_token": token.group(1)},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
    [row] = await fetch_feedback(gateway.database_url, target)
    assert (row["source"], row["api_key_name"]) == ("console", None)


async def chat_open(gateway: GatewayHarness) -> str:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "Hi"}]
    )
    interaction_id = raw.headers["Flywheel-Interaction-Id"]
    await gateway.row(interaction_id)
    return interaction_id


@needs_chromium
async def test_new_interactions_appear_without_a_reload(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], page: Page
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, sqlite_url))
    first = await chat(gateway, "First question", user="alice")
    await sign_in(page, gateway, ADMIN_KEY, then="/console/interactions?user=alice")
    await page.evaluate("window.notReloaded = true")
    later = await chat(gateway, "Second question", user="alice")
    await chat(gateway, "Not Alice's", user="bob")  # outside the filter: never shown
    await page.wait_for(f"document.querySelector('tr[data-id=\"{later}\"]') !== null")
    ids = await page.evaluate(
        "Array.from(document.querySelectorAll('#interactions tbody tr')).map(r => r.dataset.id)"
    )
    assert ids == [later, first]
    assert await page.evaluate("window.notReloaded === true")
    assert "1 new" in await text_of(page, "#live")


async def test_with_the_store_down_pages_say_so(
    unreachable_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any]
) -> None:
    gateway: GatewayHarness = await make_gateway(base_config(upstream, unreachable_url))
    async with browser_like() as http:
        for path in ("/console/", "/console/interactions", "/console/datasets"):
            async with http.get(gateway.base_url + path) as response:
                assert response.status == 503, path
                assert response.content_type == "text/html"
                assert "Store unavailable" in await response.text()
                assert "script-src 'self'" in response.headers["Content-Security-Policy"]
