"""Load `config.yaml` once into frozen, typed objects, validated before anything starts.

Unknown keys are errors that name the key and the file: a typo must never "work" silently.
`${VAR}` (required) and `${VAR:-default}` are interpolated here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from gateway.errors import ConfigError

DEFAULT_CONFIG_PATH = "config.yaml"
DEFAULT_DATABASE_URL = "sqlite:///flywheel.db"
PROVIDER_TYPES = ("openai_compat", "litellm", "demo")
SCOPES = ("inference", "feedback", "admin")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    # 10 MiB holds a long multi-turn prompt with a few inline images; more is almost
    # always a client bug, and the whole body is held in memory.
    max_body_bytes: int = 10 * 1024 * 1024
    shutdown_timeout: float = 30.0
    # Processes sharing the port (SO_REUSEPORT); 0 means one per CPU core.
    workers: int = 0
    # Past this many requests in flight (per worker) new ones get 503 at once instead of
    # queueing without bound; LLM calls are long, so this is a count, not a rate.
    max_in_flight: int = 1000


@dataclass(frozen=True)
class StorageConfig:
    url: str = DEFAULT_DATABASE_URL
    pool_size: int = 10


@dataclass(frozen=True)
class CaptureConfig:
    enabled: bool = True
    queue_size: int = 10_000
    batch_size: int = 500
    # Where rows wait on disk while the store is down or the queue is full.
    spool_dir: str = "flywheel-spool"
    # A write slower than this counts as a failure and its batch is spooled.
    write_timeout: float = 5.0
    # Seconds a batch may gather before it is written: fewer, larger writes under load. With
    # write_timeout it bounds what `kill -9` can lose (rows not yet written or spooled).
    flush_interval: float = 0.05


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: str = field(repr=False)
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class AuthConfig:
    keys: tuple[ApiKey, ...] = ()


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    # Azure OpenAI authenticates with an `api-key` header instead of a Bearer token.
    api_key_header: str = "Authorization"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    query: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    # Seconds without a single byte from upstream; reasoning models can think for minutes.
    read_timeout: float = 300.0
    litellm_provider: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    name: str
    provider: str
    model: str


@dataclass(frozen=True)
class Price:
    """USD per million tokens; overrides litellm's price table for one upstream model."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None


@dataclass(frozen=True)
class Config:
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    capture: CaptureConfig = CaptureConfig()
    auth: AuthConfig = AuthConfig()
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    pricing: Mapping[str, Price] = field(default_factory=dict)
    source: str = "<defaults>"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, interpolate and validate a config file (default: $FLYWHEEL_CONFIG or ./config.yaml)."""
    path = Path(path or os.environ.get("FLYWHEEL_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    return parse_config(raw, source=str(path))


def parse_config(raw: Any, *, source: str = "<config>") -> Config:
    """Validate an already-parsed mapping; `source` names the file in every error."""
    reader = _Reader(source)
    root = reader.mapping(raw, "")
    reader.known_keys(
        root, "", ("server", "storage", "capture", "auth", "providers", "models", "pricing")
    )
    storage = reader.section(StorageConfig, root.get("storage"), "storage")
    env_url = os.environ.get("FLYWHEEL_DATABASE_URL")
    if env_url:
        storage = StorageConfig(url=env_url, pool_size=storage.pool_size)
    _check_database_url(reader, storage.url)
    providers = {
        name: _provider(reader, name, value)
        for name, value in reader.mapping(root.get("providers", {}), "providers").items()
    }
    models = {
        name: _model(reader, name, value, providers)
        for name, value in reader.mapping(root.get("models", {}), "models").items()
    }
    pricing = {
        name: reader.section(Price, value, f"pricing.{name}")
        for name, value in reader.mapping(root.get("pricing", {}), "pricing").items()
    }
    return Config(
        server=reader.section(ServerConfig, root.get("server"), "server"),
        storage=storage,
        capture=reader.section(CaptureConfig, root.get("capture"), "capture"),
        auth=_auth(reader, root.get("auth")),
        providers=providers,
        models=models,
        pricing=pricing,
        source=source,
    )


def _provider(reader: _Reader, name: str, value: Any) -> ProviderConfig:
    path = f"providers.{name}"
    fields = reader.mapping(value, path)
    provider = reader.section(ProviderConfig, {**fields, "name": name}, path)
    if provider.type not in PROVIDER_TYPES:
        reader.fail(f"{path}.type", f"must be one of {', '.join(PROVIDER_TYPES)}")
    if provider.type == "openai_compat" and not provider.base_url:
        reader.fail(f"{path}.base_url", "is required for an openai_compat provider")
    if provider.base_url:
        parsed = urlparse(provider.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            reader.fail(f"{path}.base_url", f"is not an http(s) URL: {provider.base_url!r}")
    if provider.type == "litellm" and not provider.litellm_provider:
        reader.fail(f"{path}.litellm_provider", "is required (e.g. anthropic)")
    return provider


def _model(
    reader: _Reader, name: str, value: Any, providers: Mapping[str, ProviderConfig]
) -> ModelConfig:
    path = f"models.{name}"
    fields = reader.mapping(value, path)
    model = reader.section(ModelConfig, {"model": name, **fields, "name": name}, path)
    if model.provider not in providers:
        known = ", ".join(providers) or "none"
        reader.fail(f"{path}.provider", f"names unknown provider {model.provider!r} ({known})")
    return model


def _auth(reader: _Reader, value: Any) -> AuthConfig:
    fields = reader.mapping(value or {}, "auth")
    reader.known_keys(fields, "auth", ("keys",))
    keys = []
    for i, item in enumerate(reader.sequence(fields.get("keys", []), "auth.keys")):
        key = reader.section(ApiKey, item, f"auth.keys[{i}]")
        if not key.key:
            reader.fail(f"auth.keys[{i}].key", "is empty")
        unknown = set(key.scopes) - set(SCOPES)
        if unknown:
            reader.fail(f"auth.keys[{i}].scopes", f"unknown scope(s) {sorted(unknown)}")
        keys.append(key)
    return AuthConfig(keys=tuple(keys))


def _check_database_url(reader: _Reader, url: str) -> None:
    scheme = urlparse(url).scheme
    if scheme not in ("sqlite", "postgres", "postgresql"):
        reader.fail("storage.url", f"must start with sqlite:/// or postgresql://, got {url!r}")


class _Reader:
    """Walks the raw YAML, interpolating `${ENV}` and naming the offending key on error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> None:
        raise ConfigError(f"{self.source}: {path or '<top level>'} {problem}")

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {type(value).__name__}")
        return {str(k): v for k, v in value.items()}

    def sequence(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, f"must be a list, got {type(value).__name__}")
        return value

    def known_keys(self, fields: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
        for key in fields:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                self.fail(where, f"is not a known key (expected one of: {', '.join(allowed)})")

    def section(self, cls: type, value: Any, path: str) -> Any:
        """Build dataclass `cls` from a mapping, coercing each field to its annotated type."""
        fields = self.mapping(value, path)
        declared = {f.name: f for f in dataclasses.fields(cls)}
        self.known_keys(fields, path, tuple(declared))
        kwargs = {}
        for key, raw in fields.items():
            kwargs[key] = self._coerce(raw, str(declared[key].type), f"{path}.{key}")
        try:
            return cls(**kwargs)
        except TypeError as exc:
            missing = str(exc).split("argument")[-1].strip(": ")
            self.fail(path, f"is missing required key(s): {missing}")

    def _coerce(self, raw: Any, annotation: str, path: str) -> Any:
        if isinstance(raw, str):
            raw = self._interpolate(raw, path)
        if annotation.startswith("Mapping"):
            items = self.mapping(raw, path).items()
            return {str(k): self._interpolate(str(v), f"{path}.{k}") for k, v in items}
        if annotation.startswith("tuple"):
            return tuple(str(v) for v in self.sequence(raw, path))
        kinds = {"bool": bool, "int": int, "float": float, "str": str}
        base = annotation.split(" | ")[0]
        if raw is None and "None" in annotation:
            return None
        expected = kinds.get(base)
        if expected is None:
            return raw
        if expected is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if expected in (int, float) and isinstance(raw, str):
            try:
                return expected(raw)
            except ValueError:
                self.fail(path, f"must be a number, got {raw!r}")
        if not isinstance(raw, expected) or (expected is int and isinstance(raw, bool)):
            self.fail(path, f"must be {base}, got {type(raw).__name__} {raw!r}")
        return raw

    def _interpolate(self, text: str, path: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None and default is None:
                self.fail(path, f"uses environment variable ${{{name}}}, which is not set")
            # As in the shell: `:-` applies to an empty variable as well as an unset one.
            return value or default or ""

        return _ENV_REF.sub(substitute, text)
