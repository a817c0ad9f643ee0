"""The dedup key table agrees with a Python set, whatever the keys (the 0 key and colliding low
bits included), across its growth, and grows one part at a time."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from exporters.keyset import KeySet


def test_agrees_with_a_set_across_growth() -> None:
    rng = random.Random(3)
    keys = [rng.getrandbits(64) for _ in range(20_000)]
    # Keys that share their low bits probe the same slots (in another part with the top bit
    # flipped, in the same part with bit 40); repeats must be told apart exactly.
    keys += [key ^ (1 << 63) for key in keys[:500]] + [key ^ (1 << 40) for key in keys[:500]]
    keys += [*keys[:3000], 0, 0, 1 << 40, 1 << 40]
    rng.shuffle(keys)
    table, plain = KeySet(slots=8), set()
    for key in keys:
        assert table.add(key) == (key not in plain)
        plain.add(key)
    assert len(table) == len(plain)


def test_slots_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        KeySet(slots=12)


def test_growing_holds_little_beside_the_table() -> None:
    """A one-process export's memory peaked when the whole table doubled: the old array and
    the new one held together. Growing part by part, the peak stays near the final size."""
    rng = random.Random(4)
    table = KeySet()
    tracemalloc.start()
    try:
        for _ in range(200_000):
            table.add(rng.getrandbits(64))
        final, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - final < final / 4
