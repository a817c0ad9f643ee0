"""Turns a finished exchange into the fields of its `Interaction`: tokens, cost, flags.

Runs after the last byte has gone to the client, so none of this is paid by the caller's latency.
"""

from __future__ import annotations

from typing import Any

from gateway.interaction import ERROR, Interaction
from gateway.pricing import PriceTable
from gateway.proxy.assembler import ResponseAssembler
from gateway.quality import quality_flags
from gateway.routing import Route
from gateway.tokens import count_completion, count_prompt


def fill_usage(
    interaction: Interaction,
    assembler: ResponseAssembler,
    prices: PriceTable,
    route: Route,
) -> None:
    usage = assembler.usage
    if usage:
        interaction.prompt_tokens = _int(usage.get("prompt_tokens"))
        interaction.completion_tokens = _int(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details") or {}
        interaction.cached_tokens = _int(details.get("cached_tokens"))
        interaction.reasoning_tokens = _int(
            (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        )
    elif interaction.status != ERROR or assembler.first_token_at is not None:
        # No usage from upstream (a provider that ignores stream_options, or a stream cut
        # short): count what we have, and say it is an estimate.
        model = route.upstream_model
        interaction.prompt_tokens = count_prompt(interaction.endpoint, interaction.request, model)
        interaction.completion_tokens = count_completion(assembler.response(), model)
        interaction.usage_estimated = True
    interaction.cost_usd = prices.cost(
        route.upstream_model,
        interaction.prompt_tokens,
        interaction.completion_tokens,
        interaction.cached_tokens,
        provider_hint=route.price_hint,
    )


def fill_answer(interaction: Interaction, assembler: ResponseAssembler, answered: bool) -> None:
    """Response body, id, finish reason and quality flags."""
    response = assembler.response() if answered else None
    if response is not None and interaction.endpoint == "embeddings":
        response = _without_vectors(response)
    interaction.response = response
    interaction.response_id = assembler.response_id
    interaction.finish_reason = assembler.finish_reason
    interaction.quality_flags = quality_flags(
        interaction.endpoint,
        interaction.request,
        assembler.answer_text() if answered else None,
        assembler.has_tool_calls() if answered else False,
        assembler.finish_reason,
    )


def _without_vectors(response: dict[str, Any]) -> dict[str, Any]:
    """Embedding vectors are not training data and can be megabytes: keep their shape only."""
    data = []
    for item in response.get("data") or []:
        if isinstance(item, dict):
            vector = item.get("embedding")
            size = len(vector) if isinstance(vector, list) else None
            data.append({**item, "embedding": None, "dimensions": size})
    return {**response, "data": data}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None
