"""Provider adapters, built from config: raw OpenAI-compatible and Anthropic passthrough,
litellm, demo."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from gateway.config import ProviderConfig
from gateway.providers.base import Provider, UpstreamResponse


def build_provider(config: ProviderConfig, session: aiohttp.ClientSession) -> Provider:
    if config.type == "openai_compat":
        from gateway.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(config, session)
    if config.type == "anthropic":
        from gateway.providers.anthropic import AnthropicProvider

        return AnthropicProvider(config, session)
    if config.type == "demo":
        from gateway.providers.demo import DemoProvider

        return DemoProvider(config)
    from gateway.providers.litellm_adapter import LiteLLMProvider

    return LiteLLMProvider(config)


def build_providers(
    configs: Mapping[str, ProviderConfig], session: aiohttp.ClientSession
) -> dict[str, Provider]:
    return {name: build_provider(config, session) for name, config in configs.items()}


__all__ = ["Provider", "UpstreamResponse", "build_providers"]
