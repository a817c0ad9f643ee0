"""Model health: per arm (version) of a model, the last few windows of volume, error rate,
latency, cost and positive rate, the trend, and a recommendation in plain words; with the
policy's current decisions and the automatic and manual actions taken on the model.

Read-only: nothing here changes a route (the policy is evaluated without applying it).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import Config
from gateway.experiments import readout
from gateway.store import Store
from gateway.store.queries import TimeWindow
from gateway.tuning import rollout
from gateway.tuning.autopilot import evaluate

# Above this error rate a version is unhealthy whatever its control does.
HIGH_ERROR_RATE = 0.05
# A fall of the positive rate by this much from one window to the next is worth a look.
FALLING = 0.10
_ACTIONS = ("rollout.", "policy.", "tuning.trigger")


async def model_health(
    store: Store, config: Config, model: str, *, windows: int = 4, seconds: float = 86400.0
) -> dict[str, Any]:
    route = await rollout.current(store, config, model)
    now = datetime.now(UTC)
    per_window = []
    for i in reversed(range(windows)):  # oldest first
        until = now - timedelta(seconds=seconds * i)
        window = TimeWindow(since=until - timedelta(seconds=seconds), until=until)
        interactions, events = await store.experiment_rows(model, window)
        result = await asyncio.to_thread(
            readout,
            model,
            interactions,
            events,
            control=None,
            min_samples=config.experiments.min_samples,
            alpha=config.experiments.alpha,
        )
        per_window.append((window, {v["variant"]: v for v in result["variants"]}))
    versions = {v["variant"]: v for v in await store.model_versions(model)}
    names = [arm["name"] for arm in route["arms"]] if route["revision"] else []
    for _, seen in per_window:
        names += [name for name in seen if name not in names]
    arms = []
    for name in names:
        series = [
            {"since": w.since.isoformat() if w.since else None, **_figures(seen.get(name))}
            for w, seen in per_window
        ]
        version = versions.get(name)
        arms.append(
            {
                "variant": name,
                "status": _status(name, route, version),
                "version": version,
                "windows": series,
                "trend": _trend(series),
                "recommendation": recommend(series),
            }
        )
    policy = config.tuning.policies.get(model)
    decisions = None
    if policy is not None:
        decisions = (await evaluate(store, config, policy, apply=False))["decisions"]
    audit = await store.audit_entries(limit=200)
    actions = [
        e for e in audit if e.get("target") == model and str(e["action"]).startswith(_ACTIONS)
    ]
    return {
        "object": "model.health",
        "model": model,
        "window_seconds": seconds,
        "control": route.get("control"),
        "arms": arms,
        "policy": None if policy is None else {"mode": policy.mode, "decisions": decisions},
        "actions": actions[:20],
    }


def _figures(summary: dict[str, Any] | None) -> dict[str, Any]:
    if summary is None:
        return {"requests": 0}
    keys = (
        "requests",
        "error_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "mean_cost_usd",
        "feedback_count",
        "positive_rate",
    )
    return {key: summary[key] for key in keys}


def _status(name: str, route: dict[str, Any], version: dict[str, Any] | None) -> str:
    if version is not None:
        return str(version["status"])
    in_route = any(arm["name"] == name for arm in route["arms"])
    if not in_route:
        return rollout.RETIRED
    return rollout.LIVE if name == route.get("control") else rollout.CANARY


def _trend(series: list[dict[str, Any]]) -> dict[str, float | None]:
    """Change from the window before the latest with traffic to the latest."""
    active = [w for w in series if w["requests"]]
    if len(active) < 2:
        return {"positive_rate": None, "error_rate": None}
    before, last = active[-2], active[-1]

    def delta(key: str) -> float | None:
        if last.get(key) is None or before.get(key) is None:
            return None
        return float(last[key] - before[key])

    return {"positive_rate": delta("positive_rate"), "error_rate": delta("error_rate")}


def recommend(series: list[dict[str, Any]]) -> str:
    """One sentence for a person: what to do about this version now."""
    active = [w for w in series if w["requests"]]
    if not active:
        return "No traffic in these windows: nothing to judge yet."
    last = active[-1]
    errors = last.get("error_rate") or 0.0
    if errors > HIGH_ERROR_RATE:
        return f"Unhealthy: {errors:.1%} of calls fail. Check the provider, or roll it back."
    trend = _trend(series)["positive_rate"]
    if trend is not None and trend <= -FALLING:
        return (
            f"Positive feedback fell by {-trend:.0%} to {last['positive_rate']:.0%}:"
            " consider retraining on recent feedback."
        )
    if not last.get("feedback_count"):
        return "Healthy, but no feedback yet: ask users to rate answers to judge quality."
    return f"Healthy: {errors:.1%} errors, {last['positive_rate']:.0%} positive feedback."
