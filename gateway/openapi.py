"""`GET /openapi.json`: the OpenAPI 3.1 description of the public API, for users and tools.

The description is data (`static/openapi.yaml`, kept next to the handlers it describes), read
once per process on first request and served as JSON; it never depends on the running config,
so it says nothing about which models or keys exist. tests/test_fuzz.py checks that it names
every route the app registers and draws its fuzz cases from its request schemas.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

SOURCE = Path(__file__).parent / "static" / "openapi.yaml"


def document() -> dict[str, Any]:
    """The description as a fresh dict (callers may change their copy)."""
    return orjson.loads(_document_bytes())


@functools.cache
def _document_bytes() -> bytes:
    # The C loader when PyYAML has it: the file is ~40 kB, parsed once per process.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return orjson.dumps(yaml.load(SOURCE.read_text(encoding="utf-8"), Loader=loader))


async def openapi_json(request: web.Request) -> web.Response:
    # On a thread the first time: parsing YAML must not hold up the requests being served.
    body = await asyncio.to_thread(_document_bytes)
    return web.Response(body=body, content_type="application/json")
