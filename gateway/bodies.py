"""Reading a JSON request body once, with the errors OpenAI clients expect (413, 415, 408, 400).

The size is checked against `Content-Length` before a byte is read, so an oversized body is
refused without being buffered. The whole body must arrive within `BODY_READ_SECONDS`: a client
that trickles a byte now and then would otherwise hold its connection (and, once authenticated,
an in-flight slot) for as long as it likes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from gateway.errors import InvalidRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from gateway.storable import MAX_JSON_DEPTH

# A module constant rather than a `server.` setting (config.py is another part's to change): at
# 60 s, a body of the default 10 MiB `server.max_body_bytes` still arrives over ~1.4 Mbit/s,
# while a connection that sends nothing useful is let go within a minute.
BODY_READ_SECONDS = 60.0


async def read_json(request: web.Request, limit: int, expected: str = "a JSON object") -> Any:
    """The parsed body, whatever JSON it holds; `expected` words the parse error."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got '{request.content_type}'."
        )
    try:
        async with asyncio.timeout(BODY_READ_SECONDS):
            raw = await request.read()
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {BODY_READ_SECONDS:g} seconds."
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.") from None
    except web.RequestPayloadError as exc:
        # aiohttp could not decode the body (a broken chunk, a `Content-Encoding` that does not
        # decode): the client's fault, and a 500 text/plain without this. Its message ends with
        # the reason, after a "400, message:" preamble.
        reason = str(exc).splitlines()[-1].strip()
        raise InvalidRequest(f"The request body could not be read: {reason}.") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request. Expected {expected}."
        ) from None
    # Counting brackets is C-fast; only a body with enough of them can be too deep to walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than(body, MAX_JSON_DEPTH):
        raise InvalidRequest(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.")
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (iterative: no recursion limit).

    orjson reads 1,024 levels but writes 255 at most, so a deeper body could be neither sent
    upstream nor stored; it is refused here, with its interaction recorded."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
