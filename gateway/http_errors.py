"""The one place errors become HTTP responses, always in OpenAI's error shape."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from gateway.errors import ApiError

log = logging.getLogger(__name__)


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None):
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error.to_body(), status=error.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Answer aiohttp's own HTTP errors (404, 405, 413...) and stray ApiErrors like OpenAI does."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = ApiError(exc.reason if exc.status != 404 else f"Unknown route {request.path}")
        error.status = exc.status
        error.type = "invalid_request_error"
        return error_response(
            error, headers={"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        )
