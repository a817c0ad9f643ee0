"""OpenAI's Responses API (`POST /v1/responses`) as a wire format: pure data work, no I/O.

- `to_chat_request(body, strict=True)`: the request as chat completions
  (gateway/apis/responses_request.py).
- `from_chat_response(chat, request)`: a chat.completion as a `response` object
  (gateway/apis/responses_output.py).
- `to_chat_response(response)`, `usage_to_chat(usage)`: a `response` object (and its usage)
  as chat (gateway/apis/responses_to_chat.py).
- `ChatStreamTranslator(request)`: chat SSE in, Responses SSE out
  (gateway/apis/responses_stream.py).
- `Assembler()`: reads a Responses answer relayed natively, for capture
  (gateway/apis/responses_assembler.py).
- `error_body(error)`: an ApiError as the API words errors.

A model whose provider speaks only chat has no stored conversation state, so a request that
needs it (`previous_response_id`, `conversation`, `prompt`, `item_reference` items) is refused
for such a model, with a message saying what to do instead.
"""

from __future__ import annotations

from typing import Any

from gateway.apis.responses_assembler import Assembler
from gateway.apis.responses_output import from_chat_response
from gateway.apis.responses_request import to_chat_request
from gateway.apis.responses_stream import ChatStreamTranslator
from gateway.apis.responses_to_chat import to_chat_response, usage_to_chat
from gateway.errors import ApiError

ENDPOINT = "responses"

__all__ = [
    "ENDPOINT",
    "Assembler",
    "ChatStreamTranslator",
    "error_body",
    "from_chat_response",
    "to_chat_request",
    "to_chat_response",
    "usage_to_chat",
]


def error_body(error: ApiError) -> dict[str, Any]:
    """The Responses API words errors as chat completions does: `{"error": {message, type,
    param, code}}`."""
    return error.to_body()
