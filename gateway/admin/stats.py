"""`GET /admin/stats`: the stores' per-(model, variant) rows folded into one report.

Totals are sums of the groups (each interaction is in exactly one), except the latency
percentiles, which cannot be added up and come from their own query over the whole window.
Feedback counts the latest value of each field per interaction, so a user who turned 👍 into
👎 counts once, as 👎.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.store.queries import FEEDBACK_DISTRIBUTIONS, TimeWindow

_COUNTS = ("interactions", "success", "error", "client_disconnected")
_SUMS = ("prompt_tokens", "completion_tokens")


def report(
    window: TimeWindow,
    usage: list[dict[str, Any]],
    latency: Mapping[str, float | None],
    feedback: list[dict[str, Any]],
) -> dict[str, Any]:
    by_group = {(g["model"], g["variant"]): g for g in feedback}
    groups = [
        {**_usage(group), "feedback": _feedback([by_group.get((group["model"], group["variant"]))])}
        for group in usage
    ]
    counts = {name: sum(g[name] or 0 for g in usage) for name in (*_COUNTS, *_SUMS)}
    totals = {
        **counts,
        "success_rate": _rate(counts["success"], counts["interactions"]),
        "cost_usd": _sum_known(g["cost_usd"] for g in usage),
        "latency_ms": dict(latency),
        "feedback": _feedback(feedback),
    }
    return {
        "object": "stats",
        "since": window.since.isoformat() if window.since else None,
        "until": window.until.isoformat() if window.until else None,
        "totals": totals,
        "by_variant": groups,
    }


def _usage(group: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": group["model"],
        "variant": group["variant"],
        **{name: group[name] or 0 for name in (*_COUNTS, *_SUMS)},
        "success_rate": _rate(group["success"], group["interactions"]),
        "cost_usd": group["cost_usd"],
        "latency_ms": group["latency_ms"],
    }


def _feedback(groups: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """Events, interactions with feedback and the latest-value distributions, added up."""
    events = interactions = 0
    distributions: dict[str, Counter[str]] = {name: Counter() for name in FEEDBACK_DISTRIBUTIONS}
    for group in groups:
        if group is None:
            continue
        events += group["events"]
        interactions += group["interactions"]
        for name in FEEDBACK_DISTRIBUTIONS:
            distributions[name].update(group[name])
    ratings = distributions["rating"]
    rated = sum(ratings.values())
    return {
        "events": events,
        "interactions": interactions,
        **{name: dict(sorted(counts.items())) for name, counts in distributions.items()},
        "rating_avg": sum(int(r) * n for r, n in ratings.items()) / rated if rated else None,
    }


def _rate(part: int | None, whole: int | None) -> float | None:
    return (part or 0) / whole if whole else None


def _sum_known(values: Iterable[float | None]) -> float | None:
    """Sum of the costs known; None when no interaction had a price (not 0: unknown)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
