"""Bounds on what an upstream may send back: how long an answer may take, how many bytes it may
have, and how large one SSE event may grow.

Without them one endless stream or one gzip bomb holds gigabytes in a worker, and a stream that
never ends an event is buffered for ever. Bytes are counted after decompression: that is what
memory holds and the store would keep. A broken bound raises `UpstreamTimeout` (time) or
`UpstreamError` (size) naming the provider and the config key, from where the adapter reads, so
the proxy answers a whole body with 504/502 and ends a stream with an in-stream error event, as
for any other upstream failure. The idle limit within a stream is each adapter's read timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

from gateway.config import ProviderConfig
from gateway.errors import UpstreamError, UpstreamTimeout

# A blank line ends an SSE event, whichever of the three line endings it uses.
_EVENT_ENDS = (b"\n\n", b"\r\r", b"\r\n\r\n")
_LONGEST_END = max(len(end) for end in _EVENT_ENDS)


@dataclass(frozen=True)
class Limits:
    provider: str
    total_timeout: float
    max_response_bytes: int
    max_stream_bytes: int
    # How long the adapter lets one chunk take (aiohttp's sock_read on raw reads); None when a
    # chunk may take longer than a socket read (a library that swallows keep-alive events).
    read_timeout: float | None = None

    @classmethod
    def of(cls, config: ProviderConfig, *, chunks_are_reads: bool = False) -> Limits:
        return cls(
            config.name,
            config.total_timeout,
            config.max_response_bytes,
            config.max_stream_bytes,
            config.read_timeout if chunks_are_reads else None,
        )

    def deadline(self) -> float:
        """The loop time by which a request sent now must be answered in full."""
        return asyncio.get_running_loop().time() + self.total_timeout

    def until(self, deadline: float) -> Budget:
        """Run the block, cut off at `deadline` with an `UpstreamTimeout` naming the limit."""
        return Budget(self, deadline)

    async def read_body(self, chunks: AsyncIterator[bytes]) -> bytes:
        """A whole answer, read until it ends or passes max_response_bytes."""
        pieces: list[bytes] = []
        size = 0
        async for piece in chunks:
            size += len(piece)
            self.check_body_size(size)
            pieces.append(piece)
        return b"".join(pieces)

    def check_body_size(self, size: int) -> None:
        if size > self.max_response_bytes:
            raise self._too_large("the answer", "max_response_bytes", self.max_response_bytes)

    async def stream(self, chunks: AsyncIterator[bytes], deadline: float) -> AsyncIterator[bytes]:
        """Pass an SSE stream on until it ends or breaks a bound; `chunks` is closed either way."""
        size = 0
        pending = 0  # bytes since the last end of an event
        tail = b""  # the end of the previous chunk: an event's end may straddle two chunks
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self.read_timeout is not None and loop.time() + self.read_timeout < deadline:
                    # This read ends, or fails on the read timeout, before the deadline: no
                    # timer of ours needed (arming one per chunk was most of a stream's cost).
                    chunk = await anext(chunks, None)
                else:
                    async with self.until(deadline):
                        chunk = await anext(chunks, None)
                if chunk is None:
                    return
                size += len(chunk)
                if size > self.max_stream_bytes:
                    raise self._too_large("the stream", "max_stream_bytes", self.max_stream_bytes)
                window = tail + chunk
                ended = _after_last_event_end(window)
                pending = len(window) - ended if ended else pending + len(chunk)
                if pending > self.max_response_bytes:
                    # An event is at most one whole answer; past that it is a broken stream, and
                    # the proxy would buffer it whole waiting for its end.
                    raise self._too_large(
                        "one SSE event", "max_response_bytes", self.max_response_bytes
                    )
                tail = window[-(_LONGEST_END - 1) :]
                yield chunk
        finally:
            # The adapter releases its connection when its iterator closes: also when we stop.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    def _too_large(self, what: str, key: str, limit: int) -> UpstreamError:
        return UpstreamError(self.provider, f"{what} exceeds {key} ({limit} bytes)")

    def timed_out(self) -> UpstreamTimeout:
        detail = f"no complete answer within total_timeout ({self.total_timeout:g} s)"
        return UpstreamTimeout(self.provider, detail)


class Budget:
    """`Limits.until`: asyncio's timeout, its expiry worded as the provider's. A class, not an
    @asynccontextmanager: the generator's frame and its two extra awaits cost ~2-3 us of the
    ~10 a request spends on this timer (issue 20)."""

    __slots__ = ("_limits", "_timeout")

    def __init__(self, limits: Limits, deadline: float):
        self._limits = limits
        self._timeout = asyncio.timeout_at(deadline)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._timeout.__aexit__(kind, exc, tb)
        except TimeoutError as expired:  # ours: the block was cancelled at the deadline
            raise self._limits.timed_out() from expired
        if kind is not None and issubclass(kind, TimeoutError) and self._timeout.expired():
            # Another timeout (connect, read) ended the block as ours expired: ours is the one
            # to report. Any other, its adapter words.
            raise self._limits.timed_out() from exc


def _after_last_event_end(data: bytes) -> int:
    """Where the bytes after the last end of an event start in `data`; 0 if no event ends."""
    found = ((data.rfind(end), len(end)) for end in _EVENT_ENDS)
    return max((at + length for at, length in found if at >= 0), default=0)
