"""Canary, weights, promote, rollback: one call each, written to the store, audited.

How the store and config.yaml combine: config.yaml is the readable baseline. A model with no
row in `route_overrides` routes exactly as config.yaml says. The first change to a model copies
its baseline arms (a passthrough becomes one arm named `base`) into a row, with the bucket
ranges config.yaml's split already gives them, so that nobody moves; from then on the row's
arms, weights and control replace config.yaml's for that model, while sticky mode, salt,
fallback and each variant's params and system prompt still come from config.yaml. `reset`
deletes the row and the model is config.yaml's again. Every replica reads the rows every
`tuning.refresh_interval` seconds (`OverrideRefresher`) and applies them at once.

Weights are percentages of the model's traffic. A change moves as few users as it can
(gateway/tuning/allocation.py). Writes compare-and-set the row's revision and retry on a
conflict, so two changes at once are applied one after the other, never one over the other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.config import Config, ModelConfig
from gateway.errors import ModelNotFound, StoreError, ValidationFailed
from gateway.privacy.audit import record_action
from gateway.routing import Router
from gateway.store import Store
from gateway.tuning import allocation

log = logging.getLogger(__name__)

CANDIDATE, CANARY, LIVE, RETIRED = "candidate", "canary", "live", "retired"
BASE_ARM = "base"  # the one arm of a passthrough model, once it has an override
_ATTEMPTS = 5


def baseline(model: ModelConfig) -> dict[str, Any]:
    """config.yaml's arms for `model`, as an override row would hold them."""
    arms: list[dict[str, Any]]
    if not model.variants:
        arms = [{"name": BASE_ARM, "provider": model.provider, "model": model.model or model.name}]
        weights = [100.0]
        control = BASE_ARM
    else:
        total = sum(v.weight for v in model.variants)
        arms = [{"name": v.name, "provider": v.provider, "model": v.model} for v in model.variants]
        weights = [v.weight / total * 100 for v in model.variants]
        control = model.control or model.variants[0].name
    ranges = allocation.consecutive([str(a["name"]) for a in arms], weights)
    for arm, weight in zip(arms, weights, strict=True):
        arm.update(weight=weight, ranges=ranges[arm["name"]])
    return {"model": model.name, "revision": 0, "arms": arms, "control": control}


async def current(store: Store, config: Config, model: str) -> dict[str, Any]:
    """The model's override row, or its baseline (revision 0) when it has none."""
    if model not in config.models:
        raise ModelNotFound(model)
    for row in await store.route_overrides():
        if row["model"] == model:
            return row
    return baseline(config.models[model])


async def canary(
    store: Store,
    config: Config,
    model: str,
    variant: str,
    weight: float,
    *,
    actor: str | None,
    router: Router | None = None,
    provider: str | None = None,
    upstream_model: str | None = None,
) -> dict[str, Any]:
    """Add `variant` (a registered version, or `provider` + `upstream_model`) with `weight`
    percent of the traffic; the other arms share the rest in their current proportions."""
    if not 0 < weight < 100:
        raise ValidationFailed("weight: a canary's weight is a percentage between 0 and 100")
    if provider is None or upstream_model is None:
        version = await _version(store, model, variant)
        provider, upstream_model = version["provider"], version["upstream_model"]
    if provider not in config.providers:
        raise ValidationFailed(f"provider: {provider!r} is not a provider of config.yaml")

    def change(row: dict[str, Any]) -> dict[str, float]:
        arms = [a for a in row["arms"] if a["name"] != variant]
        # An arm already there keeps its buckets: its users stay while its weight changes.
        kept = [a.get("ranges", []) for a in row["arms"] if a["name"] == variant]
        others = sum(a["weight"] for a in arms) or 1.0
        weights = {a["name"]: a["weight"] / others * (100 - weight) for a in arms}
        arm = {"name": variant, "provider": provider, "model": upstream_model}
        row["arms"] = [*arms, {**arm, "ranges": kept[0] if kept else []}]
        return {**weights, variant: weight}

    row = await _update(store, config, model, change, "rollout.canary", actor, router)
    await _set_status(store, model, variant, CANARY)
    return row


async def set_weights(
    store: Store,
    config: Config,
    model: str,
    weights: Mapping[str, float],
    *,
    actor: str | None,
    router: Router | None = None,
) -> dict[str, Any]:
    """New weights for the model's arms (every arm named; relative, made percentages)."""
    total = sum(weights.values())
    if any(w < 0 for w in weights.values()) or total <= 0:
        raise ValidationFailed("weights: must not be negative and must add up to more than 0")

    def change(row: dict[str, Any]) -> dict[str, float]:
        names = {a["name"] for a in row["arms"]}
        if set(weights) != names:
            raise ValidationFailed(
                f"weights: name every arm of {model}: {', '.join(sorted(names))}"
            )
        return {name: w / total * 100 for name, w in weights.items()}

    return await _update(store, config, model, change, "rollout.weights", actor, router)


async def promote(
    store: Store,
    config: Config,
    model: str,
    variant: str,
    *,
    actor: str | None,
    router: Router | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """`variant` takes all the traffic and becomes the control; the other arms leave."""
    retired: list[str] = []

    def change(row: dict[str, Any]) -> dict[str, float]:
        _arm(row, model, variant)
        retired[:] = [a["name"] for a in row["arms"] if a["name"] != variant]
        row["arms"] = [a for a in row["arms"] if a["name"] == variant]
        row["control"] = variant
        return {variant: 100.0}

    row = await _update(store, config, model, change, "rollout.promote", actor, router, reason)
    await _set_status(store, model, variant, LIVE)
    for name in retired:
        await _set_status(store, model, name, RETIRED)
    return row


async def rollback(
    store: Store,
    config: Config,
    model: str,
    variant: str,
    *,
    actor: str | None,
    router: Router | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Take `variant` out; its users go back to the other arms. The control cannot leave."""

    def change(row: dict[str, Any]) -> dict[str, float]:
        _arm(row, model, variant)
        if variant == row.get("control"):
            raise ValidationFailed(f"variant: {variant} is the control of {model}; promote another")
        row["arms"] = [a for a in row["arms"] if a["name"] != variant]
        return {a["name"]: a["weight"] for a in row["arms"]}

    row = await _update(store, config, model, change, "rollout.rollback", actor, router, reason)
    await _set_status(store, model, variant, RETIRED)
    return row


async def reset(
    store: Store, config: Config, model: str, *, actor: str | None, router: Router | None = None
) -> bool:
    """Drop the model's override: config.yaml routes it again."""
    if model not in config.models:
        raise ModelNotFound(model)
    deleted = await store.delete_route_override(model)
    await record_action(store, actor, "rollout.reset", model, 200, {"deleted": deleted})
    if router is not None:
        await refresh(store, router)
    return deleted


async def refresh(store: Store, router: Router) -> list[str]:
    """Apply the store's overrides to `router` now; the models whose override was left out."""
    rows = await store.route_overrides()
    skipped = router.apply_overrides({row["model"]: row for row in rows})
    for model in skipped:
        log.warning("route override for %s not applied: model or provider not in config", model)
    return skipped


class OverrideRefresher:
    """Reads the overrides every `interval` seconds and applies them when a revision changed:
    how every replica follows a change made on another within a few seconds."""

    def __init__(self, store: Store, router: Router, interval: float):
        self.store, self.router, self.interval = store, router, interval
        self._seen: dict[str, int] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flywheel-route-overrides")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)

    async def once(self) -> bool:
        """Read the overrides; apply them if any changed. True when applied."""
        rows = await self.store.route_overrides()
        seen = {row["model"]: int(row["revision"]) for row in rows}
        if seen == self._seen:
            return False
        self.router.apply_overrides({row["model"]: row for row in rows})
        self._seen = seen
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.once()
            except StoreError as exc:  # down, or not migrated yet: the next pass tries again
                log.debug("route overrides not read: %s", exc)
            await asyncio.sleep(self.interval)


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel a background task and wait for it. A task cancelled inside an asyncpg query may
    end with the driver's own error instead (releasing the connection mid-query): at shutdown
    that is logged, not raised into the app's cleanup."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        log.debug("task %s ended with an error as it was stopped", task.get_name(), exc_info=True)


# -- the shared read-change-write ------------------------------------------------------------
async def _update(
    store: Store,
    config: Config,
    model: str,
    change: Any,
    action: str,
    actor: str | None,
    router: Router | None,
    reason: str | None = None,
) -> dict[str, Any]:
    for _ in range(_ATTEMPTS):
        row = await current(store, config, model)
        revision = int(row["revision"])
        before = {a["name"]: round(a["weight"], 4) for a in row["arms"]}
        row = {**row, "arms": [dict(a) for a in row["arms"]]}
        weights = change(row)
        owned = {a["name"]: a.get("ranges", []) for a in row["arms"]}
        ranges = allocation.rebalance(owned, weights)
        row["arms"] = [
            {**a, "weight": weights[a["name"]], "ranges": ranges[a["name"]]} for a in row["arms"]
        ]
        if row.get("control") not in weights:
            row["control"] = row["arms"][0]["name"]
        row.update(revision=revision + 1, updated_at=datetime.now(UTC), updated_by=actor)
        if await store.save_route_override(row, revision):
            after = {name: round(w, 4) for name, w in weights.items()}
            detail = {"before": before, "after": after, "revision": revision + 1}
            if reason:
                detail["reason"] = reason
            await record_action(store, actor, action, model, 200, detail)
            log.info("%s %s by %s: %s -> %s", action, model, actor, before, after)
            if router is not None:
                await refresh(store, router)
            return as_json(row)
    raise StoreError(f"{model}: the routing override kept changing under this update; retry")


def _arm(row: Mapping[str, Any], model: str, variant: str) -> None:
    names = [a["name"] for a in row["arms"]]
    if variant not in names:
        raise ValidationFailed(f"variant: {model} has no arm {variant!r} ({', '.join(names)})")


async def _version(store: Store, model: str, variant: str) -> dict[str, Any]:
    for version in await store.model_versions(model):
        if version["variant"] == variant:
            return version
    raise ValidationFailed(
        f"variant: no registered version {variant!r} of {model}; give provider and model"
    )


async def _set_status(store: Store, model: str, variant: str, status: str) -> None:
    for version in await store.model_versions(model):
        if version["variant"] == variant and version["status"] != status:
            await store.save_model_version(
                {**version, "status": status, "updated_at": datetime.now(UTC)}
            )


def as_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
