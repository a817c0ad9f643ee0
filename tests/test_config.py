"""Config errors name the key and the file; env interpolation; the CLI's check-config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
REPO_CONFIG = REPO / "config.yaml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLYWHEEL_DATABASE_URL", "FLYWHEEL_CONFIG", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _minimal(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "providers": {"demo": {"type": "demo"}},
        "models": {"demo": {"provider": "demo", "model": "flywheel-demo-1"}},
    }
    raw.update(sections)
    return raw


def _write(tmp_path: Path, raw: dict[str, Any] | str, name: str = "flywheel.yaml") -> Path:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def _load_error(tmp_path: Path, raw: dict[str, Any] | str) -> tuple[str, Path]:
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value), path


BAD_CONFIGS = {
    "unknown-top-level": (_minimal(sever={"port": 1}), "sever", "not a known key"),
    "unknown-nested": (_minimal(server={"prot": 8080}), "server.prot", "not a known key"),
    "unknown-provider-key": (
        _minimal(providers={"demo": {"type": "demo", "base_ur": "http://x"}}),
        "providers.demo.base_ur",
        "not a known key",
    ),
    "bad-base-url": (
        _minimal(
            providers={
                "demo": {"type": "demo"},
                "up": {"type": "openai_compat", "base_url": "api.openai.com/v1"},
            }
        ),
        "providers.up.base_url",
        "not an http(s) URL",
    ),
    "ftp-base-url": (
        _minimal(
            providers={
                "demo": {"type": "demo"},
                "up": {"type": "openai_compat", "base_url": "ftp://example.com/v1"},
            }
        ),
        "providers.up.base_url",
        "not an http(s) URL",
    ),
    "missing-provider": (
        _minimal(models={"gpt": {"provider": "openai"}}),
        "models.gpt.provider",
        "'openai'",
    ),
    "bad-storage-scheme": (
        _minimal(storage={"url": "mysql://db/flywheel"}),
        "storage.url",
        "mysql://db/flywheel",
    ),
    "port-not-a-number": (_minimal(server={"port": "abc"}), "server.port", "'abc'"),
    "port-is-bool": (_minimal(server={"port": True}), "server.port", "must be int"),
    "enabled-not-bool": (_minimal(capture={"enabled": "yes"}), "capture.enabled", "bool"),
    "unknown-scope": (
        _minimal(auth={"keys": [{"name": "app", "key": "sk-1", "scopes": ["inference", "root"]}]}),
        "auth.keys[0].scopes",
        "root",
    ),
    "empty-key": (
        _minimal(auth={"keys": [{"name": "app", "key": "", "scopes": ["admin"]}]}),
        "auth.keys[0].key",
        "empty",
    ),
    "unknown-provider-type": (
        _minimal(providers={"demo": {"type": "bedrock"}}),
        "providers.demo.type",
        "openai_compat",
    ),
    "section-not-mapping": (_minimal(server=[1, 2]), "server", "must be a mapping"),
}


@pytest.mark.parametrize(("raw", "key", "detail"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_errors_name_the_key_and_the_file(
    tmp_path: Path, raw: dict[str, Any], key: str, detail: str
) -> None:
    message, path = _load_error(tmp_path, raw)
    assert message.startswith(f"{path}: {key} "), message
    assert detail in message


@pytest.mark.parametrize(("raw", "key", "detail"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_parse_config_names_its_source(raw: dict[str, Any], key: str, detail: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source="deploy/prod.yaml")
    assert str(caught.value).startswith(f"deploy/prod.yaml: {key} ")
    assert detail in str(caught.value)


def test_good_config_is_typed(tmp_path: Path) -> None:
    raw = _minimal(
        server={"port": "9090", "shutdown_timeout": 5},
        auth={"keys": [{"name": "ops", "key": "sk-ops", "scopes": ["admin", "feedback"]}]},
        pricing={"flywheel-demo-1": {"input_per_million": 1, "output_per_million": 2}},
    )
    config = load_config(_write(tmp_path, raw))
    assert config.server.port == 9090
    assert config.server.shutdown_timeout == 5.0
    assert isinstance(config.server.shutdown_timeout, float)
    assert config.auth.keys[0].scopes == ("admin", "feedback")
    assert config.pricing["flywheel-demo-1"].input_per_million == 1.0
    assert config.models["demo"].model == "flywheel-demo-1"
    assert config.source == str(tmp_path / "flywheel.yaml")


def test_model_defaults_to_its_name_upstream() -> None:
    config = parse_config(_minimal(models={"flywheel-demo-1": {"provider": "demo"}}))
    assert config.models["flywheel-demo-1"].model == "flywheel-demo-1"


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    message, path = _load_error(tmp_path, "server: {port: [\n")
    assert message.startswith(f"{path}: invalid YAML")


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_config(missing)


# -- environment interpolation ---------------------------------------------------------
def test_unset_required_variable_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_TEST_UNSET", raising=False)
    raw = _minimal(
        providers={
            "demo": {"type": "demo"},
            "up": {
                "type": "openai_compat",
                "base_url": "https://x/v1",
                "api_key": "${FLYWHEEL_TEST_UNSET}",
            },
        }
    )
    message, path = _load_error(tmp_path, raw)
    assert message.startswith(f"{path}: providers.up.api_key ")
    assert "${FLYWHEEL_TEST_UNSET}" in message
    assert "not set" in message


def test_variables_and_defaults_are_interpolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_TEST_UNSET", raising=False)
    monkeypatch.setenv("FLYWHEEL_TEST_KEY", "sk-from-env")
    monkeypatch.setenv("FLYWHEEL_TEST_HOST", "api.example.com")
    raw = _minimal(
        server={"port": "${FLYWHEEL_TEST_UNSET:-9191}"},
        providers={
            "demo": {"type": "demo"},
            "up": {
                "type": "openai_compat",
                "base_url": "https://${FLYWHEEL_TEST_HOST}/v1",
                "api_key": "${FLYWHEEL_TEST_KEY:-unused}",
                "headers": {"X-Org": "${FLYWHEEL_TEST_UNSET:-org-1}"},
            },
        },
    )
    config = parse_config(raw)
    assert config.server.port == 9191
    up = config.providers["up"]
    assert up.base_url == "https://api.example.com/v1"
    assert up.api_key == "sk-from-env"
    assert up.headers == {"X-Org": "org-1"}


def test_empty_default_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_TEST_UNSET", raising=False)
    raw = _minimal(
        providers={
            "demo": {"type": "demo"},
            "up": {
                "type": "openai_compat",
                "base_url": "https://x/v1",
                "api_key": "${FLYWHEEL_TEST_UNSET:-}",
            },
        }
    )
    assert parse_config(raw).providers["up"].api_key == ""


def test_default_applies_to_a_set_but_empty_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """`${VAR:-default}` as in the shell and Docker Compose: empty counts as unset."""
    monkeypatch.setenv("FLYWHEEL_TEST_PORT", "")
    config = parse_config(_minimal(server={"port": "${FLYWHEEL_TEST_PORT:-9292}"}))
    assert config.server.port == 9292


# -- FLYWHEEL_DATABASE_URL --------------------------------------------------------------
def test_database_url_env_overrides_storage_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", "postgresql://u:p@db:5432/flywheel")
    config = parse_config(_minimal(storage={"url": "sqlite:///local.db", "pool_size": 3}))
    assert config.storage.url == "postgresql://u:p@db:5432/flywheel"
    assert config.storage.pool_size == 3


def test_storage_url_without_override(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(_minimal(storage={"url": "sqlite:///local.db"}))
    assert config.storage.url == "sqlite:///local.db"
    assert parse_config(_minimal()).storage.url == "sqlite:///flywheel.db"


def test_bad_database_url_env_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", "redis://cache:6379")
    with pytest.raises(ConfigError, match=r"^<config>: storage\.url .*redis://cache:6379"):
        parse_config(_minimal())


# -- the repo's own config.yaml ---------------------------------------------------------
def test_repo_config_loads_without_openai_key() -> None:
    assert "OPENAI_API_KEY" not in os.environ
    config = load_config(REPO_CONFIG)
    assert config.source == str(REPO_CONFIG)
    assert {"demo", "gpt-4o-mini"} <= set(config.models)
    assert config.models["gpt-4o-mini"].model == "gpt-4o-mini"
    assert config.providers["openai"].api_key == ""
    assert config.providers["demo"].type == "demo"
    assert config.storage.url == "sqlite:///flywheel.db"
    assert config.auth.keys == ()


def test_flywheel_config_env_picks_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, _minimal(server={"port": 7070}))
    monkeypatch.setenv("FLYWHEEL_CONFIG", str(path))
    config = load_config()
    assert config.server.port == 7070
    assert config.source == str(path)


# -- CLI: check-config -------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "FLYWHEEL_DATABASE_URL", "FLYWHEEL_CONFIG")
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )


# README: "flywheel check-config --config config.yaml"; both argument orders must work.
ORDERS = {
    "option-after-command": lambda path: ("check-config", "--config", path),
    "option-before-command": lambda path: ("--config", path, "check-config"),
}


@pytest.mark.parametrize("argv", ORDERS.values(), ids=ORDERS.keys())
def test_check_config_rejects_a_bad_file(tmp_path: Path, argv: Any) -> None:
    path = _write(tmp_path, _minimal(server={"prot": 8080}), name="bad.yaml")
    result = _cli(*argv(str(path)))
    assert result.returncode == 2, result
    assert f"{path}: server.prot " in result.stderr
    assert "not a known key" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("argv", ORDERS.values(), ids=ORDERS.keys())
def test_check_config_prints_the_model_table(argv: Any) -> None:
    result = _cli(*argv(str(REPO_CONFIG)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{REPO_CONFIG}: OK"
    table = [line.split() for line in lines[1:]]
    assert table[0] == ["MODEL", "VARIANT", "SHARE", "PROVIDER", "TYPE", "UPSTREAM", "MODEL"]
    assert ["demo", "-", "100%", "demo", "demo", "flywheel-demo-1"] in table
    assert ["gpt-4o-mini", "-", "100%", "openai", "openai_compat", "gpt-4o-mini"] in table
    assert ["demo-ab", "baseline", "(control)", "80%", "demo", "demo", "flywheel-demo-1"] in table
    assert ["demo-ab", "candidate", "20%", "demo", "demo", "flywheel-demo-2"] in table
    assert len(table) == 5
    assert "providers.openai.api_key is empty" in result.stderr
