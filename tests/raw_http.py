"""HTTP written byte by byte on a socket, for what a client library will not send: undecodable
header bytes, a body that never finishes, framing aiohttp's parser refuses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import orjson

ANSWER_WAIT = 10.0  # seconds: longer than any deadline the tests set, far below the test timeout


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def connect(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlparse(base_url)
    assert url.hostname is not None and url.port is not None
    return await asyncio.open_connection(url.hostname, url.port)


def head(method: str, path: str, headers: dict[str, str | bytes]) -> bytes:
    """A request line and headers, up to and including the blank line."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: gateway.test"]
    for name, value in headers.items():
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    async with asyncio.timeout(ANSWER_WAIT):
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RawAnswer(int(status_line.split()[1]), headers, body)


async def send(base_url: str, data: bytes) -> RawAnswer:
    """Send `data` as is on a new connection and read one answer."""
    reader, writer = await connect(base_url)
    try:
        writer.write(data)
        await writer.drain()
        return await read_answer(reader)
    finally:
        writer.close()
