"""CORS for `POST /v1/feedback`, and for no other route.

Browsers may post feedback from the origins in `server.cors_origins` with a feedback token;
inference and the admin API stay unreachable from pages, so a key can never be used from one.
`Authorization` is deliberately not an allowed header: a browser has no business holding a key.

A preflight from an allowed origin gets 204 and the `Access-Control-*` headers; from any other
origin, 403 and no CORS headers, so the browser refuses. Actual responses, errors included,
carry `Access-Control-Allow-Origin` for allowed origins, so a page can read why it failed.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import PermissionDenied
from gateway.http_errors import error_response
from gateway.records.headers import FEEDBACK_TOKEN_HEADER

FEEDBACK_PATH = "/v1/feedback"
_ALLOW_HEADERS = f"Content-Type, {FEEDBACK_TOKEN_HEADER}"
_MAX_AGE = "600"  # seconds a browser may reuse a preflight answer


class FeedbackCors:
    def __init__(self, origins: Iterable[str]):
        self._origins = frozenset(origins)
        self._any = "*" in self._origins

    def allowed(self, origin: str | None) -> str | None:
        """The value for Access-Control-Allow-Origin, or None for a refused origin."""
        if origin is None:
            return None
        if self._any:
            return "*"
        return origin if origin in self._origins else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != FEEDBACK_PATH:
            return await handler(request)
        origin = request.headers.get("Origin")
        allowed = self.allowed(origin)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return self._preflight(origin, allowed)
        response = await handler(request)
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers.add("Vary", "Origin")
        return response

    def _preflight(self, origin: str | None, allowed: str | None) -> web.StreamResponse:
        if allowed is None:
            error = PermissionDenied(
                f"Origin {origin!r} is not in server.cors_origins.", code="origin_not_allowed"
            )
            return error_response(error, headers={"Vary": "Origin"})
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": allowed,
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                "Access-Control-Max-Age": _MAX_AGE,
                "Vary": "Origin",
            },
        )
