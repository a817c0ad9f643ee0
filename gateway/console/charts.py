"""Small SVG charts drawn on the server: no script, no library, nothing for the CSP to allow.

Each function returns plain numbers for a template to place; templates draw the shapes, so all
text in a chart is escaped like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

WIDTH = 240  # px of the interval axis
PAD = 8


@dataclass(frozen=True)
class Interval:
    """A difference and its 95% interval on an axis centred on zero (no difference)."""

    zero: float
    low: float
    high: float
    point: float
    width: int = WIDTH


def interval(
    difference: float | None, ci95: tuple[float, float] | list[float] | None
) -> Interval | None:
    if difference is None or ci95 is None:
        return None
    low, high = ci95
    reach = max(abs(low), abs(high), abs(difference)) or 1.0
    half = (WIDTH - 2 * PAD) / 2

    def x(value: float) -> float:
        return round(PAD + half + value / reach * half, 1)

    return Interval(zero=x(0), low=x(low), high=x(high), point=x(difference))


CHART_WIDTH = 560
CHART_HEIGHT = 120


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str  # shown on hover, and read by screen readers through <title>


@dataclass(frozen=True)
class Series:
    """One value over time as bars, with an optional second value drawn as a line."""

    title: str
    bars: list[Bar]
    line: str  # SVG polyline points; empty for none
    top: str  # the largest value, labelled on the axis
    start: str
    end: str
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def series(
    title: str,
    buckets: list[int],
    values: list[float | None],
    shown: Callable[[float], str],
    when: Callable[[int], str],
    overlay: list[float | None] | None = None,
) -> Series:
    """Bars for `values` at `buckets` (epoch seconds, evenly spaced, oldest first)."""
    known = [v for v in [*values, *(overlay or [])] if v is not None]
    peak = max(known, default=0.0) or 1.0
    slot = CHART_WIDTH / max(len(buckets), 1)

    def y(value: float) -> float:
        return round(CHART_HEIGHT - value / peak * (CHART_HEIGHT - 4), 1)

    bars = [
        Bar(
            x=round(n * slot + slot * 0.1, 1),
            y=y(value),
            width=round(max(slot * 0.8, 1.0), 1),
            height=round(CHART_HEIGHT - y(value), 1),
            title=f"{when(bucket)}: {shown(value)}",
        )
        for n, (bucket, value) in enumerate(zip(buckets, values, strict=True))
        if value is not None
    ]
    line = " ".join(
        f"{round(n * slot + slot / 2, 1)},{y(value)}"
        for n, value in enumerate(overlay or [])
        if value is not None
    )
    return Series(
        title=title,
        bars=bars,
        line=line,
        top=shown(max(known)) if known else "",
        start=when(buckets[0]) if buckets else "",
        end=when(buckets[-1]) if buckets else "",
    )
