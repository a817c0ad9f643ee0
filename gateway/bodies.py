"""Reading a JSON request body once, with the errors OpenAI clients expect (413, 415, 400).

The size is checked against `Content-Length` before a byte is read, so an oversized body is
refused without being buffered.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType


async def read_json(request: web.Request, limit: int, expected: str = "a JSON object") -> Any:
    """The parsed body, whatever JSON it holds; `expected` words the parse error."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got '{request.content_type}'."
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request. Expected {expected}."
        ) from None
