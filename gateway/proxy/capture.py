"""Turns a finished exchange into the fields of its `Interaction`: tokens, cost, flags.

Runs after the last byte has gone to the client, so none of this is paid by the caller's latency.
"""

from __future__ import annotations

from typing import Any

from gateway.apis.base import Assembler
from gateway.apis.chat_view import chat_request, chat_response
from gateway.pricing import PriceTable
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
    assembler: Assembler,
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
        endpoint, request = chat_request(interaction.endpoint, interaction.request)
        interaction.prompt_tokens = count_prompt(endpoint, request, model)
        interaction.completion_tokens = count_completion(chat_response(assembler.response()), model)
        interaction.usage_estimated = True
    interaction.cost_usd = prices.cost(
        route.upstream_model,
        interaction.prompt_tokens,
        interaction.completion_tokens,
        interaction.cached_tokens,
        provider_hint=route.price_hint,
    )


def fill_answer(interaction: Interaction, assembler: Assembler, answered: bool) -> None:
    """Response body, id, finish reason and quality flags."""
    response = assembler.response() if answered else None
    if response is not None and interaction.endpoint == "embeddings":
        response = _without_vectors(response)
    elif response is not None and interaction.endpoint.startswith("images/"):
        response = _without_images(response)
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
    failed = getattr(assembler, "error", None)  # an error event the provider streamed itself
    if isinstance(failed, dict) and interaction.status != ERROR:
        interaction.status = ERROR
        interaction.error_type = str(failed.get("type") or failed.get("code") or "stream_error")
        interaction.error_message = str(failed.get("message") or "the provider's stream failed")


def _without_vectors(response: dict[str, Any]) -> dict[str, Any]:
    """Embedding vectors are not training data and can be megabytes: keep their shape only."""
    data = []
    for item in _list(response.get("data")):
        if isinstance(item, dict):
            size = _dimensions(item.get("embedding"))
            data.append({**item, "embedding": None, "dimensions": size})
    return {**response, "data": data}


def _dimensions(vector: Any) -> int | None:
    """A vector's length: a list of floats, or base64 of float32s (the openai SDKs' default)."""
    if isinstance(vector, list):
        return len(vector)
    if isinstance(vector, str):
        padding = len(vector) - len(vector.rstrip("="))
        return (len(vector) * 3 // 4 - padding) // 4
    return None


def _without_images(response: dict[str, Any]) -> dict[str, Any]:
    """Generated images (base64, megabytes each) are kept as their size; URLs as they are."""
    data = []
    for item in _list(response.get("data")):
        if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            item = {**item, "b64_json": None, "b64_json_bytes": len(item["b64_json"]) * 3 // 4}
        data.append(item)
    return {**response, "data": data}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _token_count(value: Any) -> int | None:
    """A count the upstream reported, or None when it is not a plausible one (not an integer,
    negative, or beyond MAX_TOKENS, which keeps sums over millions of rows inside 64 bits)."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    return None
