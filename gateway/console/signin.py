"""Signing in with an API key, and out.

The key is sent once, in a form POST, checked by the same KeyRing as the API (so the same
keys, scopes and constant-time comparison), and never stored: the session cookie holds the
key's name and scopes only. An `admin` key may do everything; a `review` key may read and
annotate but not export.
"""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import KEYS
from gateway.auth import KeyRing
from gateway.console.guard import (
    ADMIN,
    CONSOLE,
    REVIEW,
    page,
    render,
    set_cookie,
)
from gateway.console.render import SECURITY_HEADERS
from gateway.console.session import COOKIE, Session
from gateway.errors import AuthenticationFailed, PermissionDenied

HOME = "/console/"


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    if not request.app[KEYS].enabled:
        raise web.HTTPSeeOther(HOME)  # open console: nothing to sign in to
    return _form(request, next_url=_next(request.query.get("next")))


async def sign_in(request: web.Request) -> web.StreamResponse:
    if not request.app[KEYS].enabled:
        raise web.HTTPSeeOther(HOME)
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        # Login CSRF: another site signing this browser in with the attacker's key.
        return _form(request, HOME, "Sign in from this console's own page.", status=403)
    form = await request.post()
    key, next_url = str(form.get("key", "")).strip(), _next(str(form.get("next", "")))
    try:
        name, scopes = _authenticate(request.app[KEYS], key)
    except AuthenticationFailed:
        return _form(request, next_url, "That key is not known.", status=401)
    except PermissionDenied:
        message = "That key has neither the 'admin' nor the 'review' scope."
        return _form(request, next_url, message, status=403)
    signer = request.app[CONSOLE].signer
    session = signer.issue(name, scopes)
    response = see_other(next_url)
    set_cookie(request, response, signer.encode(session), session)
    return response


@page(REVIEW)
async def sign_out(request: web.Request, session: Session) -> web.StreamResponse:
    response = see_other("/console/sign-in")
    response.del_cookie(COOKIE, path="/console")
    return response


def see_other(location: str) -> web.Response:
    """A 303 to `location` that can still take cookies (a raised HTTPSeeOther is answered as
    is; a returned one is deprecated)."""
    return web.Response(status=303, headers={"Location": location})


def _authenticate(keys: KeyRing, key: str) -> tuple[str, tuple[str, ...]]:
    """The key's name and the console scopes it grants; raises like the API would."""
    try:
        return keys.authenticate(f"Bearer {key}", ADMIN).name, (ADMIN, REVIEW)
    except PermissionDenied:
        return keys.authenticate(f"Bearer {key}", REVIEW).name, (REVIEW,)


def _form(
    request: web.Request, next_url: str, problem: str | None = None, status: int = 200
) -> web.Response:
    context = {"next_url": next_url, "problem": problem}
    response = render(request, None, "sign_in.html", context, status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _next(target: str | None) -> str:
    """Where to go after signing in: a console path only, never another site (`//evil`)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return HOME
