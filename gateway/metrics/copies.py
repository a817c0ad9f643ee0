"""Counts that other objects already keep (the recorder's rows, the in-flight cap) are copied into
metrics when scraped instead of being counted twice on the hot path."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge


class CountCopy:
    """Adds to a counter what a plain integer kept elsewhere grew by since the last copy."""

    __slots__ = ("counter", "last", "read")

    def __init__(self, counter: Counter, read: Callable[[], int]):
        self.counter = counter
        self.read = read
        self.last = 0

    def sync(self) -> None:
        now = self.read()
        if now > self.last:
            self.counter.inc(now - self.last)
            self.last = now


class GaugeCopy:
    """Sets a gauge to a level kept elsewhere."""

    __slots__ = ("gauge", "read")

    def __init__(self, gauge: Gauge, read: Callable[[], float]):
        self.gauge = gauge
        self.read = read

    def sync(self) -> None:
        self.gauge.set(self.read())


Copy = CountCopy | GaugeCopy
