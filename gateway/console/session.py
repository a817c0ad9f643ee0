"""The console's session cookie and CSRF tokens: signed, never stored server-side.

A session is `[name, scopes, expiry, nonce]` as JSON, base64url, then an HMAC-SHA256 of that
under the console secret (`console.session_secret`, else a random one per start).
Nothing secret is in it: the API key itself never leaves the sign-in request. The CSRF token
of a session is an HMAC of its nonce under a derived key, so a page can carry it in forms and
headers while the cookie stays HttpOnly, and a token from one session is useless in another.

This module must never read a request or touch the store: it is pure, so it is tested as such.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

COOKIE = "flywheel_console"
CSRF_FIELD = "csrf_token"  # form field
CSRF_HEADER = "X-CSRF-Token"  # fetch() from console.js


@dataclass(frozen=True)
class Session:
    name: str | None  # the API key's name; None when the console is open (no keys configured)
    scopes: tuple[str, ...]
    expires: int  # unix seconds
    nonce: str

    def may(self, scope: str) -> bool:
        return scope in self.scopes


class SessionSigner:
    def __init__(self, secret: str | None, ttl_seconds: float):
        raw = secret.encode() if secret else secrets.token_bytes(32)
        # Separate keys for cookies and CSRF tokens: one can never be passed off as the other.
        self._cookie_key = hmac.new(raw, b"console-session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(raw, b"console-csrf", hashlib.sha256).digest()
        self.ttl = ttl_seconds

    def issue(self, name: str | None, scopes: tuple[str, ...], now: float | None = None) -> Session:
        expires = int((time.time() if now is None else now) + self.ttl)
        return Session(name, scopes, expires, secrets.token_urlsafe(16))

    def encode(self, session: Session) -> str:
        fields = [session.name, list(session.scopes), session.expires, session.nonce]
        body = base64.urlsafe_b64encode(orjson.dumps(fields)).rstrip(b"=").decode()
        return f"{body}.{self._sign(self._cookie_key, body)}"

    def decode(self, value: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie value; None if absent, forged, malformed or expired."""
        if not value or value.count(".") != 1:
            return None
        body, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(self._cookie_key, body)):
            return None
        try:
            # Signed by us, so well formed unless the secret leaked; checked all the same.
            name, scopes, expires, nonce = orjson.loads(
                base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            )
            session = Session(name, tuple(map(str, scopes)), int(expires), str(nonce))
        except (ValueError, TypeError):  # also binascii.Error and orjson.JSONDecodeError
            return None
        if session.expires <= (time.time() if now is None else now):
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        return self._sign(self._csrf_key, session.nonce)

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    @staticmethod
    def _sign(key: bytes, text: str) -> str:
        digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
