"""The dedup keys an export has seen, exactly, in 8 bytes a slot.

A Python `set` of a million 64-bit ints costs ~64 MB (a 16-byte slot per entry at most
two-thirds full, and a 32-byte int object per key): at 1,000,000 rows it took the exporting
process to 150 MB (issue 21). Here the keys sit in one array of unsigned 64-bit slots, open
addressing with linear probing, at most half full: 16 MB for a million. Exact, like the set it
replaces: a key is found only if that very key was added.

The keys are BLAKE2b digests (exporters.curate.content_key), so their low bits are already
uniform and index the table as they are.
"""

from __future__ import annotations

from array import array

# Slots to start with: small exports stay small; the table doubles as it fills.
FIRST_SLOTS = 1 << 12


class KeySet:
    def __init__(self, slots: int = FIRST_SLOTS):
        if slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._slots = array("Q", bytes(8 * slots))
        self._count = 0
        # 0 marks an empty slot, so the key 0 is remembered on the side.
        self._has_zero = False

    def __len__(self) -> int:
        return self._count + self._has_zero

    def add(self, key: int) -> bool:
        """Remember `key`; whether it is new (False: seen before)."""
        if key == 0:
            new = not self._has_zero
            self._has_zero = True
            return new
        slots = self._slots
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
        self._count += 1
        if self._count * 2 > len(slots):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        self._count = 0
        for key in old:
            if key:
                self._place(key)

    def _place(self, key: int) -> None:
        slots = self._slots
        mask = len(slots) - 1
        index = key & mask
        while slots[index]:
            index = (index + 1) & mask
        slots[index] = key
        self._count += 1
