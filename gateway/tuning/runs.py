"""Fine-tuning runs: start one from an export run, poll the unfinished ones, register the result.

Every run is a `tuning_runs` row before anything is sent to a provider, and is updated after
each call, so a restart loses nothing: the poller reads the unfinished rows again and carries
on. Polling runs under `job_lock("flywheel-tuning-poll")`: over one PostgreSQL only one
replica polls at a time. A finished run registers its model as a version with its lineage (the
export run, the manifest's hash, the base model) and, when the run names a Flywheel model and
a canary weight, puts it in front of that share of traffic (gateway/tuning/rollout.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.config import Config
from gateway.errors import ApiError, NotFound, ValidationFailed
from gateway.ids import uuid7
from gateway.routing import Router
from gateway.store import Store
from gateway.tuning import rollout
from gateway.tuning.launchers import (
    FAILED,
    RECIPE_WRITTEN,
    SUCCEEDED,
    UNFINISHED,
    JobState,
    Launcher,
    LaunchError,
    TrainingFiles,
    build_launcher,
)

log = logging.getLogger(__name__)
POLL_LOCK = "flywheel-tuning-poll"


@dataclass(frozen=True)
class TuneRequest:
    launcher: str
    base_model: str
    export_run_id: str | None = None
    job: str | None = None  # export first, with this job of `exports:`
    model: str | None = None  # the Flywheel model the result joins as a canary
    canary_weight: float | None = None  # percent of that model's traffic
    actor: str | None = None


def launcher_for(config: Config, session: aiohttp.ClientSession, name: str) -> Launcher:
    launcher = config.tuning.launchers.get(name)
    if launcher is None:
        known = ", ".join(config.tuning.launchers) or "none configured"
        raise ValidationFailed(f"launcher: no launcher named {name!r} (tuning.launchers: {known})")
    return build_launcher(launcher, session, Path(config.tuning.recipes_dir))


async def start_run(
    store: Store, config: Config, session: aiohttp.ClientSession, request: TuneRequest
) -> dict[str, Any]:
    """Start a fine-tuning job from an export run (or a job's new run); the recorded row."""
    launcher = launcher_for(config, session, request.launcher)
    if request.model is not None and request.model not in config.models:
        raise ValidationFailed(f"model: {request.model!r} is not a model of config.yaml")
    weight = request.canary_weight
    if weight is not None and not 0 < weight < 100:
        raise ValidationFailed("canary_weight: a percentage between 0 and 100")
    export = await _export_run(store, config, request)
    method = _method(launcher, export["format"])
    now = datetime.now(UTC)
    run: dict[str, Any] = {
        "id": uuid7(),
        "created_at": now,
        "updated_at": now,
        "export_run_id": export["id"],
        "manifest_sha256": manifest_hash(export),
        "launcher": launcher.name,
        "backend": launcher.backend,
        "method": method,
        "base_model": request.base_model,
        "model": request.model,
        "status": "starting",
        "detail": {"canary_weight": request.canary_weight, "requested_by": request.actor},
    }
    await store.save_tuning_run(run)
    try:
        files = training_files(export, method)
        external_id, state = await launcher.start(run["id"], request.base_model, files)
    except LaunchError as exc:
        log.warning("tuning run %s: %s", run["id"], exc)
        run.update(status=FAILED, error=str(exc), finished_at=datetime.now(UTC))
    else:
        run["external_id"] = external_id
        _apply(run, state)
    run["updated_at"] = datetime.now(UTC)
    await store.save_tuning_run(run)
    log.info("tuning run %s on %s: %s", run["id"], launcher.name, run["status"])
    return as_json(run)


async def poll_runs(
    store: Store, config: Config, session: aiohttp.ClientSession, router: Router | None = None
) -> list[dict[str, Any]]:
    """Poll every unfinished run once (if no other replica is polling); the runs polled."""
    polled = []
    async with store.job_lock(POLL_LOCK) as acquired:
        if not acquired:
            return []
        for run in await store.tuning_runs(statuses=UNFINISHED, limit=500):
            polled.append(await poll_run(store, config, session, run, router))
    return polled


async def poll_run(
    store: Store,
    config: Config,
    session: aiohttp.ClientSession,
    run: dict[str, Any],
    router: Router | None = None,
) -> dict[str, Any]:
    if run["launcher"] not in config.tuning.launchers or not run.get("external_id"):
        return run  # a launcher removed from config: kept, reported, not polled
    launcher = launcher_for(config, session, run["launcher"])
    try:
        state = await launcher.poll(run["external_id"])
    except LaunchError as exc:
        # A provider that does not answer now may answer at the next poll.
        log.warning("tuning run %s: poll failed, trying again later: %s", run["id"], exc)
        return run
    before = run["status"]
    _apply(run, state)
    if before != SUCCEEDED and run["status"] == SUCCEEDED:
        # The version (and its canary) first, so whoever sees `succeeded` sees the model serving;
        # if this replica dies in between, the next poll registers it (once: see register_version).
        await register_version(store, config, run, router)
    if run["status"] != before or state.result_model:
        run["updated_at"] = datetime.now(UTC)
        await store.save_tuning_run(run)
    return run


async def complete_local(
    store: Store, config: Config, run_id: str, result_model: str, router: Router | None = None
) -> dict[str, Any]:
    """A `local` run trained by hand: record the model it produced and register it."""
    run = await store.get_tuning_run(run_id)
    if run is None:
        raise NotFound(f"No tuning run {run_id}.")
    if run["status"] != RECIPE_WRITTEN:
        raise ValidationFailed(f"run {run_id} is {run['status']}, not {RECIPE_WRITTEN}")
    now = datetime.now(UTC)
    run.update(status=SUCCEEDED, result_model=result_model, finished_at=now, updated_at=now)
    await register_version(store, config, run, router)
    await store.save_tuning_run(run)
    return run


async def register_version(
    store: Store, config: Config, run: dict[str, Any], router: Router | None = None
) -> dict[str, Any]:
    """The run's model as a version of `run.model` (or of itself), with its lineage; once."""
    model = run.get("model") or run["result_model"]
    for existing in await store.model_versions(model):
        if existing.get("tuning_run_id") == run["id"]:
            return existing
    launcher = config.tuning.launchers.get(run["launcher"])
    now = datetime.now(UTC)
    version = {
        "id": uuid7(),
        "created_at": now,
        "updated_at": now,
        "model": model,
        "variant": f"ft-{run['id'][-8:]}",
        "provider": (launcher.serve_with if launcher else None) or run["launcher"],
        "upstream_model": run["result_model"],
        "base_model": run["base_model"],
        "tuning_run_id": run["id"],
        "export_run_id": run.get("export_run_id"),
        "manifest_sha256": run.get("manifest_sha256"),
        "status": rollout.CANDIDATE,
    }
    await store.save_model_version(version)
    log.info(
        "tuning run %s: registered %s as %s", run["id"], run["result_model"], version["variant"]
    )
    weight = (run.get("detail") or {}).get("canary_weight")
    if run.get("model") and weight:
        try:
            await rollout.canary(
                store,
                config,
                run["model"],
                version["variant"],
                weight,
                actor="tuning",
                router=router,
                provider=version["provider"],
                upstream_model=version["upstream_model"],
            )
        except ApiError as exc:  # e.g. `serve_with` no longer names a provider
            log.error("tuning run %s: registered, not made a canary: %s", run["id"], exc)
            return version
        version["status"] = rollout.CANARY
    return version


def training_files(export: dict[str, Any], method: str) -> TrainingFiles:
    out = Path(export.get("out_dir") or "")
    names = [str(n) for n in export.get("files") or []]

    def find(split: str) -> Path | None:
        for name in names:
            if name == f"{split}.jsonl" or name.endswith(f"/{split}.jsonl"):
                return out / name
        return None

    train = find("train")
    if train is None or not train.is_file():
        raise LaunchError(f"export run {export['id']} has no train.jsonl in {out}")
    return TrainingFiles(method=method, train=train, validation=find("validation"))


def manifest_hash(export: dict[str, Any]) -> str | None:
    """The sha256 of the run's manifest.json as written (else of the stored manifest)."""
    path = Path(export.get("out_dir") or "") / "manifest.json"
    if export.get("out_dir") and path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if export.get("manifest") is not None:
        return hashlib.sha256(
            orjson.dumps(export["manifest"], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
    return None


async def _export_run(store: Store, config: Config, request: TuneRequest) -> dict[str, Any]:
    if request.export_run_id is None and request.job is None:
        raise ValidationFailed("export_run_id: give an export run, or a `job` to export first")
    if request.export_run_id is not None:
        export = await store.get_export_run(request.export_run_id)
        if export is None:
            raise NotFound(f"No export run {request.export_run_id}.")
    else:
        from exporters.jobs import run_job

        job = request.job
        if job is None or job not in config.exports:
            raise ValidationFailed(f"job: no export job named {job!r}")
        export = await run_job(store, config, job)
        if export is None:
            raise ValidationFailed(f"job: {request.job} is running elsewhere; try again")
    if export["status"] != "succeeded":
        raise ValidationFailed(f"export run {export['id']} is {export['status']}, not succeeded")
    return export


def _method(launcher: Launcher, export_format: str) -> str:
    try:
        return launcher.method_for(export_format)
    except LaunchError as exc:
        raise ValidationFailed(str(exc)) from exc


def _apply(run: dict[str, Any], state: JobState) -> None:
    run["status"] = state.status
    run["detail"] = {**(run.get("detail") or {}), **state.detail}
    if state.provider_status:
        run["detail"]["provider_status"] = state.provider_status
    for key in ("result_model", "trained_tokens", "cost_usd", "error"):
        value = getattr(state, key)
        if value is not None:
            run[key] = value
    if state.status in (SUCCEEDED, FAILED, "cancelled") and not run.get("finished_at"):
        run["finished_at"] = datetime.now(UTC)


def as_json(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in run.items()}
