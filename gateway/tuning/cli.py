"""`flywheel tune ...` and `flywheel models ...`: the same functions the admin API calls.

    flywheel tune start --launcher L --base-model M (--export-run ID | --job NAME)
                        [--model NAME --canary-weight PCT] [--wait]
    flywheel tune list | poll | complete RUN --model NAME
    flywheel models [--model NAME]           versions with lineage and status, and the routes
    flywheel models canary MODEL VARIANT --weight PCT [--provider P --upstream-model U]
    flywheel models weights MODEL ARM=W ...
    flywheel models promote|rollback MODEL VARIANT [--reason TEXT]
    flywheel models reset MODEL

Changes go to the store and are audited with the actor `cli:<user>`; running gateways apply
them within `tuning.refresh_interval` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.store import Store, open_store
from gateway.tuning import rollout, runs
from gateway.tuning.launchers import UNFINISHED

T = TypeVar("T")


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    tune = commands.add_parser("tune", parents=[common], help="fine-tuning runs")
    actions = tune.add_subparsers(required=True, metavar="ACTION")
    start = actions.add_parser("start", parents=[common], help="start a fine-tuning job")
    start.add_argument("--launcher", required=True, help="a launcher under tuning.launchers")
    start.add_argument("--base-model", required=True)
    source = start.add_mutually_exclusive_group(required=True)
    source.add_argument("--export-run", help="an export run's id")
    source.add_argument("--job", help="an export job: export now, then tune")
    start.add_argument("--model", help="the Flywheel model the result joins as a canary")
    start.add_argument("--canary-weight", type=float, help="percent of that model's traffic")
    start.add_argument("--wait", action="store_true", help="poll until the job finishes")
    start.set_defaults(command=_start)
    listing = actions.add_parser("list", parents=[common], help="runs, newest first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(command=_list_runs)
    poll = actions.add_parser("poll", parents=[common], help="poll unfinished jobs once")
    poll.set_defaults(command=_poll)
    complete = actions.add_parser(
        "complete", parents=[common], help="record the model a local recipe trained"
    )
    complete.add_argument("run")
    complete.add_argument("--model", required=True, help="the upstream name it is served as")
    complete.set_defaults(command=_complete)

    models = commands.add_parser(
        "models", parents=[common], help="model versions, canaries, promotion and rollback"
    )
    models.add_argument("--model", help="only this model")
    models.add_argument("--json", action="store_true")
    models.set_defaults(command=_list_models)
    changes = models.add_subparsers(required=False, metavar="ACTION")
    canary = changes.add_parser("canary", parents=[common], help="add a version as a canary")
    canary.add_argument("name", metavar="MODEL")
    canary.add_argument("variant")
    canary.add_argument("--weight", type=float, required=True, help="percent of the traffic")
    canary.add_argument("--provider")
    canary.add_argument("--upstream-model")
    canary.set_defaults(command=_canary)
    weights = changes.add_parser("weights", parents=[common], help="set every arm's weight")
    weights.add_argument("name", metavar="MODEL")
    weights.add_argument("weights", nargs="+", metavar="ARM=WEIGHT")
    weights.set_defaults(command=_weights)
    for action, text in (("promote", "give an arm all traffic"), ("rollback", "take an arm out")):
        parser = changes.add_parser(action, parents=[common], help=text)
        parser.add_argument("name", metavar="MODEL")
        parser.add_argument("variant")
        parser.add_argument("--reason")
        parser.set_defaults(command=_decide, action=action)
    reset = changes.add_parser("reset", parents=[common], help="back to config.yaml")
    reset.add_argument("name", metavar="MODEL")
    reset.set_defaults(command=_reset)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _with_store(config: Config, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_store(config.storage.url) as store:
            return await work(store)

    return asyncio.run(run())


def _start(config: Config, args: argparse.Namespace) -> int:
    request = runs.TuneRequest(
        launcher=args.launcher,
        base_model=args.base_model,
        export_run_id=args.export_run,
        job=args.job,
        model=args.model,
        canary_weight=args.canary_weight,
        actor=_actor(),
    )

    async def work(store: Store) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            run = await runs.start_run(store, config, session, request)
            while args.wait and run["status"] in UNFINISHED:
                await asyncio.sleep(config.tuning.poll_interval)
                stored = await store.get_tuning_run(run["id"])
                assert stored is not None
                run = runs.as_json(await runs.poll_run(store, config, session, stored))
            return run

    run = _with_store(config, work)
    print(json.dumps(run, indent=2))
    return 1 if run["status"] == "failed" else 0


def _list_runs(config: Config, args: argparse.Namespace) -> None:
    found = _with_store(config, lambda store: store.tuning_runs(limit=100))
    if args.json:
        print(json.dumps(found, indent=2))
        return
    rows: list[tuple[str, ...]] = [
        ("RUN", "LAUNCHER", "METHOD", "BASE MODEL", "STATUS", "RESULT", "EXPORT RUN")
    ]
    for run in found:
        rows.append(
            (
                run["id"],
                run["launcher"],
                run["method"],
                run["base_model"],
                run["status"],
                run.get("result_model") or run.get("error") or "-",
                run.get("export_run_id") or "-",
            )
        )
    _print(rows)


def _poll(config: Config, args: argparse.Namespace) -> None:
    async def work(store: Store) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            return await runs.poll_runs(store, config, session)

    for run in _with_store(config, work):
        print(f"{run['id']}  {run['status']}  {run.get('result_model') or ''}".rstrip())


def _complete(config: Config, args: argparse.Namespace) -> None:
    run = _with_store(config, lambda s: runs.complete_local(s, config, args.run, args.model))
    print(f"{run['id']}: {run['status']}, {run['result_model']} registered")


def _list_models(config: Config, args: argparse.Namespace) -> None:
    async def work(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        versions = await store.model_versions(args.model)
        names = [args.model] if args.model else sorted(config.models)
        return versions, [await rollout.current(store, config, name) for name in names]

    versions, routes = _with_store(config, work)
    if args.json:
        print(json.dumps({"versions": versions, "routes": routes}, indent=2, default=str))
        return
    rows = [
        ("MODEL", "VARIANT", "STATUS", "UPSTREAM MODEL", "BASE MODEL", "EXPORT RUN", "MANIFEST")
    ]
    for v in versions:
        rows.append(
            (
                v["model"],
                v["variant"],
                v["status"],
                v["upstream_model"],
                v.get("base_model") or "-",
                v.get("export_run_id") or "-",
                (v.get("manifest_sha256") or "-")[:12],
            )
        )
    _print(rows)
    print()
    arm_rows: list[tuple[str, ...]] = [
        ("MODEL", "ARM", "SHARE", "PROVIDER", "UPSTREAM MODEL", "SOURCE")
    ]
    for route in routes:
        source = f"store r{route['revision']}" if route["revision"] else "config.yaml"
        for arm in route["arms"]:
            name = arm["name"] + (" (control)" if arm["name"] == route.get("control") else "")
            share = f"{arm['weight']:.1f}%"
            arm_rows.append((route["model"], name, share, arm["provider"], arm["model"], source))
    _print(arm_rows)


def _canary(config: Config, args: argparse.Namespace) -> None:
    _change(
        config,
        lambda s: rollout.canary(
            s,
            config,
            args.name,
            args.variant,
            args.weight,
            actor=_actor(),
            provider=args.provider,
            upstream_model=args.upstream_model,
        ),
    )


def _weights(config: Config, args: argparse.Namespace) -> None:
    weights = {}
    for item in args.weights:
        arm, _, value = item.partition("=")
        try:
            weights[arm] = float(value)
        except ValueError:
            raise ConfigError(f"weights: expected ARM=WEIGHT, got {item!r}") from None
    _change(config, lambda s: rollout.set_weights(s, config, args.name, weights, actor=_actor()))


def _decide(config: Config, args: argparse.Namespace) -> None:
    act = rollout.promote if args.action == "promote" else rollout.rollback
    _change(
        config,
        lambda s: act(s, config, args.name, args.variant, actor=_actor(), reason=args.reason),
    )


def _reset(config: Config, args: argparse.Namespace) -> None:
    reset = _with_store(config, lambda s: rollout.reset(s, config, args.name, actor=_actor()))
    print(f"{args.name}: {'back to config.yaml' if reset else 'had no override'}")


def _change(config: Config, work: Callable[[Store], Awaitable[dict[str, Any]]]) -> None:
    row = _with_store(config, work)
    arms = ", ".join(f"{a['name']} {a['weight']:.1f}%" for a in row["arms"])
    print(f"{row['model']} (revision {row['revision']}): {arms}; control {row['control']}")


def _print(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
