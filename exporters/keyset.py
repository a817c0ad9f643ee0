"""The dedup keys an export has seen, exactly, in 8 bytes a slot.

A Python `set` of a million 64-bit ints costs ~64 MB (a 16-byte slot per entry at most
two-thirds full, and a 32-byte int object per key): at 1,000,000 rows it took the exporting
process to 150 MB (issue 21). Here the keys sit in arrays of unsigned 64-bit slots, open
addressing with linear probing, at most half full: 16 MB for a million. Exact, like the set it
replaces: a key is found only if that very key was added.

The keys are BLAKE2b digests (exporters.curate.content_key), so their bits are already uniform:
the top ones pick one of `PARTS` tables, the low ones a slot in it. Each table doubles on its
own, so growing holds one part's old and new arrays at once, not the whole set's. As one table,
the doubling to 2,097,152 slots (at 524,289 keys) held 8 MB and 16 MB together, and that moment
was a one-process export's peak (153 MiB at a million rows, issue 21).
"""

from __future__ import annotations

from array import array

PARTS = 16
_PART_SHIFT = 64 - (PARTS.bit_length() - 1)  # a 64-bit key's top 4 bits name its part
# Slots each part starts with: small exports stay small; a part doubles as it fills.
FIRST_SLOTS = 1 << 8


class KeySet:
    def __init__(self, slots: int = FIRST_SLOTS):
        if slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._parts = [array("Q", bytes(8 * slots)) for _ in range(PARTS)]
        self._counts = [0] * PARTS
        # 0 marks an empty slot, so the key 0 is remembered on the side.
        self._has_zero = False

    def __len__(self) -> int:
        return sum(self._counts) + self._has_zero

    def add(self, key: int) -> bool:
        """Remember `key` (below 2**64); whether it is new (False: seen before)."""
        if key == 0:
            new = not self._has_zero
            self._has_zero = True
            return new
        part = key >> _PART_SHIFT
        slots = self._parts[part]
        mask = len(slots) - 1
        index = key & mask
        while True:
            held = slots[index]
            if held == key:
                return False
            if held == 0:
                break
            index = (index + 1) & mask
        slots[index] = key
        self._counts[part] += 1
        if self._counts[part] * 2 > len(slots):
            self._parts[part] = _doubled(slots)
        return True


def _doubled(old: array[int]) -> array[int]:
    """`old`'s keys in a table twice its size."""
    slots = array("Q", bytes(16 * len(old)))
    mask = len(slots) - 1
    for key in old:
        if key:
            index = key & mask
            while slots[index]:
                index = (index + 1) & mask
            slots[index] = key
    return slots
