"""Pure units of the feedback package: edit distance, tokens, the recent-ids LRU, latest values,
and the config keys that drive them."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest

from gateway.config import parse_config
from gateway.errors import AuthenticationFailed, ConfigError
from gateway.feedback.cors import FeedbackCors
from gateway.feedback.edits import (
    MAX_EDIT_CHARS,
    EditBudget,
    answer_text,
    classify,
    levenshtein,
)
from gateway.feedback.recent import RecentInteractions
from gateway.feedback.tokens import FeedbackTokens
from gateway.ids import uuid7
from gateway.records.feedback import latest
from gateway.records.interaction import Interaction
from gateway.store.queries import contains_pattern


# -- edit distance --------------------------------------------------------------------------
def two_row_levenshtein(a: str, b: str) -> int:
    """The textbook dynamic programme, one row at a time: the oracle for the fast version."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("abc", "", 3),
        ("", "abc", 3),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("Hello! You said: hi", "Hallo! You said: hi", 1),
        ("ça va 👋", "ca va 👋!", 2),  # characters, not bytes
        ("same", "same", 0),
    ],
)
def test_levenshtein_known_values(a: str, b: str, distance: int) -> None:
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance


def test_levenshtein_matches_the_two_row_table_on_random_strings() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        a = "".join(rng.choices("abcé ", k=rng.randint(0, 40)))
        b = "".join(rng.choices("abcé ", k=rng.randint(0, 40)))
        assert levenshtein(a, b) == two_row_levenshtein(a, b), (a, b)
    # Longer than a machine word, so the bit-vectors span several words.
    a = "".join(rng.choices("abcdefgh", k=300))
    b = "".join(rng.choices("abcdefgh", k=280))
    assert levenshtein(a, b) == two_row_levenshtein(a, b)


def test_levenshtein_limits() -> None:
    long = "x" * (MAX_EDIT_CHARS + 1)
    assert levenshtein(long, "y" * 10) is None  # past the cap: unknown, not guessed
    # A common prefix and suffix are free, whatever their length.
    assert levenshtein("a" * 50_000 + "b" + "c" * 50_000, "a" * 50_000 + "B" + "c" * 50_000) == 1
    budget = EditBudget(cells=100)
    assert levenshtein("abcdefghij", "jihgfedcba", budget) is not None  # 100 cells
    assert levenshtein("ab", "ba", budget) is None  # budget spent


def test_levenshtein_at_the_cap_is_fast_enough() -> None:
    rng = random.Random(1)
    a = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=MAX_EDIT_CHARS))
    b = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=MAX_EDIT_CHARS))
    started = time.perf_counter()
    assert levenshtein(a, b) is not None
    assert time.perf_counter() - started < 2.0  # ~45 ms here; the table would take ~15 s


@pytest.mark.parametrize(
    ("answer", "correction", "threshold", "kind"),
    [
        ("abcdefghij", "abcdefghij", 0.3, "unchanged"),
        ("abcdefghij", "abcdefghiX", 0.3, "minor_edit"),  # 0.1
        ("abcdefghij", "abcdefgXYZ", 0.3, "major_edit"),  # 0.3 reaches the threshold
        ("abcdefghij", "abcdefgXYZ", 0.5, "minor_edit"),
        ("", "anything", 0.3, "major_edit"),
    ],
)
def test_classify(answer: str, correction: str, threshold: float, kind: str) -> None:
    distance = levenshtein(answer, correction)
    assert distance is not None
    assert classify(answer, correction, distance, threshold) == kind


def test_answer_text() -> None:
    assert answer_text({"choices": [{"message": {"content": "hi"}}]}) == "hi"
    assert answer_text({"choices": [{"text": "legacy"}]}) == "legacy"
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"text": "b"}]}}]}
    assert answer_text(parts) == "ab"
    assert answer_text({"choices": [{"message": {"content": None, "tool_calls": []}}]}) is None
    assert answer_text({"data": [{"embedding": None}]}) is None
    assert answer_text(None) is None


# -- tokens ---------------------------------------------------------------------------------
SECRET = "unit-test-secret-0123456789abcdefgh"


def test_token_round_trip_and_format() -> None:
    tokens = FeedbackTokens(SECRET, ttl_seconds=60)
    interaction_id = uuid7()
    token = tokens.issue(interaction_id)
    version, token_id, expiry, signature = token.split(".")
    assert (version, token_id) == ("v1", interaction_id)
    assert abs(int(expiry) - (time.time() + 60)) < 5
    assert "=" not in signature and "+" not in signature and "/" not in signature  # base64url
    verified = tokens.verify(token)
    assert (verified.interaction_id, verified.expires_at) == (interaction_id, int(expiry))


@pytest.mark.parametrize(
    "bad",
    ["", "v1", "v1.a.b", "v2.x.1.sig", "v1.x.notanumber.sig", "v1.x.١٢٣.sig", "a.b.c.d.e"],
)
def test_malformed_tokens_are_refused(bad: str) -> None:
    with pytest.raises(AuthenticationFailed):
        FeedbackTokens(SECRET, 60).verify(bad)


def test_expiry_is_checked_against_now() -> None:
    tokens = FeedbackTokens(SECRET, 60)
    token = tokens.issue(uuid7(), expires_at=1_000)
    assert tokens.verify(token, now=999).expires_at == 1_000
    with pytest.raises(AuthenticationFailed, match="expired") as caught:
        tokens.verify(token, now=1_000)
    assert caught.value.code == "expired_feedback_token"


def test_another_secret_does_not_verify() -> None:
    token = FeedbackTokens(SECRET, 60).issue(uuid7())
    with pytest.raises(AuthenticationFailed, match="altered"):
        FeedbackTokens(SECRET + "x", 60).verify(token)


# -- recent ids -----------------------------------------------------------------------------
def test_recent_interactions_forget_the_oldest_first() -> None:
    recent = RecentInteractions(capacity=3)
    for n in range(5):
        recent.add(f"id-{n}")
    assert recent.labels("id-4") is None  # issued, not answered yet
    for n in range(5):
        answered = Interaction(
            id=f"id-{n}",
            created_at=datetime.now(UTC),
            endpoint="chat/completions",
            requested_model="m",
            variant="b",
            response_id=f"resp-{n}",
        )
        recent.completed(answered)
    assert len(recent) == 3
    assert "id-1" not in recent and "id-2" in recent and "id-4" in recent
    assert recent.labels("id-4") == ("m", "b") and recent.labels("id-1") is None
    assert recent.interaction_for("resp-1") is None
    assert recent.interaction_for("resp-4") == "id-4"
    off = RecentInteractions(capacity=0)
    off.add("id")
    assert "id" not in off and len(off) == 0


def test_recent_interactions_keep_each_ids_labels_and_key_however_many_models() -> None:
    """Values are shared between ids and the sharing table starts again past its bound: with
    clients naming thousands of models, every id still answers its own labels and key."""
    recent = RecentInteractions(capacity=5_000)
    for n in range(3_000):
        recent.add(f"id-{n}", key_name=f"key-{n % 7}")
        recent.completed(
            Interaction(
                id=f"id-{n}",
                created_at=datetime.now(UTC),
                endpoint="chat/completions",
                requested_model=f"model-{n}",
                variant=None,
                api_key_name=f"key-{n % 7}",
            )
        )
    for n in (0, 999, 1_000, 2_999):
        assert recent.labels(f"id-{n}") == (f"model-{n}", None)
        assert recent.issued(f"id-{n}", key_name=f"key-{n % 7}")
        assert not recent.issued(f"id-{n}", key_name=f"key-{(n + 1) % 7}")


# -- latest values --------------------------------------------------------------------------
def test_latest_takes_each_field_from_the_last_event_that_set_it() -> None:
    events = [
        {"thumbs": "up", "rating": None, "dimensions": {"accuracy": 5}, "tags": {"a": "1"}},
        {"rating": 3, "thumbs": None, "dimensions": None, "tags": {}},
        {"thumbs": "down", "dimensions": {"clarity": 2, "accuracy": 4}, "tags": {"b": "2"}},
    ]
    assert latest(events) == {
        "thumbs": "down",
        "rating": 3,
        "dimensions": {"accuracy": 4, "clarity": 2},
        "tags": {"a": "1", "b": "2"},
    }
    assert latest([]) == {}


# -- CORS origins, LIKE patterns ------------------------------------------------------------
def test_cors_origin_matching() -> None:
    cors = FeedbackCors(["https://app.example.com"])
    assert cors.allowed("https://app.example.com") == "https://app.example.com"
    assert cors.allowed("https://app.example.com:8443") is None
    assert cors.allowed("http://app.example.com") is None
    assert cors.allowed(None) is None
    assert FeedbackCors(["*"]).allowed("http://anything.test") == "*"


def test_contains_pattern_escapes_wildcards_and_the_escape() -> None:
    assert contains_pattern("50%_off") == "%50\\%\\_off%"
    assert contains_pattern('say "hi"') == '%say "hi"%'  # searched as text, not as JSON
    assert contains_pattern("a\\b") == "%a\\\\b%"


# -- config ---------------------------------------------------------------------------------
def test_feedback_config_defaults_and_values() -> None:
    config = parse_config({})
    assert config.feedback.token_secret is None
    assert config.feedback.token_ttl == 7 * 24 * 3600
    assert config.feedback.major_edit_threshold == 0.3
    assert config.server.cors_origins == ()
    config = parse_config(
        {
            "feedback": {"token_secret": SECRET, "token_ttl": 60, "major_edit_threshold": 0.5},
            "server": {"cors_origins": ["https://app.example.com", "http://localhost:3000"]},
        }
    )
    assert (config.feedback.token_ttl, config.feedback.major_edit_threshold) == (60.0, 0.5)
    assert SECRET not in repr(config)  # secrets never reach logs


def test_an_empty_secret_from_the_environment_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_FEEDBACK_SECRET", raising=False)
    raw = {"feedback": {"token_secret": "${FLYWHEEL_FEEDBACK_SECRET:-}"}}
    assert parse_config(raw).feedback.token_secret is None
    monkeypatch.setenv("FLYWHEEL_FEEDBACK_SECRET", SECRET)
    assert parse_config(raw).feedback.token_secret == SECRET


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"feedback": {"token_secret": "short"}}, "feedback.token_secret"),
        ({"feedback": {"token_ttl": 0}}, "feedback.token_ttl"),
        ({"feedback": {"major_edit_threshold": 1.5}}, "feedback.major_edit_threshold"),
        ({"feedback": {"recent_interactions": -1}}, "feedback.recent_interactions"),
        ({"feedback": {"token_secrte": "x"}}, "feedback.token_secrte"),
        ({"server": {"cors_origins": ["https://app.example.com/"]}}, "server.cors_origins[0]"),
        ({"server": {"cors_origins": ["app.example.com"]}}, "server.cors_origins[0]"),
        ({"server": {"cors_origins": "https://app.example.com"}}, "server.cors_origins"),
    ],
)
def test_bad_feedback_config_names_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw)
