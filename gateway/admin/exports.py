"""The export API (admin scope): preview, run, list, read a manifest, download a file.

    GET  /admin/exports/preview?format=F&<filters>   counts only: kept, dropped by reason
    POST /admin/exports                              {"job": NAME, "all": bool}, or
                                                     {"format": F, "filters": {}, "max_tokens": N}
    GET  /admin/exports?job=&status=&limit=          runs, newest first
    GET  /admin/exports/{id}                         one run with its manifest
    GET  /admin/exports/{id}/files/{name}            a file of the run, streamed

Previews and runs happen in a separate process (exporters/offload.py); a POST answers 202 with
the run's id at once, and the run row shows its progress.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from exporters.formats import FORMATS, FormatOptions
from exporters.offload import ExportProcess
from exporters.params import parse_filters
from exporters.run import ExportRequest
from gateway.admin.api import stored
from gateway.appkeys import CONFIG, STORE
from gateway.bodies import read_json
from gateway.errors import ConfigError, NotFound, ValidationFailed
from gateway.http_errors import json_response
from gateway.ids import uuid7

EXPORT_PROCESS = web.AppKey("export_process", ExportProcess)
_BODY_LIMIT = 64 * 1024


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/exports/preview", preview)
    app.router.add_post("/admin/exports", start)
    app.router.add_get("/admin/exports", list_runs)
    app.router.add_get("/admin/exports/{id}", get_run)
    app.router.add_get("/admin/exports/{id}/files/{name:.+}", download)
    app.cleanup_ctx.append(_export_process)


async def _export_process(app: web.Application) -> Any:
    app[EXPORT_PROCESS] = ExportProcess()
    yield
    await app[EXPORT_PROCESS].close()


async def preview(request: web.Request) -> web.Response:
    values = dict(request.query)
    export = _request(values.pop("format", None), values.pop("max_tokens", None), values)
    manifest = await request.app[EXPORT_PROCESS].call(
        request.app[CONFIG], "preview", {"request": export}
    )
    return json_response({"object": "export.preview", **manifest})


async def start(request: web.Request) -> web.Response:
    body = await read_json(request, _BODY_LIMIT)
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object.")
    config = request.app[CONFIG]
    run_id = str(uuid7())
    if "job" in body:
        if body["job"] not in config.exports:
            raise NotFound(f"No export job {body['job']!r} in the config.", param="job")
        spec = {"job": body["job"], "all": bool(body.get("all")), "id": run_id}
        request.app[EXPORT_PROCESS].start(config, "job", spec)
    else:
        filters = body.get("filters") or {}
        if not isinstance(filters, dict):
            raise ValidationFailed("`filters` must be an object.", param="filters")
        export = _request(body.get("format"), body.get("max_tokens"), filters)
        request.app[EXPORT_PROCESS].start(config, "adhoc", {"request": export, "id": run_id})
    url = f"/admin/exports/{run_id}"
    body = {"object": "export.run", "id": run_id, "status": "started", "url": url}
    return json_response(body, status=202)


async def list_runs(request: web.Request) -> web.Response:
    try:
        limit = min(int(request.query.get("limit", 50)), 500)
    except ValueError:
        raise ValidationFailed("`limit` must be a number.", param="limit") from None
    runs = await stored(
        request.app[STORE].export_runs(
            job=request.query.get("job"), status=request.query.get("status"), limit=limit
        )
    )
    for run in runs:
        run.pop("manifest", None)  # one run's URL has it; a listing stays small
    return json_response({"object": "list", "data": runs})


async def get_run(request: web.Request) -> web.Response:
    return json_response({"object": "export.run", **await _run(request)})


async def download(request: web.Request) -> web.StreamResponse:
    run = await _run(request)
    name = request.match_info["name"]
    # Only the files the run recorded, and only inside its folder: never a path from the URL.
    if name not in run["files"]:
        raise NotFound(f"Run {run['id']} has no file {name!r}.", param="name")
    folder = Path(run["out_dir"])
    path = folder / name
    if not await asyncio.to_thread(_inside, path, folder):
        raise NotFound(f"File {name!r} of run {run['id']} is no longer on disk.", param="name")
    return web.FileResponse(
        path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'}
    )


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve()) and path.is_file()


async def _run(request: web.Request) -> dict[str, Any]:
    run_id = request.match_info["id"]
    run = await stored(request.app[STORE].get_export_run(run_id))
    if run is None:
        raise NotFound(f"No export run {run_id!r}.", param="id")
    return run


def _request(fmt: Any, max_tokens: Any, filters: dict[str, Any]) -> ExportRequest:
    if fmt not in FORMATS:
        raise ValidationFailed(f"`format` must be one of {', '.join(FORMATS)}.", param="format")
    try:
        options = FormatOptions(max_tokens=int(max_tokens or FormatOptions().max_tokens))
    except ValueError:
        raise ValidationFailed("`max_tokens` must be a number.", param="max_tokens") from None
    try:
        return ExportRequest(str(fmt), parse_filters(filters, "filters"), options)
    except ConfigError as exc:
        raise ValidationFailed(str(exc), param=str(exc).split(":")[0]) from None
