"""The Grafana dashboards, proven: every PromQL expression on a real Prometheus scraping a real
gateway, every SQL query on the real `interactions` table, and the JSON, the provisioning and
docker-compose.yml consistent with each other.

The Prometheus test needs the `prometheus` binary (Debian's package, which `.ci/run` installs);
without it, it is skipped and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import openai
import pytest
import yaml

from gateway.appkeys import METRICS
from gateway.config import parse_config
from gateway.metrics import Metrics
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness
from tests.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
PROVISIONING = DASHBOARDS / "provisioning"
MESSAGES = [{"role": "user", "content": "What is a flywheel?"}]
VARIANTS = ("a", "b")
METRIC_NAME = re.compile(r"\bflywheel_[a-z0-9_]+")
# What Grafana puts in place of its variables, for a range of a few minutes and a 1 s scrape.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$variant": "|".join(VARIANTS),
}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def _provisioned_datasources() -> dict[str, str]:
    """uid -> plugin type, from every provisioning file."""
    found = {}
    for path in (PROVISIONING / "datasources").glob("*.yml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            found[source["uid"]] = source["type"]
    return found


def _substitute(expr: str, model: str) -> str:
    for name, value in {**GRAFANA_VARIABLES, "$model": model}.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


# -- the JSON, the provisioning and docker-compose.yml --------------------------------------------
def test_there_are_the_three_dashboards() -> None:
    assert {p.name for p in DASHBOARD_FILES} == {
        "overview.json",
        "experiments.json",
        "feedback-data.json",
    }
    uids = [_load(p)["uid"] for p in DASHBOARD_FILES]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = _load(path)
    provisioned = _provisioned_datasources()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"] and dashboard["uid"]
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource_variables = {}
    for name, variable in variables.items():
        if variable["type"] == "datasource":
            # Its default is a provisioned data source of the plugin type it lists.
            uid = variable["current"]["value"]
            assert provisioned.get(uid) == variable["query"], (name, uid)
            datasource_variables[f"${{{name}}}"] = variable["query"]

    def check_datasource(where: str, datasource: dict[str, Any]) -> None:
        uid, kind = datasource["uid"], datasource["type"]
        expected = datasource_variables.get(uid) or provisioned.get(uid)
        assert expected == kind, f"{where}: datasource {datasource} is not provisioned"

    for variable in variables.values():
        if variable["type"] == "query":
            check_datasource(f"variable {variable['name']}", variable["datasource"])
    for panel in _panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']} has no query"
        check_datasource(panel["title"], panel["datasource"])
    for panel, target in _targets(dashboard):
        check_datasource(panel["title"], target["datasource"])
        assert target.get("expr") or target.get("rawSql"), f"{panel['title']}: empty target"
        if target.get("rawSql"):
            assert target["datasource"]["type"] == "grafana-postgresql-datasource"
        for name in re.findall(r"\$(\w+)", target.get("expr") or target.get("rawSql")):
            assert name.startswith("__") or name in variables, f"{panel['title']}: ${name}"


def test_provisioning_and_compose_fit_together() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"gateway", "postgres", "prometheus", "grafana"}
    assert services["gateway"]["build"] == "."
    mounts = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"docker-compose.yml mounts missing {source}"
                mounts[source.rstrip("/")] = target
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "flywheel.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == mounts["./dashboards"]
    assert mounts["./dashboards/provisioning"] == "/etc/grafana/provisioning"
    prometheus = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())
    targets = [
        t
        for job in prometheus["scrape_configs"]
        for s in job["static_configs"]
        for t in s["targets"]
    ]
    assert "gateway:8080" in targets
    assert "8080:8080" in services["gateway"]["ports"]
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "flywheel.yml").read_text())
    urls = {d["type"]: d["url"] for d in datasources["datasources"]}
    assert urls["prometheus"] == "http://prometheus:9090"
    assert urls["grafana-postgresql-datasource"] == "postgres:5432"


def test_the_compose_gateway_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/config.compose.yaml, with the environment docker-compose.yml gives the gateway."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, value in compose["services"]["gateway"]["environment"].items():
        # docker compose's own ${VAR:-default}, with nothing set in the caller's environment.
        monkeypatch.setenv(name, re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value)))
    raw = yaml.safe_load((ROOT / "deploy" / "config.compose.yaml").read_text())
    config = parse_config(raw, source="deploy/config.compose.yaml")
    assert config.storage.url.startswith("postgresql://flywheel:flywheel@postgres:5432/")
    assert config.auth.keys, "the gateway listens on 127.0.0.1 only without keys"
    assert config.server.host == "0.0.0.0" and config.server.workers >= 2
    assert any(model.variants for model in config.models.values())  # for the experiments board


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_the_compose_prometheus_config_is_valid() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(DASHBOARDS / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- every PromQL expression on a real Prometheus ------------------------------------------------
def _experiment_config(upstream: FakeUpstream, database_url: str) -> dict[str, Any]:
    config = base_config(upstream, database_url)
    config["models"]["ab-chat"] = {
        "sticky": "user",
        "variants": [
            {"name": "a", "provider": "fake", "model": "fake-model", "weight": 1},
            {"name": "b", "provider": "fake", "model": "fake-model-b", "weight": 1},
        ],
    }
    price = {"input_per_million": 1.0, "output_per_million": 2.0}
    config["pricing"] = {"fake-model": price, "fake-model-b": price, "gpt-4o-mini": price}
    return config


async def _drive(gateway: GatewayHarness, round_: int) -> None:
    """Traffic that moves every metric the dashboards show: both arms of an experiment, streams,
    upstream errors, an unknown model, feedback and an export."""
    client = gateway.client()
    calls = [client.chat.completions.create(model="fake-chat", messages=MESSAGES)]
    calls += [client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)]
    calls += [
        client.chat.completions.create(
            model="ab-chat", messages=MESSAGES, extra_headers={"Flywheel-User": f"u{n}"}
        )
        for n in range(12)
    ]
    await asyncio.gather(*calls)
    for model in ("fake-chat", "ab-chat"):
        stream = await client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, extra_headers={"Flywheel-User": "u1"}
        )
        _ = [chunk async for chunk in stream]
    for model, error in (("error-500", openai.APIStatusError), ("nope", openai.NotFoundError)):
        with pytest.raises(error):
            await client.chat.completions.create(model=model, messages=MESSAGES)
    metrics: Metrics = gateway.app[METRICS]
    for variant, thumbs, rating in (("a", "up", 5), ("b", "down", 2), ("b", "up", 4)):
        metrics.observe_feedback("ab-chat", variant, "thumbs", thumbs)
        metrics.observe_feedback("ab-chat", variant, "rating", str(rating), rating)
        metrics.observe_feedback("ab-chat", variant, "outcome", "accepted")
    metrics.observe_export("nightly", 40 + round_)


@contextlib.asynccontextmanager
async def _prometheus(binary: str, folder: Path, target: str) -> AsyncIterator[str]:
    """A real Prometheus scraping `target` every second; yields its base URL."""
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "flywheel", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                assert process.poll() is None, (folder / "prometheus.log").read_text()
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"{url}/-/ready") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("prometheus never became ready")
        yield url
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        log.close()


async def _api(session: aiohttp.ClientSession, url: str, path: str, **params: Any) -> Any:
    async with session.get(f"{url}/api/v1/{path}", params=params) as response:
        body = await response.json()
    assert body["status"] == "success", f"{path} {params}: {body}"
    return body["data"]


async def _scrapes(session: aiohttp.ClientSession, url: str) -> int:
    data = await _api(session, url, "query", query='count_over_time(up{job="flywheel"}[10m])')
    return int(data["result"][0]["value"][1]) if data["result"] else 0


async def _wait_for_scrapes(session: aiohttp.ClientSession, url: str, count: int) -> None:
    for _ in range(300):
        if await _scrapes(session, url) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"prometheus did not scrape {count} times")


async def test_every_panel_query_runs_on_a_real_prometheus(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, sqlite_url: str, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None
    )
    if binary is None:
        pytest.skip(
            "the `prometheus` binary is not installed (`apt-get install prometheus`; .ci/run "
            "does it): the dashboards' PromQL was not checked against a real Prometheus"
        )
    gateway = await make_gateway(_experiment_config(upstream, sqlite_url))
    await _drive(gateway, 0)
    async with (
        _prometheus(binary, tmp_path, gateway.base_url.removeprefix("http://")) as url,
        aiohttp.ClientSession() as session,
    ):
        await _wait_for_scrapes(session, url, 1)
        up = await _api(session, url, "query", query='up{job="flywheel"}')
        assert up["result"][0]["value"][1] == "1", "prometheus could not scrape /metrics"
        await _drive(gateway, 1)  # so that rates are not zero
        await _wait_for_scrapes(session, url, await _scrapes(session, url) + 2)

        scraped = set(await _api(session, url, "label/__name__/values"))
        problems = []
        for path in DASHBOARD_FILES:
            dashboard = _load(path)
            # "All" for the overview's multi-select; the experiment's model for its readout.
            model = "ab-chat" if path.name == "experiments.json" else ".+"
            problems += await _check_variables(session, url, dashboard, model)
            for panel, target in _targets(dashboard):
                if not target.get("expr"):
                    continue
                where = f"{path.name} / {panel['title']}"
                missing = set(METRIC_NAME.findall(target["expr"])) - scraped
                if missing:
                    problems.append(f"{where}: {sorted(missing)} never scraped")
                data = await _api(session, url, "query", query=_substitute(target["expr"], model))
                if not data["result"]:
                    problems.append(f"{where}: no data for {target['expr']}")
                elif not any(_finite(r["value"][1]) for r in data["result"]):
                    problems.append(f"{where}: only NaN for {target['expr']}")
    assert not problems, "\n".join(problems)


async def _check_variables(
    session: aiohttp.ClientSession, url: str, dashboard: dict[str, Any], model: str
) -> list[str]:
    """Each `label_values(metric{...}, label)` variable lists the values the traffic made."""
    problems = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector, label = _substitute(match.group(1), model), match.group(2)
        values = set(await _api(session, url, f"label/{label}/values", **{"match[]": selector}))
        expected = {"ab-chat", "fake-chat", "other"} if label == "model" else set(VARIANTS)
        if not expected <= values:
            problems.append(f"{dashboard['uid']} ${variable['name']}: {values}")
    return problems


def _finite(value: str) -> bool:
    return math.isfinite(float(value))


# -- every SQL query on the real interactions table ---------------------------------------------
def _grafana_sql(sql: str) -> str:
    """Grafana's PostgreSQL macros, as it expands them, for the last hour."""
    sql = re.sub(
        r"\$__timeGroupAlias\((\w+), ?\$__interval\)",
        r"""to_timestamp(floor(extract(epoch from \1) / 60) * 60) AS "time\"""",
        sql,
    )
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        r"\1 BETWEEN now() - interval '1 hour' AND now() + interval '1 minute'",
        sql,
    )
    assert "$" not in sql, sql
    return sql


async def test_every_sql_panel_runs_on_the_interactions_table(
    make_gateway: Callable[..., Any], upstream: FakeUpstream, postgres_url: str
) -> None:
    gateway = await make_gateway(base_config(upstream, postgres_url))
    client = gateway.client()
    raw = []
    for model in ("fake-chat", "empty", "length", "filtered"):
        raw.append(
            await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        )
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="error-500", messages=MESSAGES)
    for response in raw:
        await gateway.row(response.headers["Flywheel-Interaction-Id"])
    await gateway.stop()  # drains the recorder: the failure's row is written too

    conn = await asyncpg.connect(postgres_url)
    try:
        for path in DASHBOARD_FILES:
            for panel, target in _targets(_load(path)):
                if target.get("rawSql"):
                    rows = await conn.fetch(_grafana_sql(target["rawSql"]))
                    assert rows, f"{path.name} / {panel['title']} found nothing"
    finally:
        await conn.close()
