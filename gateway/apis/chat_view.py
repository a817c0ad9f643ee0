"""Any recorded interaction read as chat completions: the one shape that quality flags, token
estimates, feedback, review and every export format read.

The store keeps each request and answer as its client sent and received it (Responses, Messages,
chat): that is the record of what happened, and a training format can only be as faithful as
it. The chat view is derived when read, not stored beside it: storing it would double each row
and its write on the request path, and a better translation then also applies to old rows.
"""

from __future__ import annotations

from typing import Any

from gateway.apis import messages, responses

CHAT = "chat/completions"
_WIRES = {responses.ENDPOINT: responses, messages.ENDPOINT: messages}
# The endpoints whose records hold a conversation: chat itself and those read as chat.
CONVERSATIONS = (CHAT, *_WIRES)


def chat_request(endpoint: str, request: Any) -> tuple[str, Any]:
    """`request` of `endpoint` as (endpoint, request) in chat's shape where it has one."""
    wire = _WIRES.get(endpoint)
    if wire is None or not isinstance(request, dict):
        return endpoint, request
    return CHAT, wire.to_chat_request(request, strict=False)


def chat_response(response: Any) -> Any:
    """A stored answer in chat's shape, recognised by its own: a Responses object says
    `"object": "response"`, a Messages one `"type": "message"`."""
    if not isinstance(response, dict):
        return response
    if response.get("object") == "response":
        return responses.to_chat_response(response)
    if response.get("type") == "message":
        return messages.to_chat_response(response)
    return response
