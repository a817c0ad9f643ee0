"""The console's signed session cookie and CSRF tokens, as pure functions."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.console.diff import word_diff
from gateway.console.session import Session, SessionSigner

SECRET = "console-test-secret-0123456789abcdef"


def test_a_session_round_trips_and_carries_no_key() -> None:
    signer = SessionSigner(SECRET, ttl_seconds=60)
    session = signer.issue("ops", ("admin", "review"), now=1_000)
    value = signer.encode(session)
    assert signer.decode(value, now=1_030) == session
    assert signer.decode(value, now=1_060) is None  # expired
    # Another process with the same secret reads it (workers, restarts); another secret not.
    assert SessionSigner(SECRET, 60).decode(value, now=1_030) == session
    assert SessionSigner(SECRET[::-1], 60).decode(value, now=1_030) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda body, sig: (_reencode(body, name="someone-else"), sig),  # forged payload
        lambda body, sig: (_reencode(body, scopes=["admin"]), sig),
        lambda body, sig: (body, sig[:-1] + ("A" if sig[-1] != "A" else "B")),
        lambda body, sig: (body, ""),
        lambda body, sig: ("not base64!", sig),
    ],
)
def test_a_tampered_cookie_is_no_session(change) -> None:
    signer = SessionSigner(SECRET, ttl_seconds=60)
    body, signature = signer.encode(signer.issue("expert", ("review",))).split(".")
    forged_body, forged_signature = change(body, signature)
    assert signer.decode(f"{forged_body}.{forged_signature}") is None


def test_csrf_tokens_belong_to_one_session() -> None:
    signer = SessionSigner(None, ttl_seconds=60)  # a random secret, as without configuration
    first, second = signer.issue("ops", ("admin",)), signer.issue("ops", ("admin",))
    token = signer.csrf_token(first)
    assert signer.csrf_valid(first, token)
    assert not signer.csrf_valid(second, token)
    assert not signer.csrf_valid(first, None)
    assert not signer.csrf_valid(first, "")
    # Neither key signs for the other: a cookie signature is not a CSRF token.
    cookie_signature = signer.encode(first).split(".")[1]
    assert not signer.csrf_valid(first, cookie_signature)


def test_the_word_diff_marks_what_changed() -> None:
    pieces = word_diff("The capital is Oslo.", "The capital is Bergen, not Oslo.")
    assert [(p.kind, p.text) for p in pieces if p.kind != "same"] == [("added", "Bergen, not ")]
    assert "".join(p.text for p in pieces if p.kind != "removed") == (
        "The capital is Bergen, not Oslo."
    )


def _reencode(body: str, **changes: object) -> str:
    name, scopes, expires, nonce = orjson.loads(base64.urlsafe_b64decode(body + "=="))
    fields = {"name": name, "scopes": scopes, **changes}
    raw = orjson.dumps([fields["name"], fields["scopes"], expires, nonce])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_session_scopes() -> None:
    assert Session("expert", ("review",), 0, "n").may("review")
    assert not Session("expert", ("review",), 0, "n").may("admin")
