"""`content_key` is one function of a record's normal form: whitespace and case do not count, a
long normal form counts by its digest, and the stand-ins kept per process (`StandIns`) give
the keys made without them."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from typing import Any

import orjson

from exporters.curate import LONG_FORM_CHARS, StandIns, content_key


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


def test_stand_ins_stay_within_their_count_and_memory() -> None:
    kept = StandIns(size=500)
    tracemalloc.start()
    try:
        for n in range(1_200):
            text = f"  Prompt {n}\n" + "Word " * 60
            form = " ".join(text.split()).casefold()
            expected = " " + hashlib.blake2b(form.encode(), digest_size=16).hexdigest()
            assert kept.get(text) == expected
            assert len(kept._kept) <= kept.size
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 500 * 300  # a stand-in, its key and its slot: not the text
