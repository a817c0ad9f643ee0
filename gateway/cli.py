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

    export = commands.add_parser(
        "export", parents=[common], help="write a fine-tuning dataset from recorded traffic"
    )
    _export_arguments(export)
    export.set_defaults(command=_export)

    dataset = commands.add_parser(
        "dataset", parents=[common], help="check or merge dataset files"
    ).add_subparsers(required=True, metavar="ACTION")
    validate = dataset.add_parser(
        "validate", parents=[common], help="the exporter's checks on a JSONL file, by line"
    )
    validate.add_argument("file")
    validate.add_argument("--format", required=True, help="the dataset's format (e.g. openai)")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    validate.set_defaults(command=_dataset_validate)
    merge = dataset.add_parser(
        "merge", parents=[common], help="validate, dedup and merge files into one, with a manifest"
    )
    merge.add_argument("files", nargs="+")
    merge.add_argument("--out", required=True, help="the merged .jsonl file")
    merge.add_argument("--format", help="default: from the inputs' manifests")
    merge.set_defaults(command=_dataset_merge)

    migrate = commands.add_parser("migrate", parents=[common], help="apply database migrations")
    migrate.set_defaults(command=_migrate)
    return parser


def _serve(config: Config, args: argparse.Namespace) -> None:
    from gateway.server import serve

    serve(config, host=args.host, port=args.port)


def _check_config(config: Config, args: argparse.Namespace) -> None:
    from gateway.server import listen_host

    listen_host(config, None)  # an open gateway that would listen beyond loopback is an error
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
        print("warning: auth.keys is empty: open to anyone on this machine", file=sys.stderr)
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
        async with open_store(config.storage.url) as store:
            return await compute_readout(store, config, args.model, control, window)

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


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    from exporters.formats import FORMATS

    parser.add_argument(
        "format", nargs="?", choices=list(FORMATS), metavar="FORMAT", help=", ".join(FORMATS)
    )
    parser.add_argument("--out", help="folder to write (created if missing)")
    parser.add_argument("--job", help="run the job `exports.JOB` from the config once instead")
    parser.add_argument(
        "--all", action="store_true", help="with --job: re-export everything, not only what is new"
    )
    group = parser.add_argument_group("selection")
    group.add_argument("--since", help="from this time (ISO 8601, UTC if no offset)")
    group.add_argument("--until", help="before this time")
    group.add_argument("--model", action="append", default=[], help="requested model (repeat)")
    group.add_argument("--variant", action="append", default=[], help="A/B variant (repeat)")
    group.add_argument("--user", action="append", default=[], help="user id (repeat)")
    group.add_argument("--tag", action="append", default=[], help="KEY=VALUE, all must match")
    group.add_argument("--outcome", action="append", default=[], help="latest outcome (repeat)")
    group.add_argument("--min-rating", type=int, help="latest rating at least this")
    group.add_argument("--thumbs", choices=["up", "down"], help="latest thumbs")
    group.add_argument("--min-score", type=float, help="latest score at least this")
    group.add_argument(
        "--include-failed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include failed calls (default: only for csv, jsonl and analytics)",
    )
    group.add_argument(
        "--exclude-flag",
        action="append",
        default=None,
        help="drop rows with this quality flag (repeat; default for training formats: all four)",
    )
    group.add_argument("--max-examples", type=int, help="a seeded random sample of this many")
    group.add_argument("--seed", type=int, default=0, help="sampling and split seed")
    group.add_argument("--validation-fraction", type=float, default=0.1)
    group.add_argument("--max-tokens", type=int, default=65_536, help="drop longer examples")


def _export_job(config: Config, args: argparse.Namespace) -> int:
    from exporters.jobs import FAILED, run_job
    from gateway.store import open_store

    async def run() -> dict[str, Any] | None:
        async with open_store(config.storage.url) as store:
            return await run_job(store, config, args.job, full=args.all)

    run_row = asyncio.run(run())
    if run_row is None:
        print(f"{args.job}: already running elsewhere, not started")
        return 0
    status = run_row["status"]
    if run_row.get("manifest"):
        print(_export_summary(run_row["manifest"], run_row["out_dir"]))
    print(f"{args.job}: {status}" + (f" ({run_row['error']})" if run_row.get("error") else ""))
    return 1 if status == FAILED else 0


def _export(config: Config, args: argparse.Namespace) -> int | None:
    from pathlib import Path

    from exporters.formats import FormatOptions
    from exporters.run import ExportRequest, run_export
    from exporters.selection import Filters
    from gateway.store import open_store

    if args.job:
        return _export_job(config, args)
    if not args.format or not args.out:
        raise ConfigError("export needs FORMAT and --out DIR, or --job NAME")
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--tag wants KEY=VALUE, got {item!r}")
        tags[key] = value
    if not 0 <= args.validation_fraction < 1:
        raise ConfigError("--validation-fraction must be in [0, 1)")
    filters = Filters(
        since=_timestamp(args.since),
        until=_timestamp(args.until),
        models=tuple(args.model),
        variants=tuple(args.variant),
        users=tuple(args.user),
        tags=tags,
        include_failed=args.include_failed,
        outcomes=tuple(args.outcome),
        min_rating=args.min_rating,
        thumbs=args.thumbs,
        min_score=args.min_score,
        exclude_flags=None if args.exclude_flag is None else tuple(args.exclude_flag),
        max_examples=args.max_examples,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
    )
    request = ExportRequest(args.format, filters, FormatOptions(max_tokens=args.max_tokens))

    async def run() -> dict[str, Any]:
        async with open_store(config.storage.url) as store:
            return await run_export(store, config.anonymize, request, Path(args.out))

    manifest = asyncio.run(run())
    print(_export_summary(manifest, args.out))
    return 0


def _export_summary(manifest: dict[str, Any], out: str) -> str:
    counts = manifest["counts"]
    dropped = ", ".join(f"{n} {reason}" for reason, n in counts["dropped"].items() if n)
    read = counts.get("interactions_read")
    source = "" if read is None else f" from {read} interactions"
    lines = [
        f"{manifest['format']}: {counts['records_written']} records{source}"
        f" (dropped: {dropped or 'none'})",
    ]
    for file in manifest["files"]:
        lines.append(f"  {out}/{file['name']}  {file['lines']} lines  {file['bytes']} bytes")
    lines.append(f"  {out}/manifest.json")
    return "\n".join(lines)


def _dataset_validate(config: Config, args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from exporters.dataset import validate_file

    report = validate_file(Path(args.file), args.format)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0 if report.ok else 1


def _dataset_merge(config: Config, args: argparse.Namespace) -> None:
    from pathlib import Path

    from exporters.dataset import manifest_path, merge_files

    manifest = merge_files([Path(f) for f in args.files], Path(args.out), args.format)
    counts = manifest["counts"]
    dropped = ", ".join(f"{n} {reason}" for reason, n in counts["dropped"].items() if n)
    print(f"{args.out}: {counts['records_written']} records (dropped: {dropped or 'none'})")
    print(f"  manifest: {manifest_path(Path(args.out))}")


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
        async with open_store(config.storage.url) as store:
            return await store.migrate()

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
