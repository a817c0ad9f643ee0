"""Progress a person can read: the terminal line (redrawn in place on a terminal, a line every
few seconds in a log) and the run's row in the store, written while the run goes on."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from exporters.jobs import RUNNING
from exporters.progress import LOG_EVERY, SAVE_EVERY, Progress, ProgressLine, RunProgress, line
from gateway.ids import uuid7
from gateway.store.base import Store
from tests.fake_upstream import FakeUpstream
from tests.test_console import ADMIN_KEY, browser_like, console_config, http_sign_in


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_says_rows_of_the_total_rate_and_eta() -> None:
    progress = Progress(read=12_000, written=11_800, seconds=3.0, dropped=200, total=1_000_000)
    assert progress.rate == 4_000
    assert progress.eta == pytest.approx(247.0)
    assert line(progress) == (
        "12,000 / 1,000,000 rows (1.2%), 11,800 written, 200 dropped, 4,000 rows/s, ETA 4m07s"
    )
    unknown = Progress(read=10, written=10, seconds=0.0)
    assert unknown.eta is None
    assert line(unknown) == "10 rows, 10 written, 0 dropped, 0 rows/s"


def test_a_terminal_gets_one_line_redrawn_and_ended() -> None:
    clock, stream = Clock(), Terminal()
    shown = ProgressLine(stream, clock)
    shown(Progress(100, 90, 1.0, 10, 1_000))
    shown(Progress(200, 180, 1.1, 20, 1_000))  # too soon: not drawn
    clock.now = 1.0
    shown(Progress(300, 270, 2.0, 30, 1_000))
    shown(Progress(1_000, 900, 2.1, 100, 1_000))  # the last counts, too soon to draw
    shown.finish()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "300 / 1,000 rows" in text and "200 / 1,000" not in text
    assert text.rstrip().endswith("ETA 0s")  # finish() showed the last counts


def test_a_log_gets_a_line_every_few_seconds_not_a_stream_of_redraws() -> None:
    clock, stream = Clock(), io.StringIO()
    shown = ProgressLine(stream, clock)
    for step in range(100):
        clock.now = step * 0.5  # 50 seconds of progress, reported twice a second
        shown(Progress(step * 10, step * 10, clock.now, 0, 1_000))
    shown.finish()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 50 / LOG_EVERY + 1  # every LOG_EVERY seconds, and the last counts
    assert lines[-1].startswith("  990 / 1,000 rows")


async def test_a_running_export_writes_its_progress_into_its_row(store: Store) -> None:
    run = {
        "id": str(uuid7()),
        "job": None,
        "format": "openai",
        "status": RUNNING,
        "started_at": datetime.now(UTC),
        "files": [],
    }
    await store.save_export_run(run)
    clock = Clock()
    progress = RunProgress(store, run, clock)
    progress(Progress(200, 150, 2.0, 50, 1_000))
    await progress.close()
    row = await store.get_export_run(run["id"])
    assert row is not None and row["status"] == RUNNING
    assert row["progress"]["read"] == 200 and row["progress"]["total"] == 1_000
    assert row["progress"]["written"] == 150 and row["progress"]["dropped"] == 50
    assert row["progress"]["rate"] == 100.0 and row["progress"]["eta_seconds"] == 8.0

    progress(Progress(400, 300, 4.0, 100, 1_000))  # within SAVE_EVERY: not written yet
    await progress.close()
    row = await store.get_export_run(run["id"])
    assert row is not None and row["progress"]["read"] == 200
    assert run["progress"]["read"] == 400  # kept for the run's final write

    clock.now = SAVE_EVERY
    progress(Progress(600, 450, 6.0, 150, 1_000))
    await progress.close()
    row = await store.get_export_run(run["id"])
    assert row is not None and row["progress"]["read"] == 600


async def test_the_datasets_page_shows_a_running_exports_progress(
    store: Store, upstream: FakeUpstream, database_url: str, make_gateway: Callable[..., Any]
) -> None:
    gateway = await make_gateway(console_config(upstream, database_url))
    running = {
        "id": str(uuid7()),
        "job": None,
        "format": "openai",
        "status": RUNNING,
        "started_at": datetime.now(UTC),
        "files": [],
        "progress": Progress(12_000, 11_800, 3.0, 200, 1_000_000).describe(),
    }
    await store.save_export_run(running)
    async with browser_like() as http:
        await http_sign_in(http, gateway, ADMIN_KEY)
        async with http.get(f"{gateway.base_url}/console/datasets") as response:
            page = await response.text()
    row = page[page.index(f'data-run="{running["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert 'running<span class="run-progress">: 12,000 / 1,000,000 rows, ETA 247 s</span>' in row
