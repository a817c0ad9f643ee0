"""Credentials a client put in the request body never go upstream nor into the store.

Some clients send their key in the body (`api_key`, litellm's `*_api_key` parameters, an
`authorization` field). The provider key comes from the provider's config, so these are never
needed upstream, and a key in the body would otherwise be stored with the request verbatim.
"""

from __future__ import annotations

from typing import Any

# litellm's provider parameters: aws_secret_access_key, aws_session_token, azure_ad_token,
# vertex_credentials, client_secret... A bare `_key` suffix is not enough to tell: OpenAI's own
# `prompt_cache_key` is a request field, not a secret.
_SECRET_SUFFIXES = ("_api_key", "_access_key", "_session_token", "_ad_token", "credentials")


# The fields of the APIs we serve, known not to be secrets: most bodies hold only these, and
# this runs for every request.
_API_FIELDS = frozenset(
    {
        *("model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "stop"),
        *("max_tokens", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls"),
        *("user", "response_format", "seed", "logprobs", "top_logprobs", "logit_bias"),
        *("frequency_penalty", "presence_penalty", "metadata", "store", "reasoning_effort"),
        *("input", "prompt", "instructions", "previous_response_id", "reasoning", "text"),
        *("include", "encoding_format", "dimensions", "system", "stop_sequences", "top_k"),
        *("thinking", "modalities", "audio", "prediction", "service_tier"),
    }
)


def is_secret_field(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return (
        lowered in ("authorization", "api_key", "apikey")
        or "secret" in lowered
        or lowered.endswith(_SECRET_SUFFIXES)
    )


def strip_secrets(body: dict[str, Any]) -> list[str]:
    """Remove top-level secret fields from `body` in place; returns their names (not values)."""
    found = [name for name in body if name not in _API_FIELDS and is_secret_field(name)]
    for name in found:
        del body[name]
    return found
