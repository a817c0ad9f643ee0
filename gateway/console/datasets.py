"""The datasets page: export jobs and their runs, "N new examples ready", run now, download,
the manifest, and an ad-hoc export.

Everything goes through the export API's own pieces (gateway/admin/exports.py and
exporters/): the same export process runs the work off the event loop, the same run rows show
progress, the same download handler serves a run's files (only those it recorded). Reading is
for reviewers; starting an export or downloading a file needs the `admin` scope.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporters.formats import FORMATS
from exporters.jobs import job_request
from gateway.admin import exports
from gateway.appkeys import CONFIG
from gateway.console.conversation import pretty
from gateway.console.guard import ADMIN, REVIEW, page, render
from gateway.console.reader import reader
from gateway.console.session import Session
from gateway.console.signin import see_other
from gateway.errors import NotFound
from gateway.ids import uuid7
from gateway.store import ExportJobs, Reachable

RUNS_SHOWN = 30
RUNNING = "running"
# The ad-hoc form's fields, named as exporters/params.py names filters.
ADHOC_FILTERS = (
    "models",
    "variants",
    "users",
    "since",
    "until",
    "min_rating",
    "thumbs",
    "outcomes",
)


@page(REVIEW)
async def datasets(request: web.Request, session: Session) -> web.StreamResponse:
    store: ExportJobs = reader(request)
    runs = await store.export_runs(limit=RUNS_SHOWN)
    for run in runs:
        run.pop("manifest", None)
    config = request.app[CONFIG]
    context = {
        "jobs": list(config.exports.values()),
        "runs": runs,
        "formats": list(FORMATS),
        "adhoc_filters": ADHOC_FILTERS,
        "running": any(run["status"] == RUNNING for run in runs),
    }
    return render(request, session, "datasets.html", context)


@page(REVIEW)
async def job_preview(request: web.Request, session: Session) -> web.StreamResponse:
    """How many examples the job's next run would write (a dry run in the export process)."""
    job = _job(request)
    config = request.app[CONFIG]
    export = await job_request(reader(request), config, job, False)
    manifest = await request.app[exports.EXPORT_PROCESS].call(
        config, "preview", {"request": export}
    )
    context = {"job": job, "counts": manifest["counts"]}
    return render(request, session, "job_preview.html", context)


@page(ADMIN)
async def run_job(request: web.Request, session: Session) -> web.StreamResponse:
    job = _job(request)
    return await _start(request, "job", {"job": job.name, "all": False})


@page(ADMIN)
async def run_adhoc(request: web.Request, session: Session) -> web.StreamResponse:
    form = await request.post()
    filters = {
        name: str(form[name]).strip() for name in ADHOC_FILTERS if str(form.get(name, "")).strip()
    }
    if form.get("include_failed"):
        filters["include_failed"] = "true"
    export = exports._request(form.get("format"), None, filters)
    return await _start(request, "adhoc", {"request": export})


@page(REVIEW)
async def run_page(request: web.Request, session: Session) -> web.StreamResponse:
    run_id = request.match_info["id"]
    store: ExportJobs = reader(request)
    run = await store.get_export_run(run_id)
    context: dict[str, Any] = {"run_id": run_id, "run": run, "manifest": None}
    if run is not None and run.get("manifest"):
        context["manifest"] = pretty(run["manifest"])
    return render(request, session, "run.html", context)


@page(ADMIN)
async def download(request: web.Request, session: Session) -> web.StreamResponse:
    return await exports.download(request)


async def _start(request: web.Request, action: str, spec: dict[str, Any]) -> web.StreamResponse:
    run_id = uuid7()
    # As the API does: with the database down the run could not record why it failed.
    reachable: Reachable = reader(request)
    await reachable.ping()
    request.app[exports.EXPORT_PROCESS].start(request.app[CONFIG], action, {**spec, "id": run_id})
    return see_other(f"/console/datasets/runs/{run_id}")


def _job(request: web.Request) -> Any:
    name = request.match_info["name"]
    job = request.app[CONFIG].exports.get(name)
    if job is None:
        raise NotFound(f"No export job {name!r} in the config.", param="name")
    return job
