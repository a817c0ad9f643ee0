"""Run the app: pick the event loop, decide where to listen, serve until SIGTERM/SIGINT.

aiohttp's `run_app` stops accepting on a signal, lets in-flight requests finish for up to
`server.shutdown_timeout` seconds, then runs the cleanup contexts (the recorder drains there).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gateway.app import create_app
from gateway.config import Config

log = logging.getLogger(__name__)


def listen_host(config: Config, requested: str | None) -> str:
    host = requested or config.server.host
    if not config.auth.keys and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "auth.keys is empty: anyone who can reach the gateway could use it, so it listens "
            "on 127.0.0.1 only (not %s). Configure auth.keys to serve other hosts.",
            host,
        )
        return "127.0.0.1"
    return host


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        log.info("uvloop not installed: using asyncio's default event loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(config: Config, *, host: str | None = None, port: int | None = None) -> None:
    _install_uvloop()
    web.run_app(
        create_app(config),
        host=listen_host(config, host),
        port=port or config.server.port,
        shutdown_timeout=config.server.shutdown_timeout,
        access_log=None,
        print=lambda message: log.info("%s", message.strip()),
    )
