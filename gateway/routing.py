"""Which upstream answers a requested model name: a passthrough, or one arm of an A/B split.

Assignment is a deterministic hash of (salt, user or session) into 10,000 buckets, so a user
keeps their arm across restarts and replicas with no shared state. Arms own consecutive bucket
ranges in config order, sized by weight: moving 80/20 to 50/50 moves only the users whose
bucket changed hands. Without a sticky key the arm is drawn per request.

A model may also have an override from the store (gateway/tuning/rollout.py: a canary, new
weights, a promotion): its arms replace config.yaml's for that model, each owning explicit
bucket ranges that change as little as they can, so a user keeps their arm across weight
changes unless their arm is removed or shrinks past them. Sticky mode, salt and the fallback
still come from config.yaml.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import ModelNotFound

BUCKETS = 10_000


@dataclass(frozen=True)
class Route:
    requested_model: str
    provider: str
    upstream_model: str
    variant: str | None = None
    # litellm's provider prefix (e.g. "anthropic"), which also keys litellm's price table.
    price_hint: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None
    # The arm to retry on when this one's upstream fails before answering.
    fallback: Route | None = None

    def apply(self, body: dict[str, Any], endpoint: str = "chat/completions") -> None:
        """Rewrite a request body for this route (in place): model, overrides, system prompt
        (where `endpoint`'s API keeps it: a system message, `instructions`, `system`)."""
        body["model"] = self.upstream_model
        body.update(self.params)
        if self.system_prompt is None:
            return
        if endpoint == "responses":
            body["instructions"] = self.system_prompt
            if isinstance(body.get("input"), list):
                body["input"] = [item for item in body["input"] if not _is_system(item)]
        elif endpoint == "messages":
            body["system"] = self.system_prompt
        elif isinstance(body.get("messages"), list):
            messages = [m for m in body["messages"] if not _is_system(m)]
            body["messages"] = [{"role": "system", "content": self.system_prompt}, *messages]


def _price_hint(provider: ProviderConfig) -> str | None:
    """The prefix of the provider's models in litellm's price table, where they have one."""
    return provider.litellm_provider or ("anthropic" if provider.type == "anthropic" else None)


def _is_system(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") in ("system", "developer")


def bucket(salt: str, key: str) -> int:
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


class _Split:
    """One requested model: its arms with their bucket ranges, and how to pick the key."""

    def __init__(
        self,
        model: ModelConfig,
        providers: Mapping[str, ProviderConfig],
        override: Mapping[str, Any] | None = None,
    ):
        self.model = model
        self.salt = model.salt or model.name
        self.ranges: list[list[list[int]]] | None = None
        self.override_control: str | None = None
        if override is not None:
            self._overridden(model, providers, override)
            return
        if not model.variants:  # a passthrough is a split with one unnamed arm
            assert model.provider is not None
            self.routes = [
                Route(
                    requested_model=model.name,
                    provider=model.provider,
                    upstream_model=model.model or model.name,
                    price_hint=_price_hint(providers[model.provider]),
                )
            ]
            self.bounds = [BUCKETS]
            return
        routes = {
            v.name: Route(
                requested_model=model.name,
                provider=v.provider,
                upstream_model=v.model,
                variant=v.name,
                price_hint=_price_hint(providers[v.provider]),
                params=v.params,
                system_prompt=v.system_prompt,
            )
            for v in model.variants
        }
        if model.fallback:
            fallback = routes[model.fallback]
            routes = {
                name: route if name == model.fallback else _with_fallback(route, fallback)
                for name, route in routes.items()
            }
        self.routes = list(routes.values())
        total = sum(v.weight for v in model.variants)
        running, self.bounds = 0.0, []
        for variant in model.variants:
            running += variant.weight
            self.bounds.append(round(running / total * BUCKETS))

    def _overridden(
        self,
        model: ModelConfig,
        providers: Mapping[str, ProviderConfig],
        override: Mapping[str, Any],
    ) -> None:
        """Arms from the store: a config variant of the same name lends its params and
        system prompt; provider and upstream model are the override's."""
        configured = {v.name: v for v in model.variants}
        routes = {}
        for arm in override["arms"]:
            variant = configured.get(arm["name"])
            routes[arm["name"]] = Route(
                requested_model=model.name,
                provider=arm["provider"],
                upstream_model=arm["model"],
                variant=arm["name"],
                price_hint=_price_hint(providers[arm["provider"]]),
                params=variant.params if variant else {},
                system_prompt=variant.system_prompt if variant else None,
            )
        if model.fallback in routes:
            fallback = routes[model.fallback]
            routes = {
                name: route if name == model.fallback else _with_fallback(route, fallback)
                for name, route in routes.items()
            }
        self.routes = list(routes.values())
        self.ranges = [arm["ranges"] for arm in override["arms"]]
        self.override_control = override.get("control")

    def pick(self, user: str | None, session: str | None) -> Route:
        if len(self.routes) == 1:
            return self.routes[0]
        key = self.sticky_key(user, session)
        point = bucket(self.salt, key) if key is not None else random.randrange(BUCKETS)
        if self.ranges is not None:
            for route, owned in zip(self.routes, self.ranges, strict=True):
                if any(low <= point < high for low, high in owned):
                    return route
            return self.routes[0]
        for route, bound in zip(self.routes, self.bounds, strict=True):
            if point < bound:
                return route
        return self.routes[-1]

    def sticky_key(self, user: str | None, session: str | None) -> str | None:
        sticky = self.model.sticky
        if sticky in ("auto", "user") and user:
            return f"user:{user}"
        if sticky in ("auto", "session") and session:
            return f"session:{session}"
        return None


def _with_fallback(route: Route, fallback: Route) -> Route:
    return dataclasses.replace(route, fallback=fallback)


class Router:
    def __init__(self, models: Mapping[str, ModelConfig], providers: Mapping[str, ProviderConfig]):
        self._overrides: Mapping[str, Mapping[str, Any]] = {}
        self.replace(models, providers)

    def replace(
        self, models: Mapping[str, ModelConfig], providers: Mapping[str, ProviderConfig]
    ) -> None:
        """Swap every route at once (hot reload): one assignment, so a request sees the old
        table or the new one, never a mix. The store's overrides stay applied on top."""
        self._models, self._providers = models, providers
        self._splits = self._build(self._overrides)

    def apply_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Put the store's overrides (model -> row with `arms`, `control`) over config.yaml's
        baseline, at once; a model without a row goes back to config. An override for a model
        config.yaml does not have, or naming a provider it does not have, is left out (and
        named in the returned list): config.yaml stays the authority on what exists."""
        usable, skipped = {}, []
        for name, row in overrides.items():
            model = self._models.get(name)
            arms = row.get("arms") or []
            if model is None or not arms or any(a["provider"] not in self._providers for a in arms):
                skipped.append(name)
                continue
            usable[name] = row
        self._overrides = usable
        self._splits = self._build(usable)
        return skipped

    def _build(self, overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, _Split]:
        return {
            name: _Split(model, self._providers, overrides.get(name))
            for name, model in self._models.items()
        }

    def override(self, model: str) -> Mapping[str, Any] | None:
        """The store's override applied to `model`, if any."""
        return self._overrides.get(model)

    @property
    def model_names(self) -> list[str]:
        return list(self._splits)

    def variant_names(self, model: str) -> list[str]:
        split = self._splits.get(model)
        return [r.variant for r in split.routes if r.variant] if split else []

    def control(self, model: str) -> str | None:
        """The arm the others are compared with: `control`, else the first; None for a
        passthrough."""
        try:
            split = self._splits[model]
        except KeyError:
            raise ModelNotFound(model) from None
        if split.ranges is not None:
            return split.override_control or split.routes[0].variant
        return split.model.control or (split.routes[0].variant if split.model.variants else None)

    def route(self, model: str, user: str | None = None, session: str | None = None) -> Route:
        try:
            split = self._splits[model]
        except KeyError:
            raise ModelNotFound(model) from None
        return split.pick(user, session)
