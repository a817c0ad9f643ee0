"""`flywheel` (also `python -m gateway`): parse arguments, load config, call one function.

`sys.exit` lives here and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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
    merge.add_argument("--out", required=True, help="the merged .jsonl file (--shards: folder)")
    merge.add_argument(
        "--shards",
        action="store_true",
        help="FILES are the folders of one `export --shard I/N` each: merge them into the"
        " --out folder as one export (global dedup, same order and split)",
    )
    merge.add_argument("--replace", action="store_true", help="with --shards: as for export")
    merge.add_argument("--format", help="default: from the inputs' manifests")
    merge.set_defaults(command=_dataset_merge)

    forget = commands.add_parser(
        "forget",
        parents=[common],
        help="delete a person's interactions and feedback, purge the spool, list the exports",
    )
    who = forget.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user id (Flywheel-User, or OpenAI's `user`)")
    who.add_argument("--session", help="the session id (Flywheel-Session)")
    forget.add_argument("--json", action="store_true", help="print the JSON the API returns")
    forget.set_defaults(command=_forget)

    retention = commands.add_parser(
        "retention", parents=[common], help="delete what `retention` no longer keeps, now"
    )
    retention.set_defaults(command=_retention)

    from gateway.tuning.cli import add_commands as add_tuning_commands

    add_tuning_commands(commands, common)  # `tune` and `models` (gateway/tuning/cli.py)
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
    from exporters.formats import DESCRIPTIONS, FORMATS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    width = max(len(name) for name in FORMATS)
    parser.epilog = "formats:\n" + "\n".join(
        f"  {name.ljust(width)}  {DESCRIPTIONS[name]}" for name in FORMATS
    )
    parser.add_argument(
        "format",
        nargs="?",
        choices=list(FORMATS),
        metavar="FORMAT",
        help="what to write (listed below)",
    )
    parser.add_argument("--out", help="folder to write (created if missing; must be empty)")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="--out holds an earlier export: remove its files first",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that redact (default: the number of cores; the output is the same)",
    )
    parser.add_argument(
        "--output-format",
        choices=["jsonl", "parquet"],
        default="jsonl",
        help="the files: JSON lines, or Parquet for huggingface (needs flywheel-gateway[parquet])",
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="export slice I of N (0-based) for `flywheel dataset merge --shards`",
    )
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
    from exporters.jobs import system_prompt_variants
    from exporters.progress import ProgressLine
    from exporters.run import ExportRequest, run_export
    from exporters.selection import Filters
    from exporters.shards import Shard
    from gateway import collector
    from gateway.store import open_store

    collector.settle()  # an export is a process of its own (gateway/collector.py)
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
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
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
    options = FormatOptions(
        max_tokens=args.max_tokens,
        system_prompt_variants=system_prompt_variants(config),
        output=args.output_format,
    )
    shard = Shard.parse(args.shard) if args.shard else None
    request = ExportRequest(args.format, filters, options, shard=shard)
    # On a terminal one line redrawn in place; in a log, a line every few seconds.
    progress = ProgressLine(sys.stderr)

    async def run() -> dict[str, Any]:
        async with open_store(config.storage.url) as store:
            return await run_export(
                store,
                config.anonymize,
                request,
                Path(args.out),
                replace=args.replace,
                progress=progress,
                jobs=args.jobs,
            )

    manifest = asyncio.run(run())
    progress.finish()
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
    for reason, reasons in counts.get("dropped_by_reason", {}).items():
        if reasons:
            listed = ", ".join(f"{n} {why}" for why, n in reasons.items())
            lines.append(f"  {reason}: {listed}")
    if counts.get("turns_zero_weighted"):
        lines.append(
            f"  turns given weight 0 (thrown away by the user): {counts['turns_zero_weighted']}"
        )
    if "pairs_built" in counts:
        built = ", ".join(f"{n} {source}" for source, n in counts["pairs_built"].items())
        never = ", ".join(f"{n} {why}" for why, n in counts["held_never_paired"].items())
        lines.append(f"  pairs built: {built}; held and never paired: {never or 'none'}")
    for file in manifest["files"]:
        # A CSV cell may span lines: the records, not the lines, say how many rows it holds.
        size = f"{file['records']} records" if "records" in file else f"{file['lines']} lines"
        lines.append(f"  {out}/{file['name']}  {size}  {file['bytes']} bytes")
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
    from exporters.shards import merge_shards

    if args.shards:
        merged = merge_shards([Path(f) for f in args.files], Path(args.out), replace=args.replace)
        print(_export_summary(merged, args.out))
        return
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


def _forget(config: Config, args: argparse.Namespace) -> None:
    import getpass
    import json

    from gateway.privacy.audit import record_action
    from gateway.privacy.forget import forget
    from gateway.spool import Spool
    from gateway.store import open_store

    kind, value = ("user", args.user) if args.user is not None else ("session", args.session)

    async def run() -> dict[str, Any]:
        async with open_store(config.storage.url) as store:
            spool = Spool(config.capture.spool_dir)
            result = await forget(store, spool, config.anonymize.salt, kind, value)
            detail = {"deleted": result["deleted"], "export_runs": len(result["export_runs"])}
            actor = f"cli:{getpass.getuser()}"
            await record_action(
                store, actor, f"forget.{kind}", result["subject_hash"], detail=detail
            )
            return result

    result = asyncio.run(run())
    if args.json:
        print(json.dumps(result, indent=2))
        return
    deleted, spool = result["deleted"], result["spool"]
    print(
        f"forgot {kind} {value}: {deleted['interactions']} interactions,"
        f" {deleted['feedback']} feedback events, {spool['rows_removed']} spooled rows"
    )
    if spool["segments_in_use"]:
        print(
            f"  {spool['segments_in_use']} spool segments in use by a running gateway: its"
            " recorder drops this person's rows from them"
        )
    for held in result["export_runs"]:
        job = held["job"] or "ad hoc"
        print(f"  in export run {held['id']} ({job}, {held['format']}, {held['started_at']}):")
        print(f"    rebuild {held['out_dir']}")
    if not result["export_runs"]:
        print("  in no recorded export run")


def _retention(config: Config, args: argparse.Namespace) -> None:
    from gateway.privacy.retention import DAY, retention_pass
    from gateway.spool import Spool
    from gateway.store import open_store

    policy = config.retention

    async def run() -> dict[str, int]:
        async with open_store(config.storage.url) as store:
            deleted = dict(await retention_pass(store, policy))
        if policy.interactions is not None:
            spool = Spool(config.capture.spool_dir)
            if removed := spool.expire(policy.interactions * DAY):
                deleted["spool_files"] = removed
        return deleted

    deleted = asyncio.run(run())
    print("deleted: " + (", ".join(f"{n} {kind}" for kind, n in deleted.items()) or "nothing"))
