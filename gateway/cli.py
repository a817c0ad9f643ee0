"""`flywheel` (also `python -m gateway`): parse arguments, load config, call one function.

`sys.exit` lives here and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from gateway.config import DEFAULT_CONFIG_PATH, Config, load_config
from gateway.errors import FlywheelError

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

    migrate = commands.add_parser("migrate", parents=[common], help="apply database migrations")
    migrate.set_defaults(command=_migrate)
    return parser


def _serve(config: Config, args: argparse.Namespace) -> None:
    from gateway.server import serve

    serve(config, host=args.host, port=args.port)


def _check_config(config: Config, args: argparse.Namespace) -> None:
    print(f"{config.source}: OK")
    rows = [("MODEL", "PROVIDER", "TYPE", "UPSTREAM MODEL")]
    for model in config.models.values():
        provider = config.providers[model.provider]
        rows.append((model.name, provider.name, provider.type, model.model))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for provider in config.providers.values():
        if provider.type != "demo" and not provider.api_key:
            print(f"warning: providers.{provider.name}.api_key is empty", file=sys.stderr)
    if not config.auth.keys:
        print("warning: auth.keys is empty: serving 127.0.0.1 only", file=sys.stderr)


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
