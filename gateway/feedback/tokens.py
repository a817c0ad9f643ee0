"""`Flywheel-Feedback-Token`: lets a browser give feedback on one interaction without an API key.

Every inference response carries one, so the app that shows an answer can hand it to its
frontend. A token is `v1.<interaction id>.<expiry>.<signature>`: the signature is HMAC-SHA256
over everything before it, base64url without padding. The id is not secret (it is in
`Flywheel-Interaction-Id` too); what the token proves is that this gateway issued that id, until
the expiry (Unix seconds).

Issuing is on the hot path of every request, so it is one HMAC over ~50 bytes from a keyed
state prepared once (`copy()` skips re-hashing the padded key): about 2 µs. Never JSON.

Without `feedback.token_secret` the secret is random per start: tokens then die with the
process, and each replica only accepts its own, which the gateway says at start. `flywheel
serve` draws that secret once, before forking, and hands it to its workers (restarted ones
included) in the environment, so the workers of one supervisor at least agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass

from gateway.config import Config
from gateway.errors import AuthenticationFailed

log = logging.getLogger(__name__)

# Supervisor -> workers, for a secret drawn at start (never read from a user's environment
# on purpose: configure feedback.token_secret instead).
GENERATED_SECRET_ENV = "FLYWHEEL_GENERATED_FEEDBACK_SECRET"
_VERSION = "v1"


@dataclass(frozen=True)
class VerifiedToken:
    interaction_id: str
    expires_at: int


class FeedbackTokens:
    def __init__(self, secret: str, ttl_seconds: float):
        self._keyed = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_config(cls, config: Config) -> FeedbackTokens:
        secret = config.feedback.token_secret
        if secret is None:
            log.warning(
                "feedback.token_secret is not set: feedback tokens are signed with a secret "
                "drawn at start; they will not survive a restart nor work on another replica. "
                "Set feedback.token_secret (e.g. ${FLYWHEEL_FEEDBACK_SECRET})."
            )
            secret = os.environ.get(GENERATED_SECRET_ENV) or random_secret()
        return cls(secret, config.feedback.token_ttl)

    def issue(self, interaction_id: str, expires_at: int | None = None) -> str:
        if expires_at is None:
            expires_at = int(time.time() + self.ttl_seconds)
        body = f"{_VERSION}.{interaction_id}.{expires_at}"
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, now: float | None = None) -> VerifiedToken:
        """The interaction a token speaks for; AuthenticationFailed if forged or expired."""
        if not token.isascii():
            # Every token we issue is ASCII; `hmac.compare_digest` raises TypeError on others.
            raise _invalid("The feedback token is malformed.")
        body, _, signature = token.rpartition(".")
        parts = body.split(".")
        if (
            len(parts) != 3
            or parts[0] != _VERSION
            or not (parts[2].isascii() and parts[2].isdigit())
        ):
            raise _invalid("The feedback token is malformed.")
        if not hmac.compare_digest(signature, self._sign(body)):
            raise _invalid("The feedback token's signature does not match: it was altered.")
        expires_at = int(parts[2])
        if expires_at <= (time.time() if now is None else now):
            raise _invalid("The feedback token has expired.", code="expired_feedback_token")
        return VerifiedToken(parts[1], expires_at)

    def _sign(self, body: str) -> str:
        mac = self._keyed.copy()
        mac.update(body.encode())
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def random_secret() -> str:
    return secrets.token_urlsafe(32)


def share_generated_secret(config: Config) -> None:
    """In a supervisor about to fork: with no configured secret, draw the one its workers use."""
    if config.feedback.token_secret is None and GENERATED_SECRET_ENV not in os.environ:
        os.environ[GENERATED_SECRET_ENV] = random_secret()


def _invalid(message: str, code: str = "invalid_feedback_token") -> AuthenticationFailed:
    return AuthenticationFailed(message, param="feedback_token", code=code)
