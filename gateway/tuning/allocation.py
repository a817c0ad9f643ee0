"""Which buckets each arm of a split owns, and how that changes with as few users moved as can be.

The router hashes a user into one of `BUCKETS` buckets (gateway/routing.py). config.yaml's splits
give arms consecutive ranges in order; an override from the store keeps each arm's buckets
explicitly, as a list of `[low, high)` ranges, so that a change of weights moves only the
buckets it must: an arm that shrinks gives up buckets from its end, an arm that grows takes
free ones, and every other user keeps their arm. A removed arm's buckets go to the arms that
grow. Pure functions: nothing here touches the store or a request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.routing import BUCKETS

Ranges = list[list[int]]  # [[low, high), ...], sorted, not overlapping


def consecutive(names: Sequence[str], weights: Sequence[float]) -> dict[str, Ranges]:
    """The ranges config.yaml's splits use: in order, each sized by weight (the same bounds
    as `routing._Split`), so the first override of a split moves nobody."""
    total = sum(weights)
    ranges: dict[str, Ranges] = {}
    low, running = 0, 0.0
    for name, weight in zip(names, weights, strict=True):
        running += weight
        high = round(running / total * BUCKETS) if total > 0 else 0
        ranges[name] = [[low, high]] if high > low else []
        low = high
    return ranges


def targets(weights: Mapping[str, float]) -> dict[str, int]:
    """Bucket counts per arm, summing to `BUCKETS` (largest remainder)."""
    total = sum(max(w, 0.0) for w in weights.values())
    if total <= 0:
        raise ValueError("weights must add up to more than 0")
    exact = {name: max(w, 0.0) / total * BUCKETS for name, w in weights.items()}
    counts = {name: int(value) for name, value in exact.items()}
    short = BUCKETS - sum(counts.values())
    by_remainder = sorted(exact, key=lambda n: (exact[n] - counts[n], n), reverse=True)
    for name in by_remainder[:short]:
        counts[name] += 1
    return counts


def size(ranges: Ranges) -> int:
    return sum(high - low for low, high in ranges)


def rebalance(current: Mapping[str, Ranges], weights: Mapping[str, float]) -> dict[str, Ranges]:
    """New ranges for `weights` (arms not in `weights` are removed), moving as few buckets
    as possible away from `current`."""
    want = targets(weights)
    kept: dict[str, Ranges] = {}
    for name, ranges in current.items():
        ranges = [list(r) for r in sorted(ranges)]
        excess = size(ranges) - want.get(name, 0)
        while excess > 0:  # give up buckets from the end
            low, high = ranges[-1]
            cut = min(excess, high - low)
            if cut == high - low:
                ranges.pop()
            else:
                ranges[-1] = [low, high - cut]
            excess -= cut
        if name in want:
            kept[name] = ranges
    owned = sorted(r for ranges in kept.values() for r in ranges)
    free = _gaps(owned)  # what shrinking and removed arms gave up, and any gap
    for name in weights:
        ranges = kept.setdefault(name, [])
        need = want[name] - size(ranges)
        while need > 0:  # take free buckets from the start
            low, high = free[0]
            take = min(need, high - low)
            ranges.append([low, low + take])
            if take == high - low:
                free.pop(0)
            else:
                free[0] = [low + take, high]
            need -= take
        kept[name] = _merge(sorted(ranges))
    return {name: kept[name] for name in weights}


def owner(ranges: Mapping[str, Ranges], point: int) -> str | None:
    for name, owned in ranges.items():
        for low, high in owned:
            if low <= point < high:
                return name
    return None


def _gaps(owned: Ranges) -> Ranges:
    """Buckets nobody owns (a split written by hand, or from an older allocation)."""
    gaps, at = [], 0
    for low, high in _merge(owned):
        if low > at:
            gaps.append([at, low])
        at = max(at, high)
    if at < BUCKETS:
        gaps.append([at, BUCKETS])
    return gaps


def _merge(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for low, high in sorted(ranges):
        if high <= low:
            continue
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return merged
