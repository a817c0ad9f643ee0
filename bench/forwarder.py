"""The floor: the least an aiohttp proxy can do, so Flywheel's overhead can be read against it.

It reads the request body and POSTs the bytes unchanged to the upstream over one shared,
keep-alive ClientSession, then returns the answer's bytes (streams are relayed chunk by chunk,
so time to first chunk stays comparable). No parsing, no routing, no recording: whatever
Flywheel adds beyond this forwarder is the cost of its own features, not of aiohttp or Python.

    python -m bench.forwarder --port 9001 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web

from bench.serving import run

SESSION = web.AppKey("session", aiohttp.ClientSession)


class Forward:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        session = request.app[SESSION]
        async with session.post(
            self.upstream + request.path,
            data=body,
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as upstream:
            content_type = upstream.headers.get("Content-Type", "application/json")
            if not content_type.startswith("text/event-stream"):
                payload = await upstream.read()
                return web.Response(
                    body=payload, status=upstream.status, headers={"Content-Type": content_type}
                )
            response = web.StreamResponse(
                status=upstream.status,
                headers={"Content-Type": content_type, "Cache-Control": "no-cache"},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response


async def _session(app: web.Application) -> AsyncIterator[None]:
    # One pooled session for the process, as Flywheel has: connections are reused.
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[SESSION].close()


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(_session)
    app.router.add_post("/v1/chat/completions", Forward(upstream))
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.forwarder", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    args = parser.parse_args(argv)
    run(build_app(args.upstream), args.port)


if __name__ == "__main__":
    main()
