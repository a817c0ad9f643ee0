"""The dedup key table agrees with a Python set, whatever the keys (the 0 key and colliding low
bits included), across its growth."""

from __future__ import annotations

import random

import pytest

from exporters.keyset import KeySet


def test_agrees_with_a_set_across_growth() -> None:
    rng = random.Random(3)
    keys = [rng.getrandbits(64) for _ in range(20_000)]
    # Keys that share their low bits probe the same slots; repeats must be told apart exactly.
    keys += [key ^ (1 << 63) for key in keys[:500]] + keys[:3000] + [0, 0, 1 << 40, 1 << 40]
    rng.shuffle(keys)
    table, plain = KeySet(slots=8), set()
    for key in keys:
        assert table.add(key) == (key not in plain)
        plain.add(key)
    assert len(table) == len(plain)


def test_slots_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        KeySet(slots=12)
