"""Interaction ids: UUIDv7 (RFC 9562), so ids sort by creation time and index well."""

from __future__ import annotations

import random
import time

# Ids must be unique, not secret (a feedback token, not the id, is what grants anything), so the
# random bits come from the process's Mersenne Twister (reseeded after a fork) rather than a
# syscall per id: this runs on every request.
_random = random.getrandbits


def uuid7() -> str:
    """A UUIDv7 in its canonical text form: 48-bit Unix milliseconds, version 7, 74 random bits."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= _random(12) << 64  # rand_a
    value |= 0b10 << 62  # RFC 4122 variant
    value |= _random(62)  # rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
