"""A chat-completions answer relayed to a client of another API (Responses, Messages).

For a provider that speaks only chat, the request went upstream as chat; this reads the chat
answer with the chat assembler (usage, tool calls, [DONE]) and hands the client the same answer
in its own API's shape, streamed event by event or whole. The record keeps what the client
sent and received, so a conversation reads the same whatever provider answered it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import orjson

from gateway.proxy.assembler import ResponseAssembler


class TranslatedAnswer:
    """An `Assembler` (gateway/apis/base.py) whose output is in `wire`'s format."""

    def __init__(self, wire: ModuleType, request: dict[str, Any]):
        self.chat = ResponseAssembler("chat/completions")
        self._wire = wire
        self._request = request
        self._stream: Any = None  # the wire's ChatStreamTranslator, once a stream starts
        self._response: dict[str, Any] | None = None

    # -- relaying ------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> bytes:
        return self._translator().feed(self.chat.feed(data, now))

    def flush(self, now: float) -> bytes:
        translator = self._translator()
        return translator.feed(self.chat.flush(now)) + translator.finish()

    def error_event(self, message: str, error_type: str) -> bytes:
        return self._translator().error_event(message, error_type)

    def load(self, body: dict[str, Any]) -> None:
        self.chat.load(body)

    def body(self) -> bytes:
        """A whole answer, as the client's API shapes it."""
        return orjson.dumps(self.response())

    def _translator(self) -> Any:
        if self._stream is None:
            self._stream = self._wire.ChatStreamTranslator(self._request)
        return self._stream

    # -- what was answered ---------------------------------------------------------------
    def response(self) -> dict[str, Any]:
        if self._response is None:
            self._response = self._wire.from_chat_response(self.chat.response(), self._request)
        return self._response

    @property
    def response_id(self) -> str | None:
        response_id = self.response().get("id")
        return response_id if isinstance(response_id, str) else None

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.chat.usage

    @property
    def first_token_at(self) -> float | None:
        return self.chat.first_token_at

    @property
    def saw_done(self) -> bool:
        return self.chat.saw_done

    @property
    def whole(self) -> dict[str, Any] | None:
        return self.chat.whole

    @property
    def truncated(self) -> bool:
        return self.chat.truncated

    @property
    def finish_reason(self) -> str | None:
        return self.chat.finish_reason

    def answer_text(self) -> str:
        return self.chat.answer_text()

    def has_tool_calls(self) -> bool:
        return self.chat.has_tool_calls()
