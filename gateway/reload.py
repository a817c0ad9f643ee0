"""Hot reload: SIGHUP or `POST /admin/reload` swaps models, providers, pricing and API keys.

The file is read and validated first; an invalid one is rejected with the error that names the
key, and the running config is kept. Each part is then swapped with a single assignment (no
await in between), so a request sees the old config or the new one, never a mix. `server`,
`storage`, `capture` and `feedback` hold sockets, pools and files: they change on restart only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiohttp import web

from gateway.appkeys import CONFIG, HTTP_SESSION, KEYS, METRICS, PRICES, PROVIDERS, ROUTER, STORE
from gateway.config import Config, load_config
from gateway.errors import ConfigError, InvalidRequest
from gateway.http_errors import json_response
from gateway.providers import build_providers

log = logging.getLogger(__name__)

RESTART_ONLY = ("server", "storage", "capture", "feedback")
# Set by the supervisor for its workers: a reload asked of one worker is passed to all.
SUPERVISOR_ENV = "FLYWHEEL_SUPERVISOR_PID"


async def reload_config(app: web.Application) -> Config:
    """Load the config file again and swap it in; raises ConfigError and changes nothing."""
    running = app[CONFIG]
    try:
        new = await asyncio.to_thread(load_config, running.source)
    except ConfigError:
        app[METRICS].observe_config_reload(ok=False)
        raise
    providers = await asyncio.to_thread(build_providers, new.providers, app[HTTP_SESSION])
    for section in RESTART_ONLY:
        if getattr(new, section) != getattr(running, section):
            log.warning("reload: `%s` changed; it takes effect at the next restart", section)
    app[ROUTER].replace(new.models, new.providers)
    app[PROVIDERS].clear()
    app[PROVIDERS].update(providers)
    app[PRICES].replace_overrides(new.pricing)
    app[KEYS].replace(new.auth)
    app[METRICS].observe_config_reload(ok=True, config=new)
    log.info("reload: %s applied (%d models)", new.source, len(new.models))
    return new


async def reload_logged(app: web.Application) -> None:
    """A reload asked by SIGHUP (`POST /admin/reload` is audited by the audit middleware)."""
    from gateway.privacy.audit import record_action

    status = 200
    try:
        await reload_config(app)
    except ConfigError as exc:
        log.error("reload rejected, running config kept: %s", exc)
        status = 400
    await record_action(app[STORE], "signal:SIGHUP", "config.reload", status=status)


def install_sighup(app: web.Application) -> None:
    """Reload on SIGHUP; for `flywheel serve` only (tests build apps without signals)."""

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_logged(app)))

    app.on_startup.append(on_startup)


async def handle_reload(request: web.Request) -> web.Response:
    """`POST /admin/reload` (admin scope): 200 with the models now served, or 400 naming the
    problem, with the running config unchanged."""
    try:
        config = await reload_config(request.app)
    except ConfigError as exc:
        raise InvalidRequest(
            f"Config rejected, running config kept: {exc}", code="invalid_config"
        ) from exc
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor and int(supervisor) == os.getppid():
        os.kill(int(supervisor), signal.SIGHUP)  # the other workers reload too
    return json_response(
        {"status": "reloaded", "source": config.source, "models": list(config.models)}
    )
