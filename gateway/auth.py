"""API keys and scopes. A key grants `inference`, `feedback` and/or `admin`.

Keys are looked up by their SHA-256 digest and then compared with `hmac.compare_digest`, so
the time taken says nothing about how close a guess was. A key comes as `Authorization: Bearer`
or, from Anthropic's clients, as `x-api-key`; neither header is ever forwarded upstream nor
stored: only the key's configured *name* reaches the record.
`POST /v1/feedback` also accepts, instead of a key, the feedback token of the interaction it is
about (gateway/feedback/tokens.py), which is how browsers give feedback.

Authentication runs before the in-flight cap (gateway/overload.py): a request that has not
shown a key must never hold a slot that keyed callers need.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from gateway.config import ApiKey, AuthConfig
from gateway.errors import AuthenticationFailed, PermissionDenied

API_KEY = web.RequestKey("api_key", ApiKey)  # the authenticated key
KEY_NAME = web.RequestKey("api_key_name", str)  # its name, which is what records keep
# A keyless `POST /v1/feedback`, let through so the handler can check its feedback token (which
# may be in the body): not authenticated yet, so it takes no in-flight slot.
AWAITING_TOKEN = web.RequestKey("awaiting_feedback_token", bool)
ADMIN = "admin"


def scope_for(path: str) -> str | None:
    """The scope a route needs; None for public routes (health, readiness, metrics)."""
    if path.startswith("/admin"):
        return ADMIN
    if path.startswith("/v1/feedback"):
        return "feedback"
    if path.startswith("/v1/"):
        return "inference"
    return None


class KeyRing:
    def __init__(self, config: AuthConfig):
        self.replace(config)

    def replace(self, config: AuthConfig) -> None:
        """New keys from a reloaded config, swapped in one assignment."""
        self._by_digest = {_digest(k.key): k for k in config.keys}

    def has_name(self, name: str | None) -> bool:
        """A key of this name is configured now (after any reload)."""
        return any(key.name == name for key in self._by_digest.values())

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def authenticate(
        self, authorization: str | None, scope: str, x_api_key: str | None = None
    ) -> ApiKey:
        """The key of `Authorization: Bearer`, or else of Anthropic's `x-api-key` header."""
        if authorization is None and x_api_key is not None:
            token = _printable(x_api_key.strip())
        else:
            token = bearer_token(authorization)
        key = self._by_digest.get(_digest(token))
        if key is None or not hmac.compare_digest(key.key.encode(), token.encode()):
            raise AuthenticationFailed("Incorrect API key provided.")
        if scope not in key.scopes:
            raise PermissionDenied(f"API key '{key.name}' lacks the '{scope}' scope.")
        return key


def bearer_token(authorization: str | None) -> str:
    """The key of an `Authorization: Bearer <key>` header (the scheme in any case, RFC 9110).

    Strict: a bare key is refused rather than guessed at, and a key is printable ASCII (RFC 6750's
    token characters are a subset) - aiohttp hands undecodable header bytes over as surrogate
    escapes, which must end in a 401 here rather than a UnicodeEncodeError later.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if not scheme:
        raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed(
            "Malformed Authorization header: send the key as 'Authorization: Bearer <key>'."
        )
    return _printable(token)


def _printable(token: str) -> str:
    if not token or not (token.isascii() and token.isprintable()):
        raise AuthenticationFailed("Incorrect API key provided.")
    return token


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def auth_middleware(keys: KeyRing):
    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        scope = scope_for(request.path)
        if scope is not None and keys.enabled and request.method != "OPTIONS":
            authorization = request.headers.get("Authorization")
            x_api_key = request.headers.get("x-api-key")
            if authorization is None and x_api_key is None and scope == "feedback":
                # A browser holds a feedback token (header or body), not a key: the feedback
                # handler checks the token, and refuses a request that has neither.
                request[AWAITING_TOKEN] = True
                return await handler(request)
            key = keys.authenticate(authorization, scope, x_api_key)
            request[API_KEY] = key
            request[KEY_NAME] = key.name
        return await handler(request)

    return middleware
