"""Anthropic's Messages API (`POST /v1/messages`) in its own wire format: pure data work, no I/O.

The interface every API module offers (see gateway/apis/__init__.py), for Messages:

- `to_chat_request(body, strict=True)` / `from_chat_response(chat, request)` /
  `ChatStreamTranslator(request)`: a Messages client served by a provider that speaks chat.
- `Assembler`: a Messages answer relayed from a provider that speaks it natively (Anthropic).
- `to_chat_response(message)`, `usage_to_chat(usage)`: the answer in the chat vocabulary the
  record, feedback, review and exports read.
- `error_body(error)`: an ApiError in Anthropic's error shape.
- `from_chat_request(body)` / `MessagesToChatStream(request)`: the other way round, a chat
  client served by a provider that speaks only Messages.

Usage differs between the two: Anthropic's `input_tokens` counts neither cache reads
(`cache_read_input_tokens`) nor cache writes (`cache_creation_input_tokens`); chat's
`prompt_tokens` counts all three, with the reads again in `prompt_tokens_details.cached_tokens`.
"""

from __future__ import annotations

from typing import Any

from gateway.apis.messages_assembler import Assembler
from gateway.apis.messages_chat import MessagesToChatStream, from_chat_request
from gateway.apis.messages_common import as_dict, text, usage_to_chat
from gateway.apis.messages_request import to_chat_request
from gateway.apis.messages_response import from_chat_response, to_chat_response
from gateway.apis.messages_stream import ChatStreamTranslator, anthropic_error_type
from gateway.errors import ApiError

ENDPOINT = "messages"

__all__ = [
    "ENDPOINT",
    "Assembler",
    "ChatStreamTranslator",
    "MessagesToChatStream",
    "anthropic_error_type",
    "error_body",
    "error_from_chat",
    "error_to_chat",
    "error_type_for_status",
    "from_chat_request",
    "from_chat_response",
    "to_chat_request",
    "to_chat_response",
    "usage_to_chat",
]

# Anthropic's error type for each status (https://docs.claude.com/en/api/errors); any other
# 4xx is an invalid_request_error, any other 5xx an api_error.
_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    if status in _STATUS_TYPES:
        return _STATUS_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(error: ApiError) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}`, the type chosen by the status."""
    return {
        "type": "error",
        "error": {"type": error_type_for_status(error.status), "message": error.message},
    }


def error_from_chat(status: int, body: Any) -> dict[str, Any]:
    """An upstream's error body in OpenAI's shape (a chat provider's, litellm's) as
    Anthropic's, for a Messages client; a body already in Anthropic's shape is kept."""
    body = as_dict(body)
    if body.get("type") == "error" and isinstance(body.get("error"), dict):
        return body
    error = body.get("error")
    message = text(as_dict(error).get("message")) or text(error) or f"HTTP {status}"
    return {"type": "error", "error": {"type": error_type_for_status(status), "message": message}}


def error_to_chat(status: int, body: Any) -> dict[str, Any]:
    """An Anthropic error body in OpenAI's shape, for a chat client served by Anthropic."""
    error = as_dict(as_dict(body).get("error"))
    return {
        "error": {
            "message": text(error.get("message")) or f"HTTP {status}",
            "type": text(error.get("type")) or error_type_for_status(status),
            "param": None,
            "code": None,
        }
    }
