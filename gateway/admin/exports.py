"""The export API (admin scope): preview, run, list, read a manifest, download a file.

    GET  /admin/exports/preview?format=F&<filters>   counts only: kept, dropped by reason
    POST /admin/exports                              {"job": NAME, "all": bool}, or
                                                     {"format": F, "filters": {}, "max_tokens": N}
    GET  /admin/exports?job=&status=&limit=          runs, newest first
    GET  /admin/exports/{id}                         one run with its manifest
    GET  /admin/exports/{id}/files/{name}            a file of the run, streamed

Previews and runs happen in a separate process (exporters/offload.py); a POST answers 202 with
the run's id at once (503 if the store does not answer), and the run row shows its progress.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC
from pathlib import Path
from typing import Any

from aiohttp import web

from exporters.formats import FORMATS, FormatOptions
from exporters.offload import ExportProcess
from exporters.params import parse_filters
from exporters.run import ExportRequest
from gateway.admin.params import listing_limit
from gateway.appkeys import CONFIG, STORE
from gateway.bodies import read_json
from gateway.errors import ConfigError, NotFound, ValidationFailed
from gateway.http_errors import json_response
from gateway.ids import uuid7
from gateway.store import ExportRuns, Reachable

EXPORT_PROCESS = web.AppKey("export_process", ExportProcess)
_BODY_LIMIT = 64 * 1024
_START_FIELDS = ("job", "all", "format", "filters", "max_tokens")
_SCALARS = (str, int, float, bool)


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
    body = await read_json(request, _BODY_LIMIT, request.app[CONFIG].server.body_read_timeout)
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object.")
    unknown = [name for name in body if name not in _START_FIELDS]
    if unknown:
        expected = ", ".join(_START_FIELDS)
        raise ValidationFailed(f"`{unknown[0]}` is not a field ({expected}).", param=unknown[0])
    config = request.app[CONFIG]
    run_id = uuid7()
    if "job" in body:
        job, run_all = body["job"], body.get("all", False)
        if not isinstance(job, str):
            raise ValidationFailed("`job` must be a string.", param="job")
        if not isinstance(run_all, bool):
            raise ValidationFailed("`all` must be true or false.", param="all")
        if job not in config.exports:
            raise NotFound(f"No export job {job!r} in the config.", param="job")
        action, spec = "job", {"job": job, "all": run_all, "id": run_id}
    else:
        filters = body.get("filters")
        filters = {} if filters is None else filters
        if not isinstance(filters, dict):
            raise ValidationFailed("`filters` must be an object.", param="filters")
        export = _request(body.get("format"), body.get("max_tokens"), filters)
        action, spec = "adhoc", {"request": export, "id": run_id}
    # The run records itself from the export process; with the database down it would fail
    # with no row to show why, so the caller hears it now (503, from the error middleware).
    store: Reachable = request.app[STORE]
    await store.ping()
    request.app[EXPORT_PROCESS].start(config, action, spec)
    url = f"/admin/exports/{run_id}"
    body = {"object": "export.run", "id": run_id, "status": "started", "url": url}
    return json_response(body, status=202)


async def list_runs(request: web.Request) -> web.Response:
    limit = listing_limit(request.query)
    store: ExportRuns = request.app[STORE]
    runs = await store.export_runs(
        job=request.query.get("job"), status=request.query.get("status"), limit=limit
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
    store: ExportRuns = request.app[STORE]
    run = await store.get_export_run(run_id)
    if run is None:
        raise NotFound(f"No export run {run_id!r}.", param="id")
    return run


def _request(fmt: Any, max_tokens: Any, filters: dict[str, Any]) -> ExportRequest:
    """From a query string (preview: every value a string) or a POST body (any JSON)."""
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ValidationFailed(f"`format` must be one of {', '.join(FORMATS)}.", param="format")
    options = FormatOptions(max_tokens=_max_tokens(max_tokens))
    for name, value in filters.items():
        _check_plain(name, value)
    try:
        parsed = parse_filters(filters, "filters")
    except ConfigError as exc:
        raise ValidationFailed(str(exc), param=str(exc).split(":")[0]) from None
    for field in dataclasses.fields(parsed):
        # Filters are echoed in the preview and the run's manifest; JSON stops at 64 bits.
        value = getattr(parsed, field.name)
        items = value if isinstance(value, list | tuple) else [value]
        if any(type(item) is int and not -(2**63) <= item < 2**63 for item in items):
            message = f"`filters.{field.name}` is out of range."
            raise ValidationFailed(message, param=f"filters.{field.name}")
    for name in ("since", "until"):
        moment = getattr(parsed, name)
        try:
            if moment is not None:
                moment.astimezone(UTC)
        except OverflowError:
            # Else the run fails later, in the export process, when the driver converts it.
            message = f"`filters.{name}` is outside the years 1 to 9999 in UTC."
            raise ValidationFailed(message, param=f"filters.{name}") from None
    return ExportRequest(fmt, parsed, options)


# Beyond any model's context by far; a bound keeps 2**64 out of the answer that echoes it.
_MOST_TOKENS = 100_000_000


def _max_tokens(value: Any) -> int:
    """A whole number of tokens, 1 to _MOST_TOKENS: a JSON integer, or digits in a query."""
    if value is None:
        return FormatOptions().max_tokens
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MOST_TOKENS:
        raise ValidationFailed(
            f"`max_tokens` must be an integer from 1 to {_MOST_TOKENS:,}.", param="max_tokens"
        )
    return value


def _check_plain(name: str, value: Any) -> None:
    """A filter is text, a number, a boolean or a list of those (`tags`: an object of them).
    parse_filters would turn any structure into its text; a client sending one means
    something else, so it is named instead."""
    if name == "tags" and isinstance(value, dict):
        items = list(value.values())
    else:
        items = value if isinstance(value, list) else [value]
    if any(item is not None and not isinstance(item, _SCALARS) for item in items):
        raise ValidationFailed(
            f"`filters.{name}` must be a string, a number, a boolean or a list of those.",
            param=f"filters.{name}",
        )
