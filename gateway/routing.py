"""Which upstream answers a requested model name.

Today every configured model is a plain passthrough to one provider and upstream model; A/B
variants (weights, sticky assignment, fallback) extend `Route` with the chosen variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import ModelNotFound


@dataclass(frozen=True)
class Route:
    requested_model: str
    provider: str
    upstream_model: str
    variant: str | None = None
    # litellm's provider prefix (e.g. "anthropic"), which also keys litellm's price table.
    price_hint: str | None = None


class Router:
    def __init__(self, models: Mapping[str, ModelConfig], providers: Mapping[str, ProviderConfig]):
        self._routes = {
            name: Route(
                requested_model=name,
                provider=model.provider,
                upstream_model=model.model,
                price_hint=providers[model.provider].litellm_provider,
            )
            for name, model in models.items()
        }

    @property
    def model_names(self) -> list[str]:
        return list(self._routes)

    def route(self, model: str) -> Route:
        try:
            return self._routes[model]
        except KeyError:
            raise ModelNotFound(model) from None
