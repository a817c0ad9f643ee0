"""What every console route goes through: session, scope, CSRF, security headers, HTML errors.

`page(scope)` wraps a handler `(request, session) -> response`:
- With `auth.keys` configured, a request needs a valid session cookie (see session.py), else a
  page redirects to sign-in and anything else is refused. Without keys (loopback only, like the
  API), the console is open: a visitor gets a session of no name, for the CSRF token's sake.
- `review` routes take any session; `admin` routes (exports) an admin key's.
- Every method but GET and HEAD must carry the session's CSRF token (form field or header) and,
  when the browser says where it comes from, an Origin of this host: together with the cookie's
  SameSite=Strict, no other site can make a signed-in browser change anything.
- Errors raised by a handler (ApiError, StoreError) become an HTML page with their status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from gateway.appkeys import CONFIG, KEYS
from gateway.console.render import SECURITY_HEADERS, html
from gateway.console.session import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, SessionSigner
from gateway.errors import ApiError, StoreError

log = logging.getLogger(__name__)

ADMIN = "admin"
REVIEW = "review"
# The scopes a session holds: an admin may do everything a reviewer may.
OPEN_SCOPES = (ADMIN, REVIEW)
SAFE_METHODS = ("GET", "HEAD")

Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


@dataclass
class Console:
    """The console's state on the app (under `CONSOLE`): its signer and its templates."""

    signer: SessionSigner
    templates: jinja2.Environment


CONSOLE = web.AppKey("console", Console)


def page(scope: str = REVIEW) -> Callable[[Handler], Callable[..., Awaitable[web.StreamResponse]]]:
    def wrap(handler: Handler) -> Callable[..., Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            console = request.app[CONSOLE]
            session, fresh = current_session(request)
            response: web.StreamResponse
            try:
                if session is None:
                    response = _signed_out(request)
                elif not session.may(scope):
                    response = render(request, session, "error.html", _refusal(scope), 403)
                elif request.method not in SAFE_METHODS and not await _trusted(request, session):
                    message = "This form is out of date or came from another site: reload it."
                    error = {"title": "Refused", "message": message}
                    response = render(request, session, "error.html", error, 403)
                else:
                    response = await handler(request, session)
            except ApiError as exc:
                response = render(request, session, "error.html", _error(exc), exc.status)
            except StoreError as exc:
                log.warning("console %s: store unavailable: %s", request.path, exc)
                message = f"The store did not answer ({exc}). Retry shortly."
                error = {"title": "Store unavailable", "message": message}
                response = render(request, session, "error.html", error, 503)
            if fresh and session is not None:
                set_cookie(request, response, console.signer.encode(session), session)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return guarded

    return wrap


@page(REVIEW)
async def not_found(request: web.Request, session: Session) -> web.StreamResponse:
    """Any other /console path: a page saying so, rather than the API's JSON 404."""
    error = {"title": "Not found", "message": f"There is no console page at {request.path}."}
    return render(request, session, "error.html", error, 404)


def current_session(request: web.Request) -> tuple[Session | None, bool]:
    """The request's session, and whether it was made just now (open console, first visit)."""
    signer = request.app[CONSOLE].signer
    session = signer.decode(request.cookies.get(COOKIE))
    keyed = request.app[KEYS].enabled
    # An open console's session (no name) is worth nothing once keys are configured.
    usable = session is not None and (session.name is None) == (not keyed)
    if usable and (not keyed or key_configured(request, session.name if session else None)):
        return session, False
    if keyed:
        return None, False
    return signer.issue(None, OPEN_SCOPES), True


def key_configured(request: web.Request, name: str | None) -> bool:
    """The key a session was signed in with is still configured: removing a key (and
    reloading) ends its sessions, even when the cookie secret stays."""
    return request.app[KEYS].has_name(name)


def set_cookie(
    request: web.Request, response: web.StreamResponse, value: str, session: Session
) -> None:
    console_config = request.app[CONFIG].console
    response.set_cookie(
        COOKIE,
        value,
        path="/console",
        max_age=max(0, int(console_config.session_ttl)),
        httponly=True,
        samesite="Strict",
        secure=request.secure or console_config.secure_cookie,
    )


def render(
    request: web.Request,
    session: Session | None,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> web.Response:
    console = request.app[CONSOLE]
    common = {
        "session": session,
        "csrf_token": console.signer.csrf_token(session) if session else "",
        "csrf_field": CSRF_FIELD,
        "keyed": request.app[KEYS].enabled,
        "path": request.path,
    }
    return html(console.templates, template, {**common, **context}, status)


async def _trusted(request: web.Request, session: Session) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return False
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        token = str((await request.post()).get(CSRF_FIELD, ""))
    return request.app[CONSOLE].signer.csrf_valid(session, token)


def _signed_out(request: web.Request) -> web.Response:
    if request.method in SAFE_METHODS:
        target = request.path_qs
        raise web.HTTPSeeOther(f"/console/sign-in?next={quote(target, safe='')}")
    error = {"title": "Signed out", "message": "Sign in again, then repeat what you did."}
    return render(request, None, "error.html", error, 401)


def _refusal(scope: str) -> dict[str, str]:
    return {
        "title": "Not allowed",
        "message": f"This needs a key with the '{scope}' scope; sign in with one.",
    }


def _error(exc: ApiError) -> dict[str, str]:
    return {"title": exc.type.replace("_", " ").capitalize(), "message": exc.message}
