"""`content_key` is one function of a record's normal form: whitespace and case do not count, a
long normal form counts by its digest, and the stand-ins kept per process (`StandIns`) give
the keys made without them."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from exporters.curate import CONTENT_KEY_VERSION, LONG_FORM_CHARS, StandIns, content_key


def reference_key(record: dict[str, Any]) -> int:
    """The key by its definition: every text normalized, a long normal form by its digest."""

    def normalize(value: Any) -> Any:
        if isinstance(value, str):
            form = " ".join(value.split()).casefold()
            if len(form) < LONG_FORM_CHARS:
                return form
            return " " + hashlib.blake2b(form.encode(), digest_size=16).hexdigest()
        if isinstance(value, list):
            return [normalize(v) for v in value]
        if isinstance(value, dict):
            return {k: normalize(v) for k, v in value.items()}
        return value

    content = {k: v for k, v in record.items() if k != "metadata"}
    dumped = orjson.dumps(normalize(content), option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.blake2b(dumped, digest_size=8).digest(), "big")


def chat(text: str, answer: str = "ok") -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": answer}],
        "metadata": {"id": text[:10]},
    }


def test_keys_equal_the_uncached_ones_for_long_and_short_texts() -> None:
    rng = random.Random(21)
    words = ["Kari", "NORDMANN", "straße", "ΣΊΣΥΦΟΣ", "İstanbul", "a\u00a0b", "x\ty", "\n\n"]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 400))) for _ in range(300)]
    assert any(len(text) >= LONG_FORM_CHARS for text in texts)
    for _ in range(2):  # the second time from the kept stand-ins
        for text in texts:
            assert content_key(chat(text)) == reference_key(chat(text))


def test_whitespace_and_case_do_not_count_on_either_side_of_the_long_form_threshold() -> None:
    """A text and the same text respaced or recased are duplicates whatever their lengths: the
    stand-in follows the normal form's length, not the text's."""
    words = [f"Word{n}" for n in range(38)]
    short = " ".join(words)  # ~250 characters: under the threshold
    spaced = "  " + "\n\t ".join(words).upper() + "  "  # the same words, over it
    assert len(short) < LONG_FORM_CHARS <= len(spaced)
    assert content_key(chat(short)) == content_key(chat(spaced))
    # Casefolding can lengthen a text past the threshold: ß is ss.
    assert content_key(chat("ß" * 200)) == content_key(chat("SS" * 200))
    assert content_key(chat(short)) != content_key(chat(short + " word39"))
    long = " ".join(f"Word{n}" for n in range(400))
    assert content_key(chat(long)) != content_key(chat(long + "!"))
    assert content_key(chat(long)) != content_key(chat("ok", answer=long))


def test_a_key_is_what_this_version_made() -> None:
    """Keys are persisted (shard order logs) and compared across machines: a change to how
    they are made must come with a new CONTENT_KEY_VERSION."""
    record = chat("Kari  Nordmann\n" + "ord " * 100, answer="Hei")
    assert CONTENT_KEY_VERSION == 2
    assert content_key(record) == 0xA3E090C05529C673


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(lambda n: f"  Prompt {n}\n" + "Word " * 60, id="digests"),
        # Padded past the threshold, a short form beyond Latin-1: four bytes a character.
        pytest.param(lambda n: f"{n}" + " " * 300 + "\U0001f642" * 200, id="short forms"),
    ],
)
def test_stand_ins_stay_within_their_budget_in_memory(text: Callable[[int], str]) -> None:
    kept = StandIns(budget=200_000)
    texts = [text(n) for n in range(1_200)]
    tracemalloc.start()
    try:
        for value in texts:
            assert kept.get(value) == reference_stand_in(value)
            assert kept.bytes <= kept.budget
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held <= kept.budget * 1.05


def reference_stand_in(text: str) -> str:
    form = " ".join(text.split()).casefold()
    if len(form) < LONG_FORM_CHARS:
        return form
    return " " + hashlib.blake2b(form.encode(), digest_size=16).hexdigest()
