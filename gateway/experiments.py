"""The A/B readout: per-variant results and each variant against the control, with statistics.

Pure functions over per-variant figures (`Arm`: counts, `Moments` of latency, cost, tokens and
ratings, percentiles), which the store computes in SQL (`experiment_arms`) or `collect` from rows,
so the figures can be checked against values computed independently. Rates use a
two-proportion z-test (pooled for the p-value, unpooled for the 95% interval); means use
Welch's t-test from each arm's moments, which does not assume equal variances. A verdict is given
only once both arms have `min_samples` and p < `alpha`; before that the readout says so.
scipy is imported here, when a readout is asked for, never on the request path.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.records.feedback import latest
from gateway.store.queries import interpolated_percentile

SUCCESS = "success"


@dataclass(frozen=True)
class Moments:
    """What a mean comparison needs of a sample: its size, sum, sum of squares and range.
    The store computes them in SQL, so a readout never pulls rows into Python."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Moments:
        if not values:
            return cls()
        return cls(
            len(values),
            math.fsum(values),
            math.fsum(v * v for v in values),
            min(values),
            max(values),
        )

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float:
        """Sample variance; exactly 0 for a constant sample (the sums would leave a residue)."""
        if self.n < 2 or self.low == self.high:
            return 0.0
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


@dataclass
class Arm:
    """One variant's figures: requests, errors, latency, cost and tokens, and the latest
    feedback of its interactions (`judged`: with a thumb, an outcome or a rating)."""

    name: str
    requests: int = 0
    errors: int = 0
    latency: Moments = field(default_factory=Moments)
    cost: Moments = field(default_factory=Moments)
    tokens: Moments = field(default_factory=Moments)
    ratings: Moments = field(default_factory=Moments)
    percentiles: dict[str, float | None] = field(default_factory=dict)  # latency p50/p95, ttft p50
    judged: int = 0
    positive: int = 0


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
    """Arms from rows (the store's `experiment_arms` computes the same in SQL)."""
    rows: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in interactions:
        rows[row["variant"] or "-"].append(row)
    arms = {}
    for name, group in rows.items():
        judgements = [j for j in (feedback.get(str(r["id"])) for r in group) if j]
        latency = [float(r["latency_ms"]) for r in group if r.get("latency_ms") is not None]
        ttft = [float(r["ttft_ms"]) for r in group if r.get("ttft_ms") is not None]
        arms[name] = Arm(
            name,
            requests=len(group),
            errors=sum(r["status"] != SUCCESS for r in group),
            latency=Moments.of(latency),
            cost=Moments.of([float(r["cost_usd"]) for r in group if r.get("cost_usd") is not None]),
            tokens=Moments.of(
                [
                    float(r["prompt_tokens"] + (r.get("completion_tokens") or 0))
                    for r in group
                    if r.get("prompt_tokens") is not None
                ]
            ),
            ratings=Moments.of(
                [float(j["rating"]) for j in judgements if j.get("rating") is not None]
            ),
            percentiles={
                "latency_p50_ms": interpolated_percentile(latency, 50),
                "latency_p95_ms": interpolated_percentile(latency, 95),
                "ttft_p50_ms": interpolated_percentile(ttft, 50),
            },
            judged=len(judgements),
            positive=sum(is_positive(j) for j in judgements),
        )
    return arms


def summary(arm: Arm, total: int) -> dict[str, Any]:
    return {
        "variant": arm.name,
        "requests": arm.requests,
        "traffic_share": arm.requests / total if total else None,
        "error_rate": arm.errors / arm.requests if arm.requests else None,
        "latency_p50_ms": arm.percentiles.get("latency_p50_ms"),
        "latency_p95_ms": arm.percentiles.get("latency_p95_ms"),
        "ttft_p50_ms": arm.percentiles.get("ttft_p50_ms"),
        "mean_cost_usd": arm.cost.mean,
        "mean_tokens": arm.tokens.mean,
        "feedback_count": arm.judged,
        "positive_rate": arm.positive / arm.judged if arm.judged else None,
        "mean_rating": arm.ratings.mean,
    }


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
    control: Moments | Sequence[float],
    variant: Moments | Sequence[float],
    min_samples: int,
    alpha: float,
) -> Comparison:
    """Welch's t-test on the difference of means (variant - control), from each arm's
    moments: the statistic, Welch-Satterthwaite degrees of freedom and the t interval, as
    scipy's `ttest_ind(equal_var=False)` computes them from the values."""
    from scipy.stats import t as t_dist

    a = control if isinstance(control, Moments) else Moments.of(control)
    b = variant if isinstance(variant, Moments) else Moments.of(variant)
    base = Comparison(metric, "mean", higher_is_better, a.n, b.n)
    if a.n < 2 or b.n < 2:
        return _with(base, verdict="no data yet" if not a.n or not b.n else "")
    diff = b.total / b.n - a.total / a.n
    if a.low == a.high and b.low == b.high:
        # Both arms constant (a fixed price per call, say): the difference is exact.
        result = _with(base, difference=diff, ci95=(diff, diff), p_value=1.0 if diff == 0 else 0.0)
        return _with(result, verdict=_verdict(result, min_samples, alpha))
    se2a, se2b = a.variance / a.n, b.variance / b.n
    se = math.sqrt(se2a + se2b)
    if se == 0:
        return _with(base, difference=diff)
    df = (se2a + se2b) ** 2 / (se2a**2 / (a.n - 1) + se2b**2 / (b.n - 1))
    p_value = float(2 * t_dist.sf(abs(diff) / se, df))
    half = float(t_dist.ppf(0.975, df)) * se
    result = _with(base, difference=diff, ci95=(diff - half, diff + half), p_value=p_value)
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
    """The readout from rows and feedback events (oldest first)."""
    arms = collect(interactions, latest_feedback(feedback_events))
    return readout_of_arms(model, arms, control=control, min_samples=min_samples, alpha=alpha)


def arms_of_figures(figures: Iterable[Mapping[str, Any]]) -> dict[str, Arm]:
    """Arms from the store's per-variant figures (`experiment_figures`), by variant name."""

    def moments(row: Mapping[str, Any], name: str) -> Moments:
        if not row.get(f"{name}_n"):
            return Moments()
        return Moments(
            int(row[f"{name}_n"]),
            *(float(row[f"{name}_{part}"]) for part in ("total", "squares", "low", "high")),
        )

    arms = {}
    for row in sorted(figures, key=lambda r: r["variant"] or "-"):
        name = row["variant"] or "-"
        tokens = int(row["tokens_n"] or 0)
        arms[name] = Arm(
            name,
            requests=int(row["requests"]),
            errors=int(row["errors"] or 0),
            latency=moments(row, "latency"),
            cost=moments(row, "cost"),
            # Only the mean of tokens is shown: its sum is all that is needed.
            tokens=Moments(tokens, float(row["tokens_total"] or 0)) if tokens else Moments(),
            ratings=moments(row, "rating"),
            percentiles={
                key: None if row.get(key) is None else float(row[key])
                for key in ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms")
            },
            judged=int(row.get("judged") or 0),
            positive=int(row.get("positive") or 0),
        )
    return arms


def readout_of_arms(
    model: str, arms: Mapping[str, Arm], *, control: str | None, min_samples: int, alpha: float
) -> dict[str, Any]:
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
            compare_means("latency_ms", False, base.latency, arm.latency, min_samples, alpha),
            compare_means("cost_usd", False, base.cost, arm.cost, min_samples, alpha),
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
