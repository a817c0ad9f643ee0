"""What runs by itself: policies (guardrails, promotion, adaptive weights) and retraining triggers.

Each policy and each trigger is checked every `interval` seconds under a job lock of its own, so
over one PostgreSQL a decision is taken once, not once per replica. Every decision is logged,
counted (`flywheel_tuning_decisions_total{model, action, mode}`), written to the audit log as
`policy.<action>` (`mode: recommend`) or applied through rollout.py, which audits it as
`rollout.<action>` with the reason (`mode: act`). A trigger that fires starts an export and a
fine-tuning run whose result joins as a canary, or only calls its webhook.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from gateway.admin.experiments import compute_readout
from gateway.config import Config, PolicyConfig, TriggerConfig, WebhookConfig
from gateway.errors import ApiError, StoreError
from gateway.privacy.audit import record_action
from gateway.routing import Router
from gateway.store import Store
from gateway.store.queries import TimeWindow
from gateway.tuning import rollout, runs
from gateway.tuning.launchers import UNFINISHED
from gateway.tuning.policy import PROMOTE, ROLLBACK, Decision, decide

log = logging.getLogger(__name__)


class Decisions:
    """The decisions metric, on the app's own registry."""

    def __init__(self, registry: CollectorRegistry | None):
        self.counter = Counter(
            "flywheel_tuning_decisions_total",
            "Automatic rollout decisions, by model, action and mode (recommend or act).",
            ["model", "action", "mode"],
            registry=registry,
        )

    def observe(self, model: str, action: str, mode: str) -> None:
        self.counter.labels(model, action, mode).inc()


async def readout_of_arms(
    store: Store, config: Config, model: str, window_seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's route and its readout over the window, limited to the route's arms (traffic
    of arms already retired is not compared)."""
    route = await rollout.current(store, config, model)
    since = datetime.now(UTC) - timedelta(seconds=window_seconds)
    arms = {arm["name"] for arm in route["arms"]}
    # A passthrough without an override records no variant: its one arm is "-" in the readout.
    control = route.get("control") if route["revision"] else None
    result = await compute_readout(store, config, model, control, TimeWindow(since=since))
    result["variants"] = [v for v in result["variants"] if v["variant"] in arms or not control]
    result["comparisons"] = [c for c in result["comparisons"] if c["variant"] in arms]
    return route, result


async def evaluate(
    store: Store,
    config: Config,
    policy: PolicyConfig,
    *,
    router: Router | None = None,
    decisions: Decisions | None = None,
    apply: bool = True,
) -> dict[str, Any]:
    """One evaluation of a model's policy: the decisions, taken or recommended."""
    route, result = await readout_of_arms(store, config, policy.model, policy.window)
    found = decide(result, policy) if route["revision"] and len(route["arms"]) > 1 else []
    if apply:
        for decision in found:
            await _take(store, config, policy, decision, router)
            if decisions is not None:
                decisions.observe(policy.model, decision.action, policy.mode)
    return {
        "model": policy.model,
        "mode": policy.mode,
        "decisions": [d.as_dict() for d in found],
        "readout": result,
    }


async def _take(
    store: Store, config: Config, policy: PolicyConfig, decision: Decision, router: Router | None
) -> None:
    log.info("policy %s (%s): %s", policy.model, policy.mode, decision.reason)
    if policy.mode != "act":
        await record_action(
            store, "policy", f"policy.{decision.action}", policy.model, 200, decision.as_dict()
        )
        return
    actor, reason = "policy", decision.reason
    if decision.action == ROLLBACK and decision.variant:
        await rollout.rollback(
            store, config, policy.model, decision.variant, actor=actor, router=router, reason=reason
        )
    elif decision.action == PROMOTE and decision.variant:
        await rollout.promote(
            store, config, policy.model, decision.variant, actor=actor, router=router, reason=reason
        )
    elif decision.weights:
        await rollout.set_weights(
            store, config, policy.model, decision.weights, actor=actor, router=router
        )


async def check_trigger(
    store: Store,
    config: Config,
    trigger: TriggerConfig,
    session: aiohttp.ClientSession,
    router: Router | None = None,
) -> dict[str, Any] | None:
    """Check one trigger; what it did when it fired, else None."""
    recent = [r for r in await store.tuning_runs(limit=500) if r.get("model") == trigger.model]
    if any(r["status"] in (*UNFINISHED, "starting") for r in recent):
        return None  # already retraining
    # At most once per window: a webhook is not called again every interval, and a rate still
    # low right after a retraining waits for the new version's own traffic.
    since = datetime.now(UTC) - timedelta(seconds=trigger.window)
    for entry in await store.audit_entries(action="tuning.trigger", limit=100):
        fired_at = datetime.fromisoformat(entry["created_at"])
        if entry["actor"] == f"trigger:{trigger.name}" and fired_at > since:
            return None
    reasons = []
    if trigger.max_age is not None:
        last = max((datetime.fromisoformat(r["created_at"]) for r in recent), default=None)
        age = None if last is None else (datetime.now(UTC) - last).total_seconds()
        if age is None or age > trigger.max_age:
            when = "never tuned" if age is None else f"last tuned {age / 3600:.1f} h ago"
            reasons.append(f"{when} (max {trigger.max_age / 3600:.1f} h)")
    if trigger.min_positive_rate is not None:
        _, result = await readout_of_arms(store, config, trigger.model, trigger.window)
        live = next(
            (v for v in result["variants"] if v["variant"] == result.get("control")),
            None,
        )
        if (
            live is not None
            and live["feedback_count"] >= trigger.min_samples
            and (live["positive_rate"] or 0) < trigger.min_positive_rate
        ):
            reasons.append(
                f"positive rate of {live['variant']} {live['positive_rate']:.1%} over"
                f" {live['feedback_count']} judged < {trigger.min_positive_rate:.1%}"
            )
    if not reasons:
        return None
    fired: dict[str, Any] = {"trigger": trigger.name, "model": trigger.model, "reasons": reasons}
    if trigger.launcher is not None and trigger.base_model is not None:
        request = runs.TuneRequest(
            launcher=trigger.launcher,
            base_model=trigger.base_model,
            job=trigger.job,
            model=trigger.model,
            canary_weight=trigger.canary_weight,
            actor=f"trigger:{trigger.name}",
        )
        try:
            run = await runs.start_run(store, config, session, request)
        except ApiError as exc:  # nothing new to export, the job busy elsewhere
            fired["error"] = exc.message
        else:
            fired["tuning_run"] = run["id"]
    log.info("trigger %s fired for %s: %s", trigger.name, trigger.model, "; ".join(reasons))
    await record_action(
        store, f"trigger:{trigger.name}", "tuning.trigger", trigger.model, 200, fired
    )
    if trigger.webhook is not None:
        from exporters.jobs import announce

        await announce(WebhookConfig(url=trigger.webhook), {"event": "retrain", **fired})
    return fired


async def run_every(
    name: str, interval: float, lock: str, store: Store, work: Callable[[], Awaitable[Any]]
) -> None:
    """Call `work` every `interval` seconds, holding `lock`; a store outage skips a turn."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with store.job_lock(lock) as acquired:
                if acquired:
                    await work()
        except (StoreError, ApiError) as exc:
            log.warning("%s: skipped this turn: %s", name, exc)
