"""The audit trail: who (the API key's name) did what to which target, when, with what result.

`audit_middleware` records, after the handler, every admin action that changes or takes data:
export runs started and files downloaded, forgets, config reloads, and any other non-GET
request under `/admin` or `/console` (console corrections). Other code records its own actions
with `record_action` (the CLI's forget, retention passes). Entries are read back through
`GET /admin/audit`.

An entry never holds personal data: a forget's target is the person's salted hash. Failing to
write an entry is logged as an error and does not undo or refuse the action, which has happened.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway.errors import ApiError, StoreError
from gateway.ids import uuid7
from gateway.store.base import PrivacyStore

log = logging.getLogger(__name__)

# (method, route as registered) -> the action's name.
ACTIONS = {
    ("POST", "/admin/exports"): "export.start",
    ("GET", "/admin/exports/{id}/files/{name}"): "export.download",
    ("DELETE", "/admin/users/{id}"): "forget.user",
    ("DELETE", "/admin/sessions/{id}"): "forget.session",
    ("POST", "/admin/reload"): "config.reload",
}
_READS = ("GET", "HEAD", "OPTIONS")
_AUDITED_PREFIXES = ("/admin", "/console")


async def record_action(
    store: PrivacyStore,
    actor: str | None,
    action: str,
    target: str | None = None,
    status: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    entry = {
        "id": uuid7(),
        "created_at": datetime.now(UTC),
        "actor": actor,
        "action": action,
        "target": target,
        "status": status,
        "detail": dict(detail or {}),
    }
    try:
        await store.insert_audit(entry)
    except StoreError as exc:
        log.error("audit: %s by %s on %s not recorded: %s", action, actor, target, exc)


@web.middleware
async def audit_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    action = _action(request)
    if action is None:
        return await handler(request)
    try:
        response = await handler(request)
    except ApiError as exc:
        await _record(request, action, exc.status, None)
        raise
    except web.HTTPException as exc:
        await _record(request, action, exc.status, None)
        raise
    await _record(request, action, response.status, response)
    return response


def _action(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    named = ACTIONS.get((request.method, route))
    if named is not None:
        return named
    if request.method not in _READS and request.path.startswith(_AUDITED_PREFIXES):
        return f"{request.method} {route}"
    return None


async def _record(
    request: web.Request, action: str, status: int, response: web.StreamResponse | None
) -> None:
    from gateway.appkeys import CONFIG, STORE
    from gateway.auth import KEY_NAME
    from gateway.privacy.subjects import subject_hash

    info = request.match_info
    if action.startswith("forget."):
        # The person's id is what a forget removes: the trail keeps only its salted hash.
        target: str | None = subject_hash(request.app[CONFIG].anonymize.salt, info["id"])
    else:
        target = info.get("id")
    detail: dict[str, Any] = {"path": request.path} if not action.startswith("forget.") else {}
    if "name" in info:
        detail["file"] = info["name"]
    body = _json_body(response)
    if action == "export.start" and body is not None:
        target = body.get("id")
    if action.startswith("forget.") and body is not None:
        detail = {"deleted": body.get("deleted"), "export_runs": len(body.get("export_runs", []))}
    await record_action(request.app[STORE], request.get(KEY_NAME), action, target, status, detail)


def _json_body(response: web.StreamResponse | None) -> dict[str, Any] | None:
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return None
    if response.content_type != "application/json":
        return None
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
