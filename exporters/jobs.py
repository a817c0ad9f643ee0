"""Export runs that are recorded: ad-hoc ones (admin API) and named jobs from `exports:`.

Every run is a row in `export_runs` (running, then succeeded / failed / skipped) and a folder
`<out>/<start time>-<id>/` with its files and manifest. A job is incremental by default: it
exports the examples created or given feedback since the watermark of its last successful run
(that run's start), so an answer rated tomorrow is exported tomorrow. A failed or skipped run
leaves the watermark where it was.

A job runs under `store.job_lock(name)`: across replicas over one PostgreSQL only one runs it,
and a replica that gets the lock after another has already run this firing skips it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from exporters.formats import FormatOptions
from exporters.params import parse_filters
from exporters.progress import RunProgress
from exporters.run import ExportRequest, run_export
from gateway.config import Config, ExportJobConfig, WebhookConfig
from gateway.errors import ConfigError
from gateway.ids import uuid7
from gateway.store.base import ExportJobs

log = logging.getLogger("exporters.jobs")
SUCCEEDED, FAILED, SKIPPED, RUNNING = "succeeded", "failed", "skipped", "running"


async def run_recorded(
    store: ExportJobs,
    config: Config,
    request: ExportRequest,
    out_root: Path,
    job: str | None = None,
    run_id: str | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run one export into a new folder under `out_root`, recording it (its progress too, in
    the row, every few seconds); returns the run row. `jobs`: processes that redact
    (exporters.pool)."""
    started = datetime.now(UTC)
    run: dict[str, Any] = {
        "id": run_id or str(uuid7()),
        "job": job,
        "format": request.format,
        "status": RUNNING,
        "started_at": started,
        "files": [],
    }
    run["out_dir"] = str(Path(out_root) / f"{started:%Y%m%dT%H%M%SZ}-{run['id'][-8:]}")
    await store.save_export_run(run)
    progress = RunProgress(store, run)
    try:
        manifest = await run_export(
            store, config.anonymize, request, Path(run["out_dir"]), progress=progress, jobs=jobs
        )
    except Exception as exc:
        log.exception("export run %s (%s) failed", run["id"], job or "ad hoc")
        await progress.close()
        run.update(status=FAILED, finished_at=datetime.now(UTC), error=str(exc) or repr(exc))
        await store.save_export_run(run)
        return run
    await progress.close()
    run.update(
        status=SUCCEEDED,
        finished_at=datetime.now(UTC),
        # Everything that changed before this run started is in it.
        watermark=started,
        rows=manifest["counts"]["records_written"],
        files=[file["name"] for file in manifest["files"]] + ["manifest.json"],
        manifest=manifest,
    )
    await store.save_export_run(run)
    return run


async def run_job(
    store: ExportJobs,
    config: Config,
    name: str,
    *,
    full: bool = False,
    scheduled_for: datetime | None = None,
    run_id: str | None = None,
) -> dict[str, Any] | None:
    """Run job `name` once. None when another process holds it, or (for a scheduled firing)
    has already run it since `scheduled_for`."""
    job = config.exports.get(name)
    if job is None:
        known = ", ".join(config.exports) or "none configured"
        raise ConfigError(f"no export job named {name!r} (jobs: {known})")
    async with store.job_lock(name) as acquired:
        if not acquired:
            log.info("export job %s is running elsewhere; not starting it here", name)
            return None
        if scheduled_for is not None:
            latest = await store.export_runs(job=name, limit=1)
            if latest and datetime.fromisoformat(latest[0]["started_at"]) >= scheduled_for:
                return None
        request = await job_request(store, config, job, full)
        if job.min_new_examples:
            preview = await run_export(store, config.anonymize, request, None, jobs=job.jobs)
            waiting = preview["counts"]["records_written"]
            if waiting < job.min_new_examples:
                return await _skipped(store, job, waiting)
        out = Path(job.out)
        run = await run_recorded(
            store, config, request, out, job=name, run_id=run_id, jobs=job.jobs
        )
    if job.webhook is not None:
        await announce(job.webhook, _summary(run))
    return run


def system_prompt_variants(config: Config) -> frozenset[tuple[str, str]]:
    """(model, variant) of every A/B arm that replaces the client's system prompt: the
    preference formats match such an arm's prompts on the other turns only."""
    return frozenset(
        (model.name, variant.name)
        for model in config.models.values()
        for variant in model.variants
        if variant.system_prompt is not None
    )


async def job_request(
    store: ExportJobs, config: Config, job: ExportJobConfig, full: bool
) -> ExportRequest:
    since = None
    if job.incremental and not full:
        last = await store.export_runs(job=job.name, status=SUCCEEDED, limit=1)
        if last and last[0]["watermark"]:
            since = datetime.fromisoformat(last[0]["watermark"])
    return ExportRequest(
        job.format,
        parse_filters(job.filters, f"exports.{job.name}.filters"),
        FormatOptions(
            max_tokens=job.max_tokens, system_prompt_variants=system_prompt_variants(config)
        ),
        changed_since=since,
    )


async def _skipped(store: ExportJobs, job: ExportJobConfig, waiting: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    run = {
        "id": str(uuid7()),
        "job": job.name,
        "format": job.format,
        "status": SKIPPED,
        "started_at": now,
        "finished_at": now,
        "rows": waiting,
        "files": [],
        "error": f"{waiting} new examples, fewer than min_new_examples ({job.min_new_examples})",
    }
    await store.save_export_run(run)
    return run


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    summary = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in run.items()}
    summary["event"] = "export.finished"
    return summary


async def announce(webhook: WebhookConfig, payload: dict[str, Any]) -> bool:
    """POST `payload` to the webhook, retrying connection errors, 429 and 5xx with
    exponential backoff (0.5 s, 1 s, 2 s... capped at 30 s). True once it answered 2xx."""
    timeout = aiohttp.ClientTimeout(total=webhook.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(webhook.retries + 1):
            try:
                async with session.post(
                    webhook.url, json=payload, headers=dict(webhook.headers)
                ) as response:
                    if response.status < 300:
                        return True
                    if response.status < 500 and response.status != 429:
                        log.error("webhook %s refused the run: %s", webhook.url, response.status)
                        return False
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
            if attempt < webhook.retries:
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        log.error("webhook %s failed after %d attempts: %s", webhook.url, attempt + 1, problem)
        return False
