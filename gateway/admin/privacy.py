"""The privacy routes of the admin API (admin scope, checked by the auth middleware).

    DELETE /admin/users/{id}       forget a user: delete, purge the spool, name the export runs
    DELETE /admin/sessions/{id}    the same for a session
    GET    /admin/audit            the audit trail, newest first (?action=&limit=&cursor=)

The work is in gateway/privacy/; these handlers only read the request and shape the answer.
"""

from __future__ import annotations

from aiohttp import web

from gateway.admin.params import _Bad, decode_cursor, encode_cursor, listing_limit
from gateway.appkeys import CONFIG, RECORDER, STORE
from gateway.errors import ValidationFailed
from gateway.http_errors import json_response
from gateway.privacy.forget import forget
from gateway.store import PrivacyStore

_AUDIT_PARAMS = ("action", "limit", "cursor")


def add_routes(app: web.Application) -> None:
    app.router.add_delete("/admin/users/{id}", forget_user)
    app.router.add_delete("/admin/sessions/{id}", forget_session)
    app.router.add_get("/admin/audit", list_audit)


async def forget_user(request: web.Request) -> web.Response:
    return await _forget(request, "user")


async def forget_session(request: web.Request) -> web.Response:
    return await _forget(request, "session")


async def _forget(request: web.Request, kind: str) -> web.Response:
    recorder = request.app[RECORDER]
    result = await forget(
        request.app[STORE],
        recorder.spool,
        request.app[CONFIG].anonymize.salt,
        kind,
        request.match_info["id"],
        forgotten=recorder.forgotten,
    )
    return json_response(result)


async def list_audit(request: web.Request) -> web.Response:
    unknown = [name for name in request.query if name not in _AUDIT_PARAMS]
    if unknown:
        expected = ", ".join(_AUDIT_PARAMS)
        raise ValidationFailed(f"`{unknown[0]}` is not a parameter ({expected}).", param=unknown[0])
    limit = listing_limit(request.query)
    cursor = None
    if "cursor" in request.query:
        try:
            cursor = decode_cursor(request.query["cursor"])
        except _Bad:
            message = "`cursor` is not one this API returned."
            raise ValidationFailed(message, param="cursor") from None
    store: PrivacyStore = request.app[STORE]
    rows = await store.audit_entries(request.query.get("action"), cursor, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {
            "object": "list",
            "data": rows,
            "has_more": more,
            "next_cursor": encode_cursor(rows[-1]) if more else None,
        }
    )
