"""What the proxy needs from each wire format, whatever API a request came in on.

`gateway.proxy.assembler.ResponseAssembler` is the chat/completions (and completions,
embeddings) implementation of `Assembler`; `gateway.apis.responses` and `gateway.apis.messages`
each have their own for answers their provider gives natively.
"""

from __future__ import annotations

from typing import Any, Protocol


class Assembler(Protocol):
    """Reads one answer while it is relayed, for capture. Nothing an upstream sends may make it
    raise: a value of the wrong type is skipped and the bytes still reach the client."""

    @property
    def response_id(self) -> str | None: ...

    @property
    def usage(self) -> dict[str, Any] | None:
        """In chat-completions vocabulary, whatever the API: prompt_tokens, completion_tokens,
        prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens."""
        ...

    @property
    def first_token_at(self) -> float | None:
        """When the first generated output arrived (TTFT)."""
        ...

    @property
    def saw_done(self) -> bool:
        """The stream's final event ([DONE], response.completed, message_stop) has been
        relayed: the client has the whole answer, so its closing the connection is no
        disconnect."""
        ...

    @property
    def whole(self) -> dict[str, Any] | None:
        """The body of a non-stream answer, once `load`ed."""
        ...

    @property
    def truncated(self) -> bool:
        """A streamed answer longer than is kept; the rest was relayed, not kept."""
        ...

    def feed(self, data: bytes, now: float) -> bytes:
        """Take upstream bytes; return the bytes to forward to the client now (whole events)."""
        ...

    def flush(self, now: float) -> bytes:
        """At the end of the upstream body: an unterminated last event, if any."""
        ...

    def load(self, body: dict[str, Any]) -> None:
        """Take a whole (non-stream) answer."""
        ...

    def response(self) -> dict[str, Any]:
        """The body to store, in the API's own shape (for a stream: what it added up to)."""
        ...

    @property
    def finish_reason(self) -> str | None:
        """In chat vocabulary: stop, length, tool_calls, content_filter."""
        ...

    def answer_text(self) -> str: ...

    def has_tool_calls(self) -> bool: ...


class ChatStreamTranslator(Protocol):
    """Turns a chat-completions SSE stream into another API's SSE stream, for a provider that
    speaks only chat. Built with the client's request body (the API's own shape)."""

    def feed(self, events: bytes) -> bytes:
        """Complete chat SSE events (`data: {...}\\n\\n`, `data: [DONE]\\n\\n`) in; the API's
        SSE events out. At `[DONE]` it emits the API's closing events."""
        ...

    def finish(self) -> bytes:
        """The upstream body ended: closing events if `[DONE]` never came, else b''."""
        ...

    def error_event(self, message: str, error_type: str) -> bytes:
        """An in-stream error event, for an upstream that failed after the headers were sent."""
        ...
