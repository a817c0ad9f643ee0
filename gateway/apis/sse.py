"""Cutting a server-sent-events byte stream into whole events, and reading an event's fields: what
every reader of a stream uses (the chat assembler, the Responses and Messages assemblers and
translators). Both run for every chunk of every stream, so the common shapes take a fast path."""

from __future__ import annotations

import re

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
# An event end may straddle two reads: a new search starts this far back into the old bytes.
_EVENT_END_OVERLAP = 3


class SseSplitter:
    """Whole SSE events, each with its blank-line end. Only new bytes are searched: searching
    the whole buffer on every read is quadratic in the length of an event (10 MB without an
    event end took seconds of loop time)."""

    def __init__(self) -> None:
        self._buffer = bytearray()  # the start of an event not yet ended
        self._searched = 0  # bytes of the buffer already searched for an event's end

    def feed(self, data: bytes) -> list[bytes]:
        end = len(data) - 2
        if not self._buffer and end >= 0 and data.find(b"\n\n") == end and b"\r" not in data:
            return [data]  # the common read: exactly one whole event, nothing held over
        self._buffer += data
        events = []
        start = 0
        for match in _EVENT_END.finditer(self._buffer, max(self._searched - _EVENT_END_OVERLAP, 0)):
            events.append(bytes(self._buffer[start : match.end()]))
            start = match.end()
        del self._buffer[:start]
        self._searched = len(self._buffer)
        return events

    def rest(self) -> bytes:
        """An unterminated last event (the upstream body ended without its blank line)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._searched = 0
        return rest


def fields(event: bytes) -> tuple[bytes | None, bytes]:
    """An event's name (its `event:` line) and its data (its `data:` lines, joined by newlines)."""
    if b"\r" not in event:
        # Nearly every event is `data: ...` or `event: ...` + `data: ...`, then its blank line.
        end = len(event) - 2
        first = event.find(b"\n")
        if first == end and event.startswith(b"data:"):
            return None, event[5:end].lstrip(b" ")
        if (
            event.startswith(b"event:")
            and event.startswith(b"data:", first + 1)
            and event.find(b"\n", first + 1) == end
        ):
            return event[6:first].strip(), event[first + 6 : end].lstrip(b" ")
    name, data = None, []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, b"\n".join(data)
