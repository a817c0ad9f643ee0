"""Guardrails and automatic promotion, on the A/B readout's own statistics (gateway/experiments.py).

For each arm against the control, in this order:

1. **Guardrails.** The arm is rolled back when, with `min_samples` per arm and p < `alpha`, its
   error rate is worse than the control's by more than `max_error_rate_increase`, or its mean
   latency is significantly worse and its p95 over `max_latency_p95_ratio` times the control's,
   or its mean cost per call significantly worse and over `max_cost_ratio` times.
2. **Promotion.** An arm whose positive feedback rate is significantly better, with no
   guardrail breached, is promoted.
3. **Adaptive weights** (`adaptive: true`): otherwise, Thompson sampling on the positive rate
   (Beta(1 + positive, 1 + negative) per arm) sets each arm's share to the probability that it
   is best, kept within [`min_share`, 100 - `min_share`] so no arm starves.

`mode: recommend` writes the decision down (audit log, metric, the health readout) and changes
nothing; `mode: act` applies it through gateway/tuning/rollout.py. Every decision carries its
reason in words, e.g. "rolled back: error rate 7.9% vs 1.2%, p < 0.001".
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import PolicyConfig

ROLLBACK, PROMOTE, WEIGHTS = "rollback", "promote", "weights"
_DRAWS = 4000


@dataclass(frozen=True)
class Decision:
    action: str  # rollback, promote or weights
    variant: str | None
    reason: str
    weights: Mapping[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "variant": self.variant,
            "reason": self.reason,
            "weights": dict(self.weights) if self.weights else None,
        }


def decide(result: Mapping[str, Any], policy: PolicyConfig, seed: int = 0) -> list[Decision]:
    """What the policy does about one readout (`gateway.experiments.readout`)."""
    control = result.get("control")
    variants = {v["variant"]: v for v in result.get("variants", [])}
    if control is None or control not in variants:
        return []
    decisions: list[Decision] = []
    for comparison in result.get("comparisons", []):
        name = comparison["variant"]
        metrics = {m["metric"]: m for m in comparison["metrics"]}
        breach = _guardrail(variants[name], variants[control], metrics, policy)
        if breach is not None:
            decisions.append(Decision(ROLLBACK, name, f"rolled back: {breach}"))
            continue
        positive = metrics["positive_rate"]
        if positive["verdict"] == "better than control":
            mine, theirs = variants[name]["positive_rate"], variants[control]["positive_rate"]
            reason = (
                f"promoted: positive rate {_pct(mine)} vs {_pct(theirs)}, {_p(positive['p_value'])}"
            )
            decisions.append(Decision(PROMOTE, name, reason))
    if any(d.action == PROMOTE for d in decisions):
        best = max(
            (d for d in decisions if d.action == PROMOTE),
            key=lambda d: variants[str(d.variant)]["positive_rate"] or 0,
        )
        return [d for d in decisions if d.action == ROLLBACK] + [best]
    if policy.adaptive and not decisions:
        weights = thompson(result, policy.min_share, seed)
        if weights:
            shares = ", ".join(f"{k} {v:.0f}%" for k, v in weights.items())
            decisions.append(
                Decision(WEIGHTS, None, f"adaptive weights: {shares} (Thompson sampling)", weights)
            )
    return decisions


def thompson(result: Mapping[str, Any], min_share: float, seed: int = 0) -> dict[str, float]:
    """Each arm's share: the probability that its positive rate is the highest, by sampling
    from Beta(1 + positive, 1 + negative); at least `min_share` percent each."""
    arms = []
    for v in result.get("variants", []):
        judged = v["feedback_count"]
        positive = round((v["positive_rate"] or 0) * judged)
        arms.append((v["variant"], 1 + positive, 1 + judged - positive))
    if len(arms) < 2:
        return {}
    rng = random.Random(seed)
    wins = dict.fromkeys((name for name, _, _ in arms), 0)
    for _ in range(_DRAWS):
        draws = {name: rng.betavariate(a, b) for name, a, b in arms}
        wins[max(draws, key=lambda n: draws[n])] += 1
    # Every arm gets the floor first; the rest goes by the probability of being best.
    floor = min(min_share, 100 / len(arms))
    rest = 100 - floor * len(arms)
    return {name: round(floor + count / _DRAWS * rest, 1) for name, count in wins.items()}


def _guardrail(
    variant: Mapping[str, Any],
    control: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    policy: PolicyConfig,
) -> str | None:
    errors = metrics["error_rate"]
    if (
        errors["verdict"] == "worse than control"
        and (errors["difference"] or 0) > policy.max_error_rate_increase
    ):
        return (
            f"error rate {_pct(variant['error_rate'])} vs {_pct(control['error_rate'])},"
            f" {_p(errors['p_value'])}"
        )
    latency = metrics["latency_ms"]
    mine, theirs = variant["latency_p95_ms"], control["latency_p95_ms"]
    if (
        latency["verdict"] == "worse than control"
        and mine is not None
        and theirs
        and mine / theirs > policy.max_latency_p95_ratio
    ):
        return f"latency p95 {mine:.0f} ms vs {theirs:.0f} ms, {_p(latency['p_value'])}"
    cost = metrics["cost_usd"]
    mine, theirs = variant["mean_cost_usd"], control["mean_cost_usd"]
    if (
        cost["verdict"] == "worse than control"
        and mine is not None
        and theirs
        and mine / theirs > policy.max_cost_ratio
    ):
        return f"cost per call ${mine:.6f} vs ${theirs:.6f}, {_p(cost['p_value'])}"
    return None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _p(value: float | None) -> str:
    if value is None:
        return "p unknown"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"
