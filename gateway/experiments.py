"""The A/B readout: per-variant results and each variant against the control, with statistics.

Pure functions over rows from the store, so the figures can be checked against values computed
independently. Rates use a two-proportion z-test (pooled for the p-value, unpooled for the 95%
interval); means use Welch's t-test, which does not assume equal variances. A verdict is given
only once both arms have `min_samples` and p < `alpha`; before that the readout says so.
scipy is imported here, when a readout is asked for, never on the request path.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean, median, quantiles
from typing import Any

from gateway.records.feedback import latest

SUCCESS = "success"


@dataclass
class Arm:
    """One variant's rows: requests, and the latest feedback of each of them."""

    name: str
    requests: int = 0
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    judged: int = 0  # interactions with a thumb, an outcome or a rating
    positive: int = 0
    ratings: list[float] = field(default_factory=list)
    with_feedback: int = 0


def is_positive(feedback: Mapping[str, Any]) -> bool:
    rating = feedback.get("rating")
    return (
        feedback.get("thumbs") == "up"
        or feedback.get("outcome") == "accepted"
        or (rating is not None and rating >= 4)
    )


def latest_feedback(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per interaction, the latest value of each field (events oldest first)."""
    by_interaction: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        by_interaction[str(event["interaction_id"])].append(event)
    return {key: latest(group) for key, group in by_interaction.items()}


def collect(
    interactions: Iterable[Mapping[str, Any]], feedback: Mapping[str, Mapping[str, Any]]
) -> dict[str, Arm]:
    arms: dict[str, Arm] = {}
    for row in interactions:
        name = row["variant"] or "-"
        arm = arms.setdefault(name, Arm(name))
        arm.requests += 1
        if row["status"] != SUCCESS:
            arm.errors += 1
        for values, key in ((arm.latency_ms, "latency_ms"), (arm.ttft_ms, "ttft_ms")):
            if row.get(key) is not None:
                values.append(float(row[key]))
        if row.get("cost_usd") is not None:
            arm.cost_usd.append(float(row["cost_usd"]))
        if row.get("prompt_tokens") is not None:
            arm.tokens.append(float(row["prompt_tokens"] + (row.get("completion_tokens") or 0)))
        judgement = feedback.get(str(row["id"]))
        if judgement:
            arm.with_feedback += 1
            arm.judged += 1
            arm.positive += is_positive(judgement)
            if judgement.get("rating") is not None:
                arm.ratings.append(float(judgement["rating"]))
    return arms


def summary(arm: Arm, total: int) -> dict[str, Any]:
    return {
        "variant": arm.name,
        "requests": arm.requests,
        "traffic_share": arm.requests / total if total else None,
        "error_rate": arm.errors / arm.requests if arm.requests else None,
        "latency_p50_ms": _percentile(arm.latency_ms, 50),
        "latency_p95_ms": _percentile(arm.latency_ms, 95),
        "ttft_p50_ms": _percentile(arm.ttft_ms, 50),
        "mean_cost_usd": fmean(arm.cost_usd) if arm.cost_usd else None,
        "mean_tokens": fmean(arm.tokens) if arm.tokens else None,
        "feedback_count": arm.with_feedback,
        "positive_rate": arm.positive / arm.judged if arm.judged else None,
        "mean_rating": fmean(arm.ratings) if arm.ratings else None,
    }


def _percentile(values: Sequence[float], p: int) -> float | None:
    if not values:
        return None
    if p == 50:
        return float(median(values))
    if len(values) == 1:
        return float(values[0])
    return float(quantiles(values, n=100, method="inclusive")[p - 1])


@dataclass(frozen=True)
class Comparison:
    metric: str
    kind: str  # "rate" or "mean"
    higher_is_better: bool
    control_n: int
    variant_n: int
    difference: float | None = None
    ci95: tuple[float, float] | None = None
    p_value: float | None = None
    verdict: str = ""


def compare_rates(
    metric: str,
    higher_is_better: bool,
    control: tuple[int, int],
    variant: tuple[int, int],
    min_samples: int,
    alpha: float,
) -> Comparison:
    """`control` and `variant` are (successes, trials). Two-proportion z-test."""
    from scipy.stats import norm

    (x1, n1), (x2, n2) = control, variant
    base = Comparison(metric, "rate", higher_is_better, n1, n2)
    if not n1 or not n2:
        return _with(base, verdict="no data yet")
    p1, p2 = x1 / n1, x2 / n2
    diff = p2 - p1
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z_crit = float(norm.ppf(0.975))
    pooled = (x1 + x2) / (n1 + n2)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if pooled_se == 0 else float(2 * norm.sf(abs(diff) / pooled_se))
    result = _with(
        base, difference=diff, ci95=(diff - z_crit * se, diff + z_crit * se), p_value=p_value
    )
    return _with(result, verdict=_verdict(result, min_samples, alpha))


def compare_means(
    metric: str,
    higher_is_better: bool,
    control: Sequence[float],
    variant: Sequence[float],
    min_samples: int,
    alpha: float,
) -> Comparison:
    """Welch's t-test on the difference of means (variant - control)."""
    from scipy.stats import ttest_ind

    base = Comparison(metric, "mean", higher_is_better, len(control), len(variant))
    if len(control) < 2 or len(variant) < 2:
        return _with(base, verdict="no data yet" if not control or not variant else "")
    diff = fmean(variant) - fmean(control)
    if max(control) == min(control) and max(variant) == min(variant):
        # Both arms constant (a fixed price per call, say): the difference is exact.
        result = _with(base, difference=diff, ci95=(diff, diff), p_value=1.0 if diff == 0 else 0.0)
        return _with(result, verdict=_verdict(result, min_samples, alpha))
    with warnings.catch_warnings():
        # One constant arm is fine for Welch's test, but scipy warns about its variance.
        warnings.simplefilter("ignore", RuntimeWarning)
        test = ttest_ind(variant, control, equal_var=False)
    p_value = float(test.pvalue)
    if math.isnan(p_value):
        result = _with(base, difference=diff)
    else:
        low, high = test.confidence_interval(0.95)
        result = _with(base, difference=diff, ci95=(float(low), float(high)), p_value=p_value)
    return _with(result, verdict=_verdict(result, min_samples, alpha))


def _verdict(result: Comparison, min_samples: int, alpha: float) -> str:
    smaller = min(result.control_n, result.variant_n)
    if smaller < min_samples:
        return f"not enough data yet: {smaller} of {min_samples} samples in the smaller arm"
    if result.p_value is None or result.p_value >= alpha or not result.difference:
        return "no significant difference"
    better = (result.difference > 0) == result.higher_is_better
    return "better than control" if better else "worse than control"


def _with(comparison: Comparison, **changes: Any) -> Comparison:
    return Comparison(**{**comparison.__dict__, **changes})


def readout(
    model: str,
    interactions: Iterable[Mapping[str, Any]],
    feedback_events: Iterable[Mapping[str, Any]],
    *,
    control: str | None,
    min_samples: int,
    alpha: float,
) -> dict[str, Any]:
    arms = collect(interactions, latest_feedback(feedback_events))
    total = sum(arm.requests for arm in arms.values())
    control_name = control if control in arms else next(iter(arms), None)
    result: dict[str, Any] = {
        "model": model,
        "control": control_name,
        "min_samples": min_samples,
        "alpha": alpha,
        "requests": total,
        "variants": [summary(arm, total) for arm in arms.values()],
        "comparisons": [],
    }
    if control_name is None:
        result["note"] = "no traffic in this window yet"
        return result
    base = arms[control_name]
    for arm in arms.values():
        if arm.name == control_name:
            continue
        checks = [
            compare_rates(
                "error_rate",
                False,
                (base.errors, base.requests),
                (arm.errors, arm.requests),
                min_samples,
                alpha,
            ),
            compare_rates(
                "positive_rate",
                True,
                (base.positive, base.judged),
                (arm.positive, arm.judged),
                min_samples,
                alpha,
            ),
            compare_means("mean_rating", True, base.ratings, arm.ratings, min_samples, alpha),
            compare_means("latency_ms", False, base.latency_ms, arm.latency_ms, min_samples, alpha),
            compare_means("cost_usd", False, base.cost_usd, arm.cost_usd, min_samples, alpha),
        ]
        result["comparisons"].append(
            {"variant": arm.name, "against": control_name, "metrics": [c.__dict__ for c in checks]}
        )
    return result


def format_readout(result: Mapping[str, Any]) -> str:
    """The readout as the plain-text table `flywheel experiments MODEL` prints."""
    lines = [
        f"{result['model']}: {result['requests']} requests, control {result['control'] or '-'}"
        f" (verdicts need {result['min_samples']} samples per arm and p < {result['alpha']})"
    ]
    if result.get("note"):
        return "\n".join([*lines, result["note"]])
    header = (
        "VARIANT",
        "REQUESTS",
        "SHARE",
        "ERRORS",
        "P50 MS",
        "P95 MS",
        "TTFT P50",
        "MEAN COST",
        "TOKENS",
        "FEEDBACK",
        "POSITIVE",
        "RATING",
    )
    rows: list[Sequence[str]] = [header]
    for v in result["variants"]:
        rows.append(
            (
                v["variant"],
                str(v["requests"]),
                _pct(v["traffic_share"]),
                _pct(v["error_rate"]),
                _num(v["latency_p50_ms"]),
                _num(v["latency_p95_ms"]),
                _num(v["ttft_p50_ms"]),
                _num(v["mean_cost_usd"], 6),
                _num(v["mean_tokens"]),
                str(v["feedback_count"]),
                _pct(v["positive_rate"]),
                _num(v["mean_rating"], 2),
            )
        )
    lines += _table(rows)
    for comparison in result["comparisons"]:
        lines.append("")
        lines.append(f"{comparison['variant']} against {comparison['against']}:")
        rows = [("METRIC", "DIFFERENCE", "95% CI", "P-VALUE", "VERDICT")]
        for m in comparison["metrics"]:
            ci = m["ci95"]
            rows.append(
                (
                    m["metric"],
                    _num(m["difference"], 4, signed=True),
                    f"[{_num(ci[0], 4)}, {_num(ci[1], 4)}]" if ci else "-",
                    _num(m["p_value"], 4),
                    m["verdict"] or "-",
                )
            )
        lines += _table(rows)
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
