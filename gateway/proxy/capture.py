"""Turns a finished exchange into the fields of its `Interaction`: tokens, cost, flags.

Runs after the last byte has gone to the client, so none of this is paid by the caller's latency.
"""

from __future__ import annotations

from typing import Any

from gateway.pricing import PriceTable
from gateway.proxy.assembler import ResponseAssembler
from gateway.quality import quality_flags
from gateway.records.interaction import ERROR, Interaction
from gateway.records.tags import MAX_ID_LENGTH
from gateway.routing import Route
from gateway.tokens import count_completion, count_prompt

# Flagged when an upstream's usage had a count that is not one (a string, -1, 2**64-1).
USAGE_OUT_OF_RANGE = "usage_out_of_range"
# Flagged when a streamed answer was longer than the assembler keeps (gateway/proxy/assembler.py).
ANSWER_TRUNCATED = "answer_truncated"
MAX_TOKENS = 2**40


def fill_usage(
    interaction: Interaction,
    assembler: ResponseAssembler,
    prices: PriceTable,
    route: Route,
) -> None:
    usage = assembler.usage
    if isinstance(usage, dict) and usage:
        prompt_details = usage.get("prompt_tokens_details")
        completion_details = usage.get("completion_tokens_details")
        reported = (
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None,
            completion_details.get("reasoning_tokens")
            if isinstance(completion_details, dict)
            else None,
        )
        counts = [_token_count(value) for value in reported]
        (
            interaction.prompt_tokens,
            interaction.completion_tokens,
            interaction.cached_tokens,
            interaction.reasoning_tokens,
        ) = counts
        if any(v is not None and c is None for v, c in zip(reported, counts, strict=True)):
            interaction.quality_flags = [*interaction.quality_flags, USAGE_OUT_OF_RANGE]
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
    response_id = assembler.response_id  # indexed, so bounded like the other identifiers
    interaction.response_id = response_id[:MAX_ID_LENGTH] if response_id else None
    interaction.finish_reason = assembler.finish_reason
    interaction.quality_flags = quality_flags(
        interaction.endpoint,
        interaction.request,
        assembler.answer_text() if answered else None,
        assembler.has_tool_calls() if answered else False,
        assembler.finish_reason,
    )
    if assembler.truncated:  # relayed whole, but only its first MAX_KEPT_CHARS were kept
        interaction.quality_flags = [*interaction.quality_flags, ANSWER_TRUNCATED]


def _without_vectors(response: dict[str, Any]) -> dict[str, Any]:
    """Embedding vectors are not training data and can be megabytes: keep their shape only."""
    data = []
    for item in response.get("data") or []:
        if isinstance(item, dict):
            vector = item.get("embedding")
            size = len(vector) if isinstance(vector, list) else None
            data.append({**item, "embedding": None, "dimensions": size})
    return {**response, "data": data}


def _token_count(value: Any) -> int | None:
    """A count the upstream reported, or None when it is not a plausible one (not an integer,
    negative, or beyond MAX_TOKENS, which keeps sums over millions of rows inside 64 bits)."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    return None
