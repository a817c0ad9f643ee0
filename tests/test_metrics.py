"""`GET /metrics` on the real gateway: each metric moves as it should, labels stay bounded, and
with several workers every scrape adds up all of them."""

from __future__ import annotations

import asyncio
import glob
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from prometheus_client.mmap_dict import MmapedDict

from gateway import __version__
from gateway.appkeys import METRICS, RECORDER
from gateway.metrics import Metrics, feedback_events
from gateway.records.headers import INTERACTION_HEADER
from tests.conftest import base_config
from tests.fake_upstream import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream
from tests.harness import GatewayHarness
from tests.scrape import Scrape, scrape
from tests.serving import ServedGateway
from tests.test_recorder import OutageStore

MESSAGES = [{"role": "user", "content": "What is a flywheel?"}]
CHAT = {"model": "fake-chat", "variant": "none", "provider": "fake", "endpoint": "chat/completions"}
SERVED = {k: CHAT[k] for k in ("model", "variant", "provider")}
HISTOGRAMS = (
    "flywheel_request_duration_seconds",
    "flywheel_upstream_duration_seconds",
    "flywheel_gateway_overhead_seconds",
    "flywheel_time_to_first_token_seconds",
)


def metered_config(upstream: FakeUpstream, database_url: str) -> dict[str, Any]:
    config = base_config(upstream, database_url)
    config["pricing"] = {"fake-model": {"input_per_million": 1.0, "output_per_million": 2.0}}
    return config


@pytest.fixture
async def gateway(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> GatewayHarness:
    return await make_gateway(metered_config(upstream, sqlite_url))


def _moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_a_non_stream_call_counts_latencies_tokens_and_cost(gateway: GatewayHarness) -> None:
    before = await scrape(gateway.base_url)
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES
    )
    after = await scrape(gateway.base_url)

    assert _moved(before, after, "flywheel_requests_total", **CHAT, status_class="2xx") == 1
    assert _moved(before, after, "flywheel_requests_total") == 1
    for name in HISTOGRAMS[:3]:
        assert _moved(before, after, f"{name}_count") == 1, name
    assert _moved(before, after, "flywheel_time_to_first_token_seconds_count") == 0
    total = after.value("flywheel_request_duration_seconds_sum", **CHAT)
    upstream = after.value("flywheel_upstream_duration_seconds_sum", **CHAT)
    overhead = after.value("flywheel_gateway_overhead_seconds_sum", endpoint=CHAT["endpoint"])
    assert 0 < upstream <= total
    assert overhead == pytest.approx(total - upstream, abs=1e-9)
    tokens = {
        kind: _moved(before, after, "flywheel_tokens_total", **SERVED, kind=kind)
        for kind in ("prompt", "completion", "cached", "reasoning")
    }
    assert tokens == {
        "prompt": PROMPT_TOKENS,
        "completion": COMPLETION_TOKENS,
        "cached": CACHED_TOKENS,
        "reasoning": 0,
    }
    row = await gateway.row(raw.headers[INTERACTION_HEADER])
    cost = _moved(before, after, "flywheel_cost_usd_total", **SERVED)
    assert cost == pytest.approx(row["cost_usd"]) and cost > 0
    assert after.value("flywheel_build_info", version=__version__) == 1


async def test_a_stream_counts_its_time_to_first_token(gateway: GatewayHarness) -> None:
    before = await scrape(gateway.base_url)
    stream = await gateway.client().chat.completions.create(
        model="fake-chat", messages=MESSAGES, stream=True
    )
    _ = [chunk async for chunk in stream]
    after = await scrape(gateway.base_url)

    assert _moved(before, after, "flywheel_requests_total", **CHAT, status_class="2xx") == 1
    assert _moved(before, after, "flywheel_time_to_first_token_seconds_count", **SERVED) == 1
    ttft = after.value("flywheel_time_to_first_token_seconds_sum", **SERVED)
    assert 0 < ttft <= after.value("flywheel_request_duration_seconds_sum", **CHAT)
    assert _moved(before, after, "flywheel_tokens_total", kind="completion") == COMPLETION_TOKENS


async def test_an_upstream_error_counts_a_5xx_and_the_provider_failure(
    gateway: GatewayHarness,
) -> None:
    before = await scrape(gateway.base_url)
    with pytest.raises(openai.APIStatusError) as failed:
        await gateway.client().chat.completions.create(model="error-500", messages=MESSAGES)
    assert failed.value.status_code == 502
    with pytest.raises(openai.BadRequestError):  # an upstream 4xx, relayed as is
        await gateway.client().chat.completions.create(model="error-400", messages=MESSAGES)
    after = await scrape(gateway.base_url)

    failing = {**CHAT, "model": "error-500"}
    assert _moved(before, after, "flywheel_requests_total", **failing, status_class="5xx") == 1
    assert _moved(before, after, "flywheel_upstream_errors_total", provider="fake") == 2
    assert (
        _moved(before, after, "flywheel_upstream_errors_total", provider="fake", kind="http_5xx")
        == 1
    )
    assert (
        _moved(before, after, "flywheel_upstream_errors_total", provider="fake", kind="http_4xx")
        == 1
    )
    assert _moved(before, after, "flywheel_requests_total", status_class="4xx") == 1
    assert _moved(before, after, "flywheel_upstream_duration_seconds_count", **failing) == 1


async def test_an_overload_rejection_is_counted_and_in_flight_is_seen(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str
) -> None:
    config = metered_config(upstream, sqlite_url)
    config["server"]["max_in_flight"] = 1
    gateway = await make_gateway(config)
    upstream.slow_seconds = 1.0
    client = gateway.client()
    slow = asyncio.create_task(client.chat.completions.create(model="slow", messages=MESSAGES))
    while not upstream.requests:
        await asyncio.sleep(0.01)
    during = await scrape(gateway.base_url)  # /metrics is never turned away, nor counted
    assert during.value("flywheel_in_flight_requests") == 1
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    await slow
    after = await scrape(gateway.base_url)

    assert after.value("flywheel_overload_rejections_total") == 1
    assert after.value("flywheel_in_flight_requests") == 0
    assert after.value("flywheel_requests_total") == 1  # the rejected call never reached a model


async def test_an_unknown_model_is_counted_as_other(gateway: GatewayHarness) -> None:
    for name in ("no-such-model-1", "no-such-model-2"):
        with pytest.raises(openai.NotFoundError):
            await gateway.client().chat.completions.create(model=name, messages=MESSAGES)
    after = await scrape(gateway.base_url)

    assert "no-such-model" not in after.text
    assert after.label_values("flywheel_requests_total", "model") == {"other"}
    assert after.value("flywheel_requests_total", model="other", status_class="4xx") == 2
    # No latency series for requests that never reached a provider.
    assert "flywheel_request_duration_seconds_count" not in {s.name for s in after.samples}


async def test_recorder_rows_written_spooled_and_replayed(gateway: GatewayHarness) -> None:
    client = gateway.client()
    await client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    await _until(gateway, lambda s: s.value("flywheel_recorder_rows_written_total") == 1)
    recorder = gateway.app[RECORDER]
    outage = recorder.store = OutageStore(recorder.store)
    await client.chat.completions.create(model="fake-chat", messages=MESSAGES)
    during = await _until(gateway, lambda s: s.value("flywheel_recorder_rows_spooled_total") == 1)
    assert during.value("flywheel_recorder_write_errors_total") >= 1
    assert during.value("flywheel_recorder_queue_depth") == 0
    outage.down = False
    after = await _until(gateway, lambda s: s.value("flywheel_recorder_rows_replayed_total") == 1)
    assert after.value("flywheel_recorder_rows_written_total") == 1


async def test_feedback_exports_and_reloads_are_counted(gateway: GatewayHarness) -> None:
    metrics: Metrics = gateway.app[METRICS]
    body = {"rating": 4, "thumbs": "up", "outcome": "accepted", "score": 0.2, "comment": "ok"}
    for kind, value, rating in feedback_events(body):
        metrics.observe_feedback("fake-chat", None, kind, value, rating)
    metrics.observe_feedback("fake-chat", "b", "thumbs", "sideways")
    metrics.observe_feedback("user-typed-model", "x", "mood", "grumpy")
    metrics.observe_export("nightly", 120, finished_at=1_700_000_000)
    metrics.observe_config_reload(ok=False)
    after = await scrape(gateway.base_url)

    arm = {"model": "fake-chat", "variant": "none"}
    events = {
        (s.labels["kind"], s.labels["value"]): s.value
        for s in after.samples
        if s.name == "flywheel_feedback_total" and s.labels.items() >= arm.items()
    }
    assert events == {
        ("rating", "4"): 1,
        ("thumbs", "up"): 1,
        ("outcome", "accepted"): 1,
        ("score", "low"): 1,
        ("comment", "given"): 1,
    }
    assert after.value("flywheel_feedback_total", model="fake-chat", value="other") == 1
    assert after.value("flywheel_feedback_total", model="other", kind="other") == 1
    assert after.value("flywheel_feedback_rating_sum", **arm) == 4
    assert after.value("flywheel_feedback_rating_count", **arm) == 1
    assert "user-typed-model" not in after.text and "grumpy" not in after.text
    assert after.value("flywheel_export_rows_total", job="nightly") == 120
    assert after.value("flywheel_export_last_success_timestamp_seconds", job="nightly") == 1.7e9
    assert after.value("flywheel_config_reloads_total", result="failure") == 1
    assert after.value("flywheel_config_reloads_total", result="success") == 0


def test_feedback_events_from_a_body_or_a_stored_event() -> None:
    body = {"rating": 5, "thumbs": None, "score": 0.9, "correction": "", "comment": ""}
    assert list(feedback_events(body)) == [
        ("rating", "5", 5.0),
        ("score", "high", None),
        ("correction", "given", None),
    ]
    event = SimpleNamespace(thumbs="down", outcome="modified", correction="Paris.")
    event.correction_type = "major_edit"
    assert list(feedback_events(event)) == [
        ("thumbs", "down", None),
        ("outcome", "modified", None),
        ("correction", "major_edit", None),
    ]


async def test_a_reload_is_counted_and_its_new_models_become_label_values(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str, tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yaml"
    config = metered_config(upstream, sqlite_url)
    gateway = await make_gateway(config, config_file)
    config["models"]["added-later"] = {"provider": "fake", "model": "fake-model"}
    config_file.write_text(yaml.safe_dump(config))
    assert await _reload(gateway) == 200
    await gateway.client().chat.completions.create(model="added-later", messages=MESSAGES)
    config_file.write_text("models: [unclosed")
    assert await _reload(gateway) == 400
    after = await scrape(gateway.base_url)

    assert after.value("flywheel_config_reloads_total", result="success") == 1
    assert after.value("flywheel_config_reloads_total", result="failure") == 1
    assert after.value("flywheel_requests_total", model="added-later", status_class="2xx") == 1


async def _reload(gateway: GatewayHarness) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.base_url}/admin/reload") as response,
    ):
        return response.status


async def _until(
    gateway: GatewayHarness, condition: Callable[[Scrape], bool], wait: float = 15
) -> Scrape:
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        current = await scrape(gateway.base_url)
        if condition(current):
            return current
        assert asyncio.get_running_loop().time() < deadline, current.text
        await asyncio.sleep(0.05)


# -- several workers -----------------------------------------------------------------------------
@pytest.fixture
def served(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServedGateway]:
    config = metered_config(upstream, f"sqlite:///{tmp_path}/flywheel.db")
    config["server"]["workers"] = 2
    config["capture"]["spool_dir"] = str(tmp_path / "spool")
    gateway = ServedGateway(tmp_path, config)
    yield gateway
    gateway.close()


async def test_with_two_workers_every_scrape_adds_up_both(served: ServedGateway) -> None:
    await served.wait_ready()
    workers = await _workers(served)
    folder = re.search(r"metrics: the workers' values are kept in (\S+)", served.output())
    assert folder is not None, served.output()
    # A new connection each: the kernel spreads them over the workers. The second worker may
    # still be starting when the first answers readiness, so send until both have served.
    requests = 0
    per_worker: dict[int, float] = {}
    while requests < 40 or not all(per_worker.values()):
        assert requests < 2_000, per_worker
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
            session.post(
                f"{served.base_url}/v1/chat/completions",
                json={"model": "fake-chat", "messages": MESSAGES},
            ) as response,
        ):
            assert response.status == 200
        requests += 1
        if requests % 20 == 0:
            await asyncio.sleep(0.05)  # each is counted just after its last byte was sent
            per_worker = {pid: _served_by(folder.group(1), pid) for pid in workers}

    for _ in range(100):
        per_worker = {pid: _served_by(folder.group(1), pid) for pid in workers}
        if sum(per_worker.values()) == requests:
            break
        await asyncio.sleep(0.05)
    assert sum(per_worker.values()) == requests
    assert all(count > 0 for count in per_worker.values()), per_worker  # both served some
    for _ in range(6):  # whichever worker answers the scrape, it reports both
        current = await scrape(served.base_url)
        assert current.value("flywheel_requests_total", **CHAT, status_class="2xx") == requests
        assert current.value("flywheel_request_duration_seconds_count", **CHAT) == requests
        assert current.value("flywheel_tokens_total", kind="prompt") == requests * PROMPT_TOKENS
        assert current.value("flywheel_build_info", version=__version__) == 1
    # Copied from each worker's recorder once a second: both workers' rows add up.
    for _ in range(100):
        current = await scrape(served.base_url)
        if current.value("flywheel_recorder_rows_written_total") == requests:
            break
        await asyncio.sleep(0.1)
    assert current.value("flywheel_recorder_rows_written_total") == requests

    # A worker killed and replaced: its counts stay in the totals, its live gauges go.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    for _ in range(200):
        now = served.worker_pids()
        if len(now) == 2 and victim not in now:
            break
        await asyncio.sleep(0.05)
    await served.wait_ready()
    assert not glob.glob(os.path.join(folder.group(1), f"gauge_live*_{victim}.db"))
    current = await scrape(served.base_url)
    assert current.value("flywheel_requests_total", **CHAT, status_class="2xx") == requests
    assert await served.terminate() == 0
    assert not os.path.exists(folder.group(1))  # the supervisor's folder is removed at exit


async def _workers(served: ServedGateway) -> set[int]:
    for _ in range(100):
        pids = served.worker_pids()
        if len(pids) == 2:
            return pids
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected 2 workers, found {served.worker_pids()}")


def _served_by(folder: str, pid: int) -> float:
    """Requests counted in one worker's own file."""
    path = os.path.join(folder, f"counter_{pid}.db")
    if not os.path.exists(path):
        return 0
    return sum(
        value
        for key, value, _, _ in MmapedDict.read_all_values_from_file(path)
        if key.startswith('["flywheel_requests", "flywheel_requests_total"')
    )
