"""`content_key` is persisted (shard order logs, `dataset merge`) and ranks the sample, so a
faster way to compute it must give the same 64 bits: long texts' normal forms are kept per
process (`Normalized`), bounded, and equal to the ones made each time."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson

from exporters.curate import NORMALIZED_FROM_CHARS, Normalized, content_key


def reference_key(record: dict[str, Any]) -> int:
    """The key as it was computed before the cache (issue 21)."""

    def normalize(value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.split()).casefold()
        if isinstance(value, list):
            return [normalize(v) for v in value]
        if isinstance(value, dict):
            return {k: normalize(v) for k, v in value.items()}
        return value

    content = {k: v for k, v in record.items() if k != "metadata"}
    dumped = orjson.dumps(normalize(content), option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.blake2b(dumped, digest_size=8).digest(), "big")


def test_keys_equal_the_uncached_ones_for_long_and_short_texts() -> None:
    rng = random.Random(21)
    words = ["Kari", "NORDMANN", "straße", "ΣΊΣΥΦΟΣ", "İstanbul", "a\u00a0b", "x\ty", "\n\n"]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 400))) for _ in range(300)]
    assert any(len(text) >= NORMALIZED_FROM_CHARS for text in texts)
    for _ in range(2):  # the second time from the kept forms
        for text in texts:
            record = {
                "messages": [{"role": "user", "content": text}, {"role": "assistant"}],
                "metadata": {"id": text[:10]},
            }
            assert content_key(record) == reference_key(record)


def test_normalized_forms_stay_within_their_budget() -> None:
    kept = Normalized(budget=20_000)
    for n in range(500):
        text = f"  Prompt {n}\n" + "Word " * 60
        assert kept.get(text) == " ".join(text.split()).casefold()
        assert kept.chars <= kept.budget
    long = "x " * 200  # over a hundredth of the budget: made, never kept
    assert kept.get(long) == " ".join(long.split())
    assert long not in kept._forms
