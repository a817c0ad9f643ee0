"""The console's other pages in a real Chromium, on SQLite and PostgreSQL: the experiments
readout is the admin API's, a dataset run from the console contains the reviewer's
correction and downloads from the browser, failures and quality flags are grouped, and a
reviewer's key may annotate but not export.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson

from gateway.console.render import UNKNOWN
from tests.browser import Page
from tests.fake_upstream import FakeUpstream
from tests.feedback_support import fetch_feedback
from tests.harness import GatewayHarness
from tests.test_console import (
    ADMIN_KEY,
    REVIEW_KEY,
    browser_like,
    chat,
    console_config,
    http_sign_in,
    needs_chromium,
    page_fixture,  # noqa: F401 (the `page` fixture)
    screenshot,
    sign_in,
    text_of,
)

EXPERIMENT = {
    "variants": [
        {"name": "a", "provider": "fake", "model": "fake-model"},
        {"name": "b", "provider": "fake", "model": "fake-model"},
    ],
    "control": "a",
}


@needs_chromium
async def test_experiments_page_shows_the_admin_readout(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], page: Page
) -> None:
    config = console_config(upstream, database_url)
    config["models"]["exp"] = EXPERIMENT
    gateway: GatewayHarness = await make_gateway(config)
    for n in range(8):
        await chat(gateway, f"question {n}", user=f"user-{n}", model="exp")
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{gateway.base_url}/admin/experiments/exp",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as response,
    ):
        readout = await response.json()
    await sign_in(page, gateway, ADMIN_KEY, then="/console/experiments?range=all")
    shown = await page.wait_for(
        "Array.from(document.querySelectorAll("
        "'.readout[data-model=exp] .comparison tr[data-metric]'))"
        ".map(r => [r.dataset.metric, r.querySelector('.verdict').textContent])"
    )
    [comparison] = readout["comparisons"]
    assert shown == [[m["metric"], m["verdict"] or UNKNOWN] for m in comparison["metrics"]]
    variants = await page.evaluate(
        "Array.from(document.querySelectorAll('.readout[data-model=exp] .variants tbody tr'))"
        ".map(r => r.cells[0].textContent)"
    )
    assert sorted(variants) == ["a", "b"]
    # The error-rate interval is drawn (both arms have requests).
    assert await page.evaluate(
        "document.querySelector('tr[data-metric=error_rate] svg circle') !== null"
    )
    await screenshot(page, "experiments", database_url)


@needs_chromium
async def test_a_correction_reaches_a_dataset_downloaded_from_the_console(
    database_url: str,
    upstream: FakeUpstream,
    make_gateway: Callable[..., Any],
    page: Page,
    tmp_path: Path,
) -> None:
    config = console_config(upstream, database_url)
    config["exports"] = {"sft": {"format": "openai", "out": str(tmp_path / "sft")}}
    gateway: GatewayHarness = await make_gateway(config)
    target = await chat(gateway, "What is a flywheel?", user="alice")
    corrected = "A flywheel is a heavy wheel that stores rotational energy."

    await sign_in(page, gateway, ADMIN_KEY, then=f"/console/interactions/{target}")
    await page.click("#edit summary")
    await page.evaluate(
        f"document.getElementById('correction').value = {orjson.dumps(corrected).decode()}"
    )
    await page.click("#save-correction")
    await page.wait_for("document.getElementById('saved') !== null")

    await page.goto(f"{gateway.base_url}/console/datasets")
    # The job's preview counts the example waiting for it.
    assert await page.wait_for(
        "document.querySelector('tr[data-job=sft] .preview').textContent"
        ".startsWith('1 new examples ready')"
    )
    await page.click("tr[data-job=sft] .run-job")
    await page.wait_for("location.pathname.startsWith('/console/datasets/runs/')")
    await page.wait_for(
        "document.getElementById('run-status')?.textContent === 'succeeded'", seconds=60
    )
    assert await text_of(page, "#run-rows") == "1"
    await screenshot(page, "run", database_url)
    links = await page.evaluate(
        "Array.from(document.querySelectorAll('#files a')).map(a => a.getAttribute('href'))"
    )
    assert any(link.endswith("manifest.json") for link in links)
    data_link = next(link for link in links if link.endswith(".jsonl"))
    # Fetched by the page itself, with its session cookie, as the download link would be.
    downloaded = await page.evaluate(
        f"fetch({orjson.dumps(data_link).decode()}).then(r => r.ok ? r.text() : 'HTTP ' + r.status)"
    )
    [example] = [orjson.loads(line) for line in downloaded.splitlines()]
    assert example["messages"][-1]["content"] == corrected
    await page.goto(f"{gateway.base_url}/console/datasets")
    await page.wait_for(
        "document.querySelector('tr[data-job=sft] .preview').textContent !== 'counting…'"
    )
    await screenshot(page, "datasets", database_url)


@needs_chromium
async def test_failures_and_quality_flags_are_grouped(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], page: Page
) -> None:
    gateway: GatewayHarness = await make_gateway(console_config(upstream, database_url))
    client = gateway.client(api_key="fw-app-key-1")
    for _ in range(2):
        with contextlib.suppress(openai.APIStatusError):  # the 502 is the point
            await client.chat.completions.create(
                model="error-500", messages=[{"role": "user", "content": "hi"}]
            )
    await chat(gateway, "Dear {customer_name}, hello", user="carol")
    await gateway.latest_row("status = 'error'")
    await sign_in(page, gateway, ADMIN_KEY, then="/console/failures")
    groups = await page.wait_for(
        "Array.from(document.querySelectorAll('#failure-groups tbody tr'))"
        ".map(r => [r.cells[0].textContent, r.cells[2].textContent])"
    )
    assert groups == [["fake", "2"]]
    flags = await page.evaluate(
        "Array.from(document.querySelectorAll('h3 .flag')).map(e => e.textContent)"
    )
    assert flags == ["unrendered_template"]
    await screenshot(page, "failures", database_url)
    await page.click("h3 a")
    await page.wait_for("location.search === '?quality_flag=unrendered_template'")
    await page.click("#interactions tbody tr a")
    assert "{customer_name}" in await text_of(page, "#flags")


async def test_a_reviewer_may_annotate_but_not_export(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    config = console_config(upstream, database_url)
    config["exports"] = {"sft": {"format": "openai", "out": str(tmp_path / "sft")}}
    gateway: GatewayHarness = await make_gateway(config)
    target = await chat(gateway, "Hello?", user="alice")
    async with browser_like() as http:
        token = await http_sign_in(http, gateway, REVIEW_KEY)
        async with http.post(
            f"{gateway.base_url}/console/interactions/{target}/feedback",
            data={"thumbs": "up", "csrf_token": token},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
        async with http.post(
            f"{gateway.base_url}/console/datasets/jobs/sft/run",
            data={"csrf_token": token},
            allow_redirects=False,
        ) as response:
            assert response.status == 403
        async with http.get(f"{gateway.base_url}/console/datasets") as response:
            assert "run-job" not in await response.text()
    [row] = await fetch_feedback(gateway.database_url, target)
    assert (row["thumbs"], row["source"], row["api_key_name"]) == ("up", "console:expert", "expert")
    assert not (tmp_path / "sft").exists()


# Every control named for assistive technology, and no page wider than the screen.
_UNLABELLED = (
    "Array.from(document.querySelectorAll('input, select, textarea, button'))"
    ".filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length)"
    " && !e.getAttribute('aria-label') && !(e.tagName === 'BUTTON' && e.textContent.trim()))"
    ".map(e => e.outerHTML)"
)
_OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


@needs_chromium
async def test_pages_are_labelled_and_fit_a_phone(
    sqlite_url: str,
    upstream: FakeUpstream,
    make_gateway: Callable[..., Any],
    page: Page,
    tmp_path: Path,
) -> None:
    config = console_config(upstream, sqlite_url)
    config["models"]["exp"] = EXPERIMENT
    config["exports"] = {"sft": {"format": "openai", "out": str(tmp_path / "sft")}}
    gateway: GatewayHarness = await make_gateway(config)
    target = await chat(gateway, "A rather long question " * 20, user="alice", model="exp")
    await sign_in(page, gateway, ADMIN_KEY)
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        width=390,
        height=844,
        deviceScaleFactor=1,
        mobile=True,
    )
    for path in (
        "/console/",
        "/console/interactions",
        f"/console/interactions/{target}",
        "/console/failures",
        "/console/experiments",
        "/console/datasets",
    ):
        await page.goto(gateway.base_url + path)
        assert await page.evaluate(_UNLABELLED) == [], path
        assert await page.evaluate(_OVERFLOW) <= 0, path
    await page.goto(f"{gateway.base_url}/console/interactions/{target}")
    await screenshot(page, "interaction-phone", sqlite_url)


async def test_an_ad_hoc_export_runs_with_the_filters_given(
    sqlite_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    config = console_config(upstream, sqlite_url)
    config["storage"]["exports_dir"] = str(tmp_path / "adhoc")
    gateway: GatewayHarness = await make_gateway(config)
    await chat(gateway, "Kept", user="alice")
    await chat(gateway, "Filtered out", user="bob")
    async with browser_like() as http:
        token = await http_sign_in(http, gateway, ADMIN_KEY)
        async with http.post(
            f"{gateway.base_url}/console/datasets/export",
            data={"format": "openai", "users": "alice", "csrf_token": token},
            allow_redirects=False,
        ) as response:
            assert response.status == 303, await response.text()
            run_page = gateway.base_url + response.headers["Location"]
        for _ in range(600):
            async with http.get(run_page) as response:
                page = await response.text()
            if ">succeeded<" in page:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the run never succeeded: {page}")
        assert re.search(r'id="run-rows">1<', page)
        async with http.post(
            f"{gateway.base_url}/console/datasets/export",
            data={"format": "no-such-format", "csrf_token": token},
        ) as response:
            assert response.status == 422
            assert "format" in await response.text()
