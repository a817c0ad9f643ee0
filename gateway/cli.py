"""`flywheel` (also `python -m gateway`): parse arguments, load config, call one function.

`sys.exit` lives here and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.config import DEFAULT_CONFIG_PATH, Config, ModelConfig, load_config
from gateway.errors import ConfigError, FlywheelError

log = logging.getLogger("gateway")


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, getattr(args, "log_level", "info").upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(getattr(args, "config", None))
        sys.exit(args.command(config, args) or 0)
    except FlywheelError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    # The shared options are accepted before or after the command (`flywheel --config X serve`
    # and `flywheel serve --config X`); SUPPRESS keeps the sub-command from resetting them.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help=f"config file (default: $FLYWHEEL_CONFIG or ./{DEFAULT_CONFIG_PATH})",
    )
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, choices=["debug", "info", "warning", "error"]
    )
    parser = argparse.ArgumentParser(prog="flywheel", description=__doc__, parents=[common])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the gateway")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.set_defaults(command=_serve)

    check = commands.add_parser(
        "check-config", parents=[common], help="validate the config and print the models"
    )
    check.set_defaults(command=_check_config)

    experiments = commands.add_parser(
        "experiments", parents=[common], help="the A/B readout of a model, as a table"
    )
    experiments.add_argument("model", help="a model name with variants in the config")
    experiments.add_argument("--since", help="start of the window (ISO 8601, UTC if no offset)")
    experiments.add_argument("--until", help="end of the window (ISO 8601)")
    experiments.add_argument("--json", action="store_true", help="print the JSON the API returns")
    experiments.set_defaults(command=_experiments)

    redact = commands.add_parser(
        "redact", parents=[common], help="remove personal data from stdin, line by line"
    )
    redact.add_argument(
        "--jsonl", action="store_true", help="each line is JSON: redact every string value in it"
    )
    redact.set_defaults(command=_redact)

    migrate = commands.add_parser("migrate", parents=[common], help="apply database migrations")
    migrate.set_defaults(command=_migrate)
    return parser


def _serve(config: Config, args: argparse.Namespace) -> None:
    from gateway.server import serve

    serve(config, host=args.host, port=args.port)


def _check_config(config: Config, args: argparse.Namespace) -> None:
    print(f"{config.source}: OK")
    rows = [("MODEL", "VARIANT", "SHARE", "PROVIDER", "TYPE", "UPSTREAM MODEL")]
    for model in config.models.values():
        if not model.variants:
            assert model.provider is not None
            provider = config.providers[model.provider]
            upstream = model.model or model.name
            rows.append((model.name, "-", "100%", provider.name, provider.type, upstream))
            continue
        total = sum(v.weight for v in model.variants)
        for variant in model.variants:
            provider = config.providers[variant.provider]
            share = f"{variant.weight / total:.0%}"
            name = variant.name + (" (control)" if variant.name == _control(model) else "")
            rows.append((model.name, name, share, provider.name, provider.type, variant.model))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for provider in config.providers.values():
        if provider.type != "demo" and not provider.api_key:
            print(f"warning: providers.{provider.name}.api_key is empty", file=sys.stderr)
    if not config.auth.keys:
        print("warning: auth.keys is empty: serving 127.0.0.1 only", file=sys.stderr)
    if config.feedback.token_secret is None:
        print(
            "warning: feedback.token_secret is empty: feedback tokens will not survive a restart",
            file=sys.stderr,
        )


def _experiments(config: Config, args: argparse.Namespace) -> None:
    import json

    from gateway.admin.experiments import compute_readout
    from gateway.experiments import format_readout
    from gateway.routing import Router
    from gateway.store import open_store
    from gateway.store.queries import TimeWindow

    control = Router(config.models, config.providers).control(args.model)
    window = TimeWindow(since=_timestamp(args.since), until=_timestamp(args.until))

    async def run() -> dict[str, Any]:
        store = await open_store(config.storage.url)
        try:
            return await compute_readout(store, config, args.model, control, window)
        finally:
            await store.close()

    result = asyncio.run(run())
    print(json.dumps(result, indent=2) if args.json else format_readout(result))


def _redact(config: Config, args: argparse.Namespace) -> None:
    from gateway.anonymize import Anonymizer, redact_json

    anonymizer = Anonymizer.from_config(config.anonymize)
    for line in sys.stdin:
        text = line.rstrip("\n")
        if args.jsonl and text.strip():
            sys.stdout.write(redact_json(anonymizer, text) + "\n")
        else:
            sys.stdout.write(anonymizer.redact(text).text + "\n")


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"not an ISO 8601 timestamp: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _control(model: ModelConfig) -> str | None:
    return model.control or (model.variants[0].name if model.variants else None)


def _migrate(config: Config, args: argparse.Namespace) -> None:
    from gateway.store import open_store

    async def run() -> list[str]:
        store = await open_store(config.storage.url)
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
