"""Load `config.yaml` once into frozen, typed objects, validated before anything starts.

Unknown keys are errors that name the key and the file: a typo must never "work" silently.
`${VAR}` (required) and `${VAR:-default}` are interpolated here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from gateway.errors import ConfigError

DEFAULT_CONFIG_PATH = "config.yaml"
DEFAULT_DATABASE_URL = "sqlite:///flywheel.db"
PROVIDER_TYPES = ("openai_compat", "anthropic", "litellm", "demo")
# `review`: may use the console to read and annotate, but not export or reload.
SCOPES = ("inference", "feedback", "admin", "review")
MIN_SECRET_LENGTH = 32
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"  # anything else needs auth.keys (gateway.server.listen_host)
    port: int = 8080
    # Seconds the whole request body may take to arrive; past it, 408. At 60 s a body of the
    # default 10 MiB still arrives over ~1.4 Mbit/s, while a connection that trickles a byte
    # now and then is let go within a minute.
    body_read_timeout: float = 60.0
    # 10 MiB holds a long multi-turn prompt with a few inline images; more is almost
    # always a client bug, and the whole body is held in memory.
    max_body_bytes: int = 10 * 1024 * 1024
    shutdown_timeout: float = 30.0
    # Processes sharing the port (SO_REUSEPORT); 0 means one per CPU core.
    workers: int = 0
    # Past this many requests in flight (per worker) new ones get 503 at once instead of
    # queueing without bound; LLM calls are long, so this is a count, not a rate.
    max_in_flight: int = 1000
    # Browser origins (`https://app.example.com`, or `*`) allowed to POST /v1/feedback; CORS is
    # on that route alone, so a page can never call inference with a key it should not hold.
    cors_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageConfig:
    url: str = DEFAULT_DATABASE_URL
    pool_size: int = 10
    # Where ad-hoc exports from the admin API are written (jobs name their own `out`).
    exports_dir: str = "exports"


@dataclass(frozen=True)
class CaptureRedactConfig:
    """`capture.redact`: which rows the recorder anonymizes before they are written or spooled
    (with the `anonymize` rules), so their raw personal data never touches disk. `true` is
    every row; otherwise rows of the listed requested models, or with any of the tag pairs."""

    all: bool = False
    models: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.all or bool(self.models) or bool(self.tags)


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
    # /readyz fails when queued rows have not moved for this long (a stuck or dead writer).
    stall_timeout: float = 30.0
    redact: CaptureRedactConfig = CaptureRedactConfig()


@dataclass(frozen=True)
class RetentionConfig:
    """`retention`: days each kind of record is kept (None: for ever), enforced by a background
    pass (gateway/privacy/retention.py) in batches of `batch_size` rows."""

    interactions: float | None = None  # with their feedback; also the spool's segments
    feedback: float | None = None
    export_runs: float | None = None  # the run's row and its folder of files
    audit_log: float | None = None
    batch_size: int = 1000
    # Seconds between passes, and the pause between two batches of one pass, which lets the
    # recorder's writes in between (SQLite has one writer).
    interval: float = 3600.0
    pause: float = 0.05


@dataclass(frozen=True)
class FeedbackConfig:
    # Signs the `Flywheel-Feedback-Token` of every response. Unset: a random secret per start,
    # so tokens die with the process (see gateway/feedback/tokens.py).
    token_secret: str | None = field(default=None, repr=False)
    token_ttl: float = 7 * 24 * 3600.0  # seconds a token stays valid: long enough for a review
    # A correction whose edit distance, over the longer text, reaches this is a `major_edit`.
    major_edit_threshold: float = 0.3
    # Ids this process issued lately, accepted before their row is written: ~380 bytes each.
    recent_interactions: int = 20_000


@dataclass(frozen=True)
class ConsoleConfig:
    """The web console at /console (gateway/console/)."""

    enabled: bool = True
    # Signs the console's session cookies. Unset: a random secret per start, so sessions end
    # with the process and each worker of a multi-worker server signs its own (set it there).
    session_secret: str | None = field(default=None, repr=False)
    session_ttl: float = 12 * 3600.0  # seconds a sign-in lasts: one working day
    # Mark the cookie Secure even when the request reached us over plain HTTP (TLS ended at a
    # proxy in front); requests that arrive over TLS get it anyway.
    secure_cookie: bool = False
    # Keep the text-search index up to date (gateway/store/indexer.py; at most a quarter of a
    # core). Off, a search still finds everything, reading the rows not indexed instead.
    search_index: bool = True


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
    # Within a stream this is the idle limit: each byte, keep-alive comments too, restarts it.
    read_timeout: float = 300.0
    # Seconds from sending a request to the last byte of its answer, streamed or not, so an
    # endless stream ends. The openai SDK gives up after 600 s by default: past that the
    # caller is rarely still there.
    total_timeout: float = 600.0
    # Bytes a whole answer may have once decompressed (a gzip bomb stops here), and the most
    # one SSE event may grow to. A long answer with logprobs is a few MiB; the body is held in
    # memory whole, then stored.
    max_response_bytes: int = 32 * 1024 * 1024
    # Bytes a stream may have once decompressed. SSE repeats the chunk's envelope (~150-600
    # bytes) with every token, so a 128k-token answer is 20-80 MiB on the wire.
    max_stream_bytes: int = 128 * 1024 * 1024
    litellm_provider: str | None = None
    # openai_compat: the upstream has OpenAI's Responses API (`/responses`) itself. When false,
    # `/v1/responses` is translated to chat completions for it, as for litellm and demo.
    serves_responses: bool = True


STICKY_MODES = ("auto", "user", "session", "none")


@dataclass(frozen=True)
class AnonymizeConfig:
    """PII rules for exports and `flywheel redact` (see gateway/anonymize.py)."""

    # `default`, `norwegian` (seed 001's [EPOST], [TELEFON], [FNUMMER], [DATO]), or per kind.
    placeholders: Mapping[str, str] = field(default_factory=dict)
    # Extra (kind, regex) rules and word lists, applied before the built-in rules.
    rules: tuple[tuple[str, str], ...] = ()
    words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # User and session ids in exports: `hash` (salted, so one user's examples still group
    # together for the split) or `drop`.
    ids: str = "hash"
    salt: str = ""


@dataclass(frozen=True)
class ExperimentsConfig:
    """When the A/B readout may call a difference: both arms need `min_samples`, and p < alpha."""

    min_samples: int = 100
    alpha: float = 0.05


@dataclass(frozen=True)
class VariantConfig:
    """One arm of an A/B split: where it goes, its relative weight, and what it overrides."""

    name: str
    provider: str
    model: str
    weight: float = 1.0
    # Request fields forced for this arm (temperature, max_tokens...), and a system prompt
    # that replaces the request's own.
    params: Mapping[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    """A requested model name: a plain passthrough (`provider`, `model`) or `variants`."""

    name: str
    provider: str | None = None
    model: str | None = None
    variants: tuple[VariantConfig, ...] = ()
    # Who keeps their arm: `auto` is the user when known, else the session, else per request.
    sticky: str = "auto"
    control: str | None = None
    fallback: str | None = None
    # Hash salt; change it to reshuffle everyone, e.g. for a new experiment on the same name.
    salt: str | None = None


@dataclass(frozen=True)
class Price:
    """USD per million tokens; overrides litellm's price table for one upstream model."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None


@dataclass(frozen=True)
class WebhookConfig:
    """Where a finished export run is announced: a JSON POST, retried with backoff."""

    url: str
    retries: int = 5
    timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportJobConfig:
    """`exports.<name>`: a dataset written on a schedule or on demand (exporters/jobs.py)."""

    name: str
    format: str
    out: str
    filters: Mapping[str, Any] = field(default_factory=dict)  # as exporters.params parses them
    schedule: str | None = None  # cron, five fields, in `timezone`
    timezone: str = "UTC"
    incremental: bool = True
    min_new_examples: int = 0
    max_tokens: int = 65_536
    webhook: WebhookConfig | None = None
    # Processes that redact and build the records (exporters/pool.py). 1 by default: a job
    # often runs beside a gateway serving traffic, which must keep its cores.
    jobs: int = 1


@dataclass(frozen=True)
class LauncherConfig:
    """`tuning.launchers.NAME`: where fine-tuning jobs go (gateway/tuning/launchers.py)."""

    name: str
    type: str  # openai, together or local (a TRL recipe written to disk)
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    # The gateway provider that serves the tuned models (e.g. `openai`).
    serve_with: str | None = None
    suffix: str | None = None


@dataclass(frozen=True)
class PolicyConfig:
    """`tuning.policies.MODEL`: guardrails and automatic promotion (gateway/tuning/policy.py)."""

    model: str
    mode: str = "recommend"  # recommend (write it down) or act (apply it)
    interval: float = 300.0  # seconds between evaluations
    window: float = 7 * 86400.0  # seconds of traffic each evaluation reads
    adaptive: bool = False  # Thompson sampling on the positive rate sets the weights
    min_share: float = 5.0  # percent every arm keeps under adaptive weights
    max_error_rate_increase: float = 0.0  # over the control's, when significant
    max_latency_p95_ratio: float = 1.5
    max_cost_ratio: float = 2.0


@dataclass(frozen=True)
class TriggerConfig:
    """`tuning.triggers.NAME`: when to retrain a model (gateway/tuning/triggers.py)."""

    name: str
    model: str  # whose live traffic is watched, and which gets the canary
    job: str  # the export job that makes the dataset
    launcher: str | None = None  # None: only call the webhook
    base_model: str | None = None
    canary_weight: float = 5.0
    min_positive_rate: float | None = None  # below this over `window`: retrain
    min_samples: int = 50  # judged interactions needed before the rate counts
    max_age: float | None = None  # seconds since the model's last tuning run
    window: float = 86400.0
    interval: float = 3600.0  # seconds between checks
    webhook: str | None = None


@dataclass(frozen=True)
class TuningConfig:
    """`tuning`: fine-tuning launchers, and how often jobs and routing overrides are read."""

    poll_interval: float = 30.0  # seconds between polls of unfinished fine-tuning jobs
    # Seconds between reads of the routing overrides: how soon every replica follows a
    # canary, a promotion or a rollback made on another one.
    refresh_interval: float = 2.0
    recipes_dir: str = "tuning"  # where the `local` launcher writes its TRL recipes
    launchers: Mapping[str, LauncherConfig] = field(default_factory=dict)
    policies: Mapping[str, PolicyConfig] = field(default_factory=dict)
    triggers: Mapping[str, TriggerConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    capture: CaptureConfig = CaptureConfig()
    auth: AuthConfig = AuthConfig()
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    pricing: Mapping[str, Price] = field(default_factory=dict)
    feedback: FeedbackConfig = FeedbackConfig()
    experiments: ExperimentsConfig = ExperimentsConfig()
    anonymize: AnonymizeConfig = AnonymizeConfig()
    exports: Mapping[str, ExportJobConfig] = field(default_factory=dict)
    retention: RetentionConfig = RetentionConfig()
    console: ConsoleConfig = ConsoleConfig()
    tuning: TuningConfig = TuningConfig()
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
        root,
        "",
        (
            "server",
            "storage",
            "capture",
            "auth",
            "providers",
            "models",
            "pricing",
            "feedback",
            "experiments",
            "anonymize",
            "exports",
            "retention",
            "console",
            "tuning",
        ),
    )
    storage = reader.section(StorageConfig, root.get("storage"), "storage")
    env_url = os.environ.get("FLYWHEEL_DATABASE_URL")
    if env_url:
        storage = replace(storage, url=env_url)
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
    server = reader.section(ServerConfig, root.get("server"), "server")
    _check_cors_origins(reader, server.cors_origins)
    return Config(
        server=server,
        storage=storage,
        capture=_capture(reader, root.get("capture"), models),
        auth=_auth(reader, root.get("auth")),
        providers=providers,
        models=models,
        pricing=pricing,
        feedback=_feedback(reader, root.get("feedback")),
        experiments=_experiments(reader, root.get("experiments")),
        anonymize=_anonymize(reader, root.get("anonymize")),
        exports={
            name: _export_job(reader, name, value)
            for name, value in reader.mapping(root.get("exports", {}), "exports").items()
        },
        retention=_retention(reader, root.get("retention")),
        console=_console(reader, root.get("console")),
        tuning=_tuning(reader, root.get("tuning"), providers, models, root.get("exports")),
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
    for key in ("total_timeout", "max_response_bytes", "max_stream_bytes"):
        if getattr(provider, key) <= 0:
            reader.fail(f"{path}.{key}", "must be more than 0")
    return provider


def _model(
    reader: _Reader, name: str, value: Any, providers: Mapping[str, ProviderConfig]
) -> ModelConfig:
    path = f"models.{name}"
    fields = reader.mapping(value, path)
    raw_variants = fields.pop("variants", None)
    if raw_variants is None:
        model = reader.section(ModelConfig, {"model": name, **fields, "name": name}, path)
        if model.provider is None:
            reader.fail(path, "needs a `provider` (a passthrough) or `variants` (an A/B split)")
        _check_provider(reader, f"{path}.provider", model.provider, providers)
        for key in ("sticky", "control", "fallback", "salt"):
            if key in fields:
                reader.fail(f"{path}.{key}", "only applies to a model with `variants`")
        return model
    for key in ("provider", "model"):
        if key in fields:
            reader.fail(f"{path}.{key}", "cannot be combined with `variants` (set it per variant)")
    variants = tuple(
        _variant(reader, f"{path}.variants[{i}]", item, providers)
        for i, item in enumerate(reader.sequence(raw_variants, f"{path}.variants"))
    )
    model = reader.section(ModelConfig, {**fields, "name": name}, path)
    model = dataclasses.replace(model, variants=variants)
    names = [v.name for v in variants]
    if not variants:
        reader.fail(f"{path}.variants", "is empty")
    if len(set(names)) != len(names):
        reader.fail(f"{path}.variants", f"has duplicate names: {names}")
    if sum(v.weight for v in variants) <= 0:
        reader.fail(f"{path}.variants", "weights must add up to more than 0")
    if model.sticky not in STICKY_MODES:
        reader.fail(f"{path}.sticky", f"must be one of {', '.join(STICKY_MODES)}")
    for key in ("control", "fallback"):
        chosen = getattr(model, key)
        if chosen is not None and chosen not in names:
            reader.fail(f"{path}.{key}", f"names unknown variant {chosen!r} ({', '.join(names)})")
    return model


def _capture(reader: _Reader, value: Any, models: Mapping[str, ModelConfig]) -> CaptureConfig:
    fields = reader.mapping(value, "capture")
    raw = fields.pop("redact", None)
    capture: CaptureConfig = reader.section(CaptureConfig, fields, "capture")
    if raw is None or isinstance(raw, bool):
        return replace(capture, redact=CaptureRedactConfig(all=bool(raw)))
    redact: CaptureRedactConfig = reader.section(CaptureRedactConfig, raw, "capture.redact")
    for i, name in enumerate(redact.models):
        # A typo here would silently store raw personal data: name it instead.
        if name not in models:
            known = ", ".join(models) or "none"
            reader.fail(f"capture.redact.models[{i}]", f"names unknown model {name!r} ({known})")
    return replace(capture, redact=redact)


def _retention(reader: _Reader, value: Any) -> RetentionConfig:
    retention: RetentionConfig = reader.section(RetentionConfig, value, "retention")
    for key in ("interactions", "feedback", "export_runs", "audit_log"):
        days = getattr(retention, key)
        if days is not None and days <= 0:
            reader.fail(f"retention.{key}", "must be a number of days more than 0")
    if retention.batch_size < 1:
        reader.fail("retention.batch_size", "must be at least 1")
    if retention.interval <= 0 or retention.pause < 0:
        reader.fail("retention.interval", "must be more than 0 (and pause not negative)")
    return retention


def _anonymize(reader: _Reader, value: Any) -> AnonymizeConfig:
    from gateway.anonymize import DEFAULT_PLACEHOLDERS, NORWEGIAN_PLACEHOLDERS

    fields = reader.mapping(value, "anonymize")
    reader.known_keys(fields, "anonymize", ("placeholders", "rules", "words", "ids", "salt"))
    ids = str(fields.get("ids", "hash"))
    if ids not in ("hash", "drop"):
        reader.fail("anonymize.ids", "must be hash or drop")
    raw = fields.get("placeholders", "default")
    presets = {"default": DEFAULT_PLACEHOLDERS, "norwegian": NORWEGIAN_PLACEHOLDERS}
    if isinstance(raw, str):
        if raw not in presets:
            reader.fail("anonymize.placeholders", "must be default, norwegian or a mapping")
        placeholders = dict(presets[raw])
    else:
        placeholders = {k: str(v) for k, v in reader.mapping(raw, "anonymize.placeholders").items()}
    rules = []
    for i, item in enumerate(reader.sequence(fields.get("rules", []), "anonymize.rules")):
        rule = reader.mapping(item, f"anonymize.rules[{i}]")
        reader.known_keys(rule, f"anonymize.rules[{i}]", ("name", "pattern"))
        try:
            re.compile(str(rule.get("pattern", "")))
        except re.error as exc:
            reader.fail(f"anonymize.rules[{i}].pattern", f"is not a valid regex: {exc}")
        if not rule.get("name") or not rule.get("pattern"):
            reader.fail(f"anonymize.rules[{i}]", "needs a `name` and a `pattern`")
        rules.append((str(rule["name"]), str(rule["pattern"])))
    words = {
        kind: tuple(str(w) for w in reader.sequence(listed, f"anonymize.words.{kind}"))
        for kind, listed in reader.mapping(fields.get("words"), "anonymize.words").items()
    }
    return AnonymizeConfig(
        placeholders=placeholders,
        rules=tuple(rules),
        words=words,
        ids=ids,
        salt=reader.interpolate(str(fields.get("salt") or ""), "anonymize.salt"),
    )


def _export_job(reader: _Reader, name: str, value: Any) -> ExportJobConfig:
    # Imported here: the exporters are only loaded when a config has jobs.
    from exporters.formats import FORMATS
    from exporters.params import parse_filters
    from exporters.schedule import Schedule

    path = f"exports.{name}"
    fields = dict(reader.mapping(value, path))
    if not fields.get("format") or not fields.get("out"):
        reader.fail(path, "needs a `format` and an `out` folder")
    if fields["format"] not in FORMATS:
        reader.fail(f"{path}.format", f"must be one of {', '.join(FORMATS)}")
    filters = reader.mapping(fields.pop("filters", None), f"{path}.filters")
    try:
        parse_filters(filters, f"{path}.filters")
    except ConfigError as exc:
        reader.fail(f"{path}.filters", str(exc).split(": ", 1)[-1])
    webhook = fields.pop("webhook", None)
    if isinstance(webhook, str):
        webhook = {"url": webhook}
    job: ExportJobConfig = reader.section(ExportJobConfig, {**fields, "name": name}, path)
    if job.schedule is not None:
        try:
            Schedule.parse(job.schedule, job.timezone)
        except ConfigError as exc:
            reader.fail(f"{path}.schedule", str(exc))
    if job.min_new_examples < 0:
        reader.fail(f"{path}.min_new_examples", "must be 0 or more")
    if job.jobs < 1:
        reader.fail(f"{path}.jobs", "must be 1 or more")
    return replace(
        job,
        filters=filters,
        webhook=None
        if webhook is None
        else reader.section(WebhookConfig, webhook, f"{path}.webhook"),
    )


def _experiments(reader: _Reader, value: Any) -> ExperimentsConfig:
    config: ExperimentsConfig = reader.section(ExperimentsConfig, value, "experiments")
    if config.min_samples < 2:
        reader.fail("experiments.min_samples", "must be at least 2")
    if not 0 < config.alpha < 1:
        reader.fail("experiments.alpha", "must be between 0 and 1")
    return config


def _variant(
    reader: _Reader, path: str, value: Any, providers: Mapping[str, ProviderConfig]
) -> VariantConfig:
    fields = reader.mapping(value, path)
    # `params` are request fields: keep their YAML types (numbers stay numbers).
    params = reader.mapping(fields.pop("params", None), f"{path}.params")
    variant = reader.section(VariantConfig, fields, path)
    if variant.weight < 0:
        reader.fail(f"{path}.weight", "must not be negative")
    if "model" in params or "messages" in params:
        reader.fail(f"{path}.params", "cannot override `model` or `messages`")
    _check_provider(reader, f"{path}.provider", variant.provider, providers)
    return dataclasses.replace(variant, params=params)


def _check_provider(
    reader: _Reader, path: str, provider: str, providers: Mapping[str, ProviderConfig]
) -> None:
    if provider not in providers:
        known = ", ".join(providers) or "none"
        reader.fail(path, f"names unknown provider {provider!r} ({known})")


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


def _feedback(reader: _Reader, value: Any) -> FeedbackConfig:
    feedback = reader.section(FeedbackConfig, value, "feedback")
    if not feedback.token_secret:  # `${FLYWHEEL_FEEDBACK_SECRET:-}` left empty means unset
        feedback = dataclasses.replace(feedback, token_secret=None)
    elif len(feedback.token_secret) < MIN_SECRET_LENGTH:
        # A short secret can be guessed offline from any one token, and then forges them all.
        reader.fail(
            "feedback.token_secret", f"must be at least {MIN_SECRET_LENGTH} characters long"
        )
    if feedback.token_ttl <= 0:
        reader.fail("feedback.token_ttl", "must be more than 0 seconds")
    if not 0 < feedback.major_edit_threshold <= 1:
        reader.fail("feedback.major_edit_threshold", "must be in (0, 1]")
    if feedback.recent_interactions < 0:
        reader.fail("feedback.recent_interactions", "must not be negative")
    return feedback


def _console(reader: _Reader, value: Any) -> ConsoleConfig:
    console = reader.section(ConsoleConfig, value, "console")
    if not console.session_secret:  # `${FLYWHEEL_CONSOLE_SECRET:-}` left empty means unset
        console = dataclasses.replace(console, session_secret=None)
    elif len(console.session_secret) < MIN_SECRET_LENGTH:
        # Anyone who guesses it signs themselves in as any admin key's name.
        reader.fail(
            "console.session_secret", f"must be at least {MIN_SECRET_LENGTH} characters long"
        )
    if console.session_ttl <= 0:
        reader.fail("console.session_ttl", "must be more than 0 seconds")
    return console


LAUNCHER_TYPES = ("openai", "together", "local")


def _tuning(
    reader: _Reader,
    value: Any,
    providers: Mapping[str, ProviderConfig],
    models: Mapping[str, ModelConfig],
    exports: Any,
) -> TuningConfig:
    fields = reader.mapping(value, "tuning")
    raw = reader.mapping(fields.pop("launchers", None), "tuning.launchers")
    raw_policies = reader.mapping(fields.pop("policies", None), "tuning.policies")
    raw_triggers = reader.mapping(fields.pop("triggers", None), "tuning.triggers")
    tuning: TuningConfig = reader.section(TuningConfig, fields, "tuning")
    if tuning.poll_interval <= 0 or tuning.refresh_interval <= 0:
        reader.fail("tuning.poll_interval", "and refresh_interval must be more than 0 seconds")
    launchers = {}
    for name, item in raw.items():
        path = f"tuning.launchers.{name}"
        fields = {**reader.mapping(item, path), "name": name}
        launcher: LauncherConfig = reader.section(LauncherConfig, fields, path)
        if launcher.type not in LAUNCHER_TYPES:
            reader.fail(f"{path}.type", f"must be one of {', '.join(LAUNCHER_TYPES)}")
        if launcher.type != "local" and not launcher.base_url:
            reader.fail(f"{path}.base_url", f"is required for a {launcher.type} launcher")
        if launcher.serve_with is not None:
            _check_provider(reader, f"{path}.serve_with", launcher.serve_with, providers)
        launchers[name] = launcher
    policies = {}
    for name, item in raw_policies.items():
        path = f"tuning.policies.{name}"
        fields = {**reader.mapping(item, path), "model": name}
        policy: PolicyConfig = reader.section(PolicyConfig, fields, path)
        _check_model(reader, path, name, models)
        if policy.mode not in ("recommend", "act"):
            reader.fail(f"{path}.mode", "must be recommend or act")
        if policy.interval <= 0 or policy.window <= 0 or not 0 <= policy.min_share < 50:
            reader.fail(path, "needs interval and window above 0, and min_share in [0, 50)")
        policies[name] = policy
    triggers = {}
    jobs = reader.mapping(exports, "exports")
    for name, item in raw_triggers.items():
        path = f"tuning.triggers.{name}"
        trigger: TriggerConfig = reader.section(
            TriggerConfig, {**reader.mapping(item, path), "name": name}, path
        )
        _check_model(reader, f"{path}.model", trigger.model, models)
        if trigger.job not in jobs:
            reader.fail(f"{path}.job", f"names unknown export job {trigger.job!r}")
        if trigger.launcher is not None and (
            trigger.launcher not in launchers or not trigger.base_model
        ):
            reader.fail(f"{path}.launcher", "must name a launcher, with a `base_model`")
        if trigger.launcher is None and trigger.webhook is None:
            reader.fail(path, "needs a `launcher` (retrain) or a `webhook` (tell someone)")
        if trigger.min_positive_rate is None and trigger.max_age is None:
            reader.fail(path, "needs `min_positive_rate` or `max_age` (or both)")
        triggers[name] = trigger
    return replace(tuning, launchers=launchers, policies=policies, triggers=triggers)


def _check_model(reader: _Reader, path: str, name: str, models: Mapping[str, ModelConfig]) -> None:
    if name not in models:
        reader.fail(path, f"names unknown model {name!r} ({', '.join(models) or 'none'})")


def _check_cors_origins(reader: _Reader, origins: tuple[str, ...]) -> None:
    for i, origin in enumerate(origins):
        parsed = urlparse(origin)
        # Browsers send `scheme://host[:port]` exactly; a path or trailing slash never matches.
        exact = parsed.scheme in ("http", "https") and parsed.netloc and origin.count("/") == 2
        if origin != "*" and not exact:
            reader.fail(
                f"server.cors_origins[{i}]",
                f"must be an origin like https://app.example.com (or *), got {origin!r}",
            )


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
            raw = self.interpolate(raw, path)
        if annotation.startswith("Mapping"):
            items = self.mapping(raw, path).items()
            return {str(k): self.interpolate(str(v), f"{path}.{k}") for k, v in items}
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

    def interpolate(self, text: str, path: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None and default is None:
                self.fail(path, f"uses environment variable ${{{name}}}, which is not set")
            # As in the shell: `:-` applies to an empty variable as well as an unset one.
            return value or default or ""

        return _ENV_REF.sub(substitute, text)
