"""Sending fuzz cases to a gateway on loopback, and remembering the ids it hands out.

Cases whose header bytes aiohttp's client can carry (UTF-8 text) go through one pooled
`aiohttp.ClientSession`, so keep-alive connections are reused as real clients reuse them; the
rest (latin-1 or invalid UTF-8 header bytes, which aiohttp's client refuses to write) go over a
plain socket, one connection each.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from tests.fuzz_support import EXPORT, INTERACTION, RESPONSE, TOKEN, Case

INTERACTION_HEADER = "Flywheel-Interaction-Id"
TOKEN_HEADER = "Flywheel-Feedback-Token"
FRAMING = ("content-length", "transfer-encoding")  # set by the case: sent as raw bytes
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # more than any bounded answer of the fuzz config


@dataclass
class Answer:
    status: int | None  # None: no answer (the connection failed or the client timed out)
    headers: CIMultiDict[str]
    body: bytes | None  # None when the client hung up before reading it
    error: str | None = None
    seconds: float = 0.0
    retried: bool = False  # the first try met a kept-alive connection the gateway had closed

    def json(self) -> Any:
        try:
            return orjson.loads(self.body or b"")
        except orjson.JSONDecodeError:
            return None


@dataclass
class Seen:
    """Ids from earlier answers, to fill the placeholders of later cases."""

    rng: random.Random
    values: dict[str, list[str]] = field(
        default_factory=lambda: {INTERACTION: [], TOKEN: [], RESPONSE: [], EXPORT: []}
    )

    def learn(self, answer: Answer) -> None:
        for placeholder, header in ((INTERACTION, INTERACTION_HEADER), (TOKEN, TOKEN_HEADER)):
            if header in answer.headers:
                self.values[placeholder].append(answer.headers[header])
        body = answer.json()
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            kind = EXPORT if body.get("object") == "export.run" else RESPONSE
            # Chat and completion ids, and the Responses and Messages APIs' own.
            if kind == EXPORT or body["id"].startswith(("chatcmpl", "cmpl", "resp_", "msg_")):
                self.values[kind].append(body["id"])

    def fill(self, case: Case) -> Case:
        chosen = {
            placeholder: self.rng.choice(found[-200:]) if found else "0" * 8
            for placeholder, found in self.values.items()
        }
        return case.filled(chosen)


class Sender:
    def __init__(self, base_url: str, timeout: float):
        self.url = URL(base_url)
        self.timeout = timeout
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
        )

    async def close(self) -> None:
        await self.session.close()

    async def send(self, case: Case) -> Answer:
        started = time.perf_counter()
        headers = _as_text(case.headers)
        try:
            if headers is None:
                answer = await asyncio.wait_for(_send_raw(self.url, case), self.timeout)
            else:
                try:
                    answer = await self._send_pooled(case, headers)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                    # A kept-alive connection the gateway closed (after an earlier request whose
                    # body it did not read) before this request reached it: as SDKs do, once
                    # more on a new connection. A second failure is the gateway's.
                    async with aiohttp.ClientSession(
                        timeout=self.session.timeout, auto_decompress=False
                    ) as fresh:
                        answer = await self._send_pooled(case, headers, fresh)
                    answer.retried = True
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            answer = Answer(None, CIMultiDict(), None, error=f"{type(exc).__name__}: {exc}")
        answer.seconds = time.perf_counter() - started
        return answer

    async def _send_pooled(
        self, case: Case, headers: CIMultiDict[str], session: aiohttp.ClientSession | None = None
    ) -> Answer:
        url = URL(str(self.url) + case.target, encoded=True)
        skip = [name for name in ("Content-Type",) if name not in headers]
        async with (session or self.session).request(
            case.method,
            url,
            headers=headers,
            data=case.body,
            skip_auto_headers=skip,
            allow_redirects=False,
        ) as response:
            if case.hangup:
                response.close()  # drops the connection: the gateway sees a client leave
                return Answer(response.status, CIMultiDict(response.headers), None)
            body = await response.read()
            return Answer(response.status, CIMultiDict(response.headers), body)


def _as_text(headers: tuple[tuple[str, bytes], ...]) -> CIMultiDict[str] | None:
    """The headers as aiohttp's client writes them (UTF-8), or None if some bytes cannot be."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers:
        if name.lower() in FRAMING:
            return None
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in decoded):
            return None
        out.add(name, decoded)
    return out


async def _send_raw(url: URL, case: Case) -> Answer:
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        head = [f"{case.method} {case.target} HTTP/1.1".encode(), f"Host: {url.host}".encode()]
        head += [name.encode() + b": " + value for name, value in case.headers]
        framed = any(name.lower() in FRAMING for name, _ in case.headers)
        if case.body is not None and not framed:
            head.append(b"Content-Length: %d" % len(case.body))
        head.append(b"Connection: close")
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + (case.body or b""))
        await writer.drain()
        if case.hangup:
            raw = await reader.readuntil(b"\r\n\r\n")
            status, headers = _head(raw)
            return Answer(status, headers, None)
        raw = await reader.read(MAX_ANSWER_BYTES)
        while chunk := await reader.read(MAX_ANSWER_BYTES):
            raw += chunk
    finally:
        writer.close()
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    status, headers = _head(head_bytes)
    chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
    return Answer(status, headers, _dechunk(rest) if chunked else rest)


def _head(raw: bytes) -> tuple[int, CIMultiDict[str]]:
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers.add(name.strip(), value.strip())
    return status, headers


def _dechunk(raw: bytes) -> bytes:
    out = bytearray()
    while raw:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += raw[:size]
        raw = raw[size + 2 :]
    return bytes(out)
