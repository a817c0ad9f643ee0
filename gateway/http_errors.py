"""The one place errors become HTTP responses: in OpenAI's error shape, or Anthropic's under
`/v1/messages`, whose clients read that one.

Handlers raise; they never build an error answer by hand. A `StoreError` that leaves a handler
(the database is down or refused the query) becomes `StoreUnavailable`, 503, here: no route
has to remember to convert it, and none can forget.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from gateway.apis import messages
from gateway.errors import ApiError, StoreError, StoreUnavailable

log = logging.getLogger(__name__)


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None):
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


def error_response(
    error: ApiError, path: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """`error` answered in the error shape of the API at `path`."""
    if path is not None and path.startswith("/v1/messages"):
        return json_response(messages.error_body(error), status=error.status, headers=headers)
    return json_response(error.to_body(), status=error.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Answer ApiErrors, store failures (503) and aiohttp's own HTTP errors (404, 405, 413...)
    like OpenAI does."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc, request.path)
    except StoreError as exc:
        log.warning("%s %s: store unavailable: %s", request.method, request.path, exc)
        unavailable = StoreUnavailable(f"The store did not answer: {exc}. Retry shortly.")
        return error_response(unavailable, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = ApiError(exc.reason if exc.status != 404 else f"Unknown route {request.path}")
        error.status = exc.status
        error.type = "invalid_request_error"
        return error_response(
            error,
            request.path,
            headers={"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None,
        )
