"""The conversation inside a chat-completions example, as the training formats need it.

The request holds the prompt (system, user, assistant and tool turns, and the `tools` offered);
the response holds the model's answer. Feedback decides what the final assistant turn of a
training example is: the user's correction when there is one, else the model's answer, and
nothing when the answer was rejected (or thumbed down) and nobody said what it should have been.
"""

from __future__ import annotations

from typing import Any

from exporters.selection import Example
from gateway.apis.chat_view import CONVERSATIONS, chat_request, chat_response

CHAT_ENDPOINT = "chat/completions"
# The endpoints whose records hold a conversation: chat completions, and the Responses and
# Messages APIs, read as chat (gateway/apis/chat_view.py).
CONVERSATION_ENDPOINTS: tuple[str, ...] = CONVERSATIONS
ROLES = ("system", "developer", "user", "assistant", "tool")
# Message keys a training file keeps; anything else (refusal, annotations, audio) is dropped.
_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


class Unusable(Exception):
    """This example cannot become a record of the format; `reason` says why (the manifest
    counts it under `invalid`, by reason)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _chat_request(example: Example) -> dict[str, Any] | None:
    """The example's request as chat completions, whichever API it came in on."""
    endpoint, request = chat_request(
        str(example.record.get("endpoint")), example.record.get("request") or {}
    )
    return request if endpoint == CHAT_ENDPOINT and isinstance(request, dict) else None


def prompt_messages(example: Example) -> list[dict[str, Any]]:
    request = _chat_request(example)
    messages = request.get("messages") if request is not None else None
    if not isinstance(messages, list):
        raise Unusable("not_chat")
    return [clean_message(m) for m in messages]


def tools(example: Example) -> list[dict[str, Any]] | None:
    offered = (_chat_request(example) or {}).get("tools")
    return offered if isinstance(offered, list) and offered else None


def answer_message(example: Example) -> dict[str, Any]:
    """The model's answer as an assistant message."""
    choices = (chat_response(example.record.get("response")) or {}).get("choices") or []
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        raise Unusable("no_answer")
    return clean_message({**message, "role": "assistant"})


def target_message(example: Example) -> dict[str, Any]:
    """The assistant turn to train on: the correction, else the answer if it was not refused."""
    correction = example.feedback.get("correction")
    if isinstance(correction, str) and correction.strip():
        return {"role": "assistant", "content": correction}
    if example.feedback.get("outcome") == "rejected" or example.feedback.get("thumbs") == "down":
        raise Unusable("rejected_without_correction")
    return answer_message(example)


def was_corrected(example: Example) -> bool:
    """A correction that differs from the model's answer: the pair a preference set learns."""
    correction = example.feedback.get("correction")
    if not isinstance(correction, str) or not correction.strip():
        return False
    if example.feedback.get("correction_type") == "unchanged":
        return False
    try:
        return text_of(answer_message(example).get("content")) != correction
    except Unusable:
        return False


def clean_message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise Unusable("bad_message")
    cleaned = {k: message[k] for k in _MESSAGE_KEYS if message.get(k) is not None}
    if "tool_calls" in cleaned:
        cleaned["tool_calls"] = [_clean_call(call) for call in cleaned["tool_calls"]]
    return cleaned


def _clean_call(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise Unusable("bad_tool_call")
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": function.get("arguments", "")},
    }


def text_of(content: Any) -> str:
    """A message's content as plain text: a string, or the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", None)
        )
    return ""


def prompt_key(messages: list[dict[str, Any]]) -> str:
    """One string per distinct prompt, to find the same prompt answered twice."""
    import orjson

    return orjson.dumps(
        [(m["role"], " ".join(text_of(m.get("content")).split())) for m in messages]
    ).decode()
