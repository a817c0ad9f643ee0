"""Run an aiohttp app the way Flywheel runs itself (uvloop, no access log), so the fake upstream
and the forwarder pay the same per-request framework cost as the gateway they are compared with.
"""

from __future__ import annotations

import asyncio

from aiohttp import web


def run(app: web.Application, port: int, host: str = "127.0.0.1") -> None:
    """Serve `app` until SIGTERM/SIGINT, with uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host=host, port=port, access_log=None, print=None, shutdown_timeout=0.5)
