"""Run the gateway: one process, or a supervisor with `server.workers` processes on one port.

Workers share the port with SO_REUSEPORT, so the kernel spreads connections and no process
proxies for another; each worker has its own app, pool, recorder and spool segment. The
supervisor migrates the database once before forking, restarts a worker that dies, and on
SIGTERM/SIGINT passes the signal on and waits for the workers' graceful shutdown: stop
accepting, finish in-flight requests (`server.shutdown_timeout`), drain the recorder, spool
the rest. Metrics from all workers are added up through prometheus-client's multiprocess mode,
whose folder the supervisor sets up before forking (see gateway/metrics/workers.py).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.process import BaseProcess

from aiohttp import web

from gateway import allocator, collector
from gateway.app import create_app
from gateway.config import Config, load_config
from gateway.errors import ConfigError, StoreError
from gateway.feedback.tokens import share_generated_secret
from gateway.metrics import mark_worker_dead, multiprocess_metrics
from gateway.reload import SUPERVISOR_ENV, install_sighup
from gateway.store import open_store

log = logging.getLogger(__name__)

# A worker that dies sooner than this after starting is crash-looping: wait before the next.
_MIN_WORKER_LIFETIME = 5.0
_RESTART_BACKOFF = 2.0


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def listen_host(config: Config, requested: str | None) -> str:
    """The host to bind: an open gateway (no auth.keys) may listen on loopback only.

    Asking for another host without keys is refused rather than quietly narrowed to loopback:
    inside a container, loopback is unreachable from `docker run -p`, and a gateway that starts
    but answers nothing is harder to diagnose than one that says what to fix.
    """
    host = requested or config.server.host
    if not config.auth.keys and host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"{config.source}: server.host is {host} but auth.keys is empty, so anyone who can "
            "reach the gateway could use it and every provider key behind it. Add auth.keys "
            "(the image's config takes them from FLYWHEEL_APP_KEY and FLYWHEEL_ADMIN_KEY), "
            "or listen on 127.0.0.1."
        )
    return host


def serve(config: Config, *, host: str | None = None, port: int | None = None) -> None:
    bind_host = listen_host(config, host)
    bind_port = port or config.server.port
    workers = config.server.workers or os.cpu_count() or 1
    scheduled = any(job.schedule for job in config.exports.values())
    if workers == 1 and not scheduled:
        run_worker(config, bind_host, bind_port, reuse_port=False)
        return
    try:
        asyncio.run(_migrate(config))  # once, before the workers race to do it
    except StoreError as exc:  # the workers start anyway, and migrate once it answers
        log.warning("store: cannot migrate at start (%s); the workers will retry", exc)
    share_generated_secret(config)  # workers must agree on feedback tokens
    with multiprocess_metrics():
        Supervisor(config, bind_host, bind_port, workers).run()


def run_worker(config: Config, host: str, port: int, *, reuse_port: bool) -> None:
    allocator.limit_arenas()
    _install_uvloop()
    app = create_app(config)
    install_sighup(app)
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(
        app,
        host=host,
        port=port,
        reuse_port=reuse_port,
        shutdown_timeout=config.server.shutdown_timeout,
        access_log=None,
        print=lambda message: log.info("%s", message.strip()),
    )


async def _freeze_startup_objects(app: web.Application) -> None:
    # Everything alive after startup (modules, the price table's ~40k objects) lives as long as
    # the process: moved out of the collector's reach, a full collection no longer walks it,
    # which took 5-8 ms, a pause in the latency of whatever request was being served.
    collector.settle()
    allocator.give_back_free_memory()


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        log.info("uvloop not installed: using asyncio's default event loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _migrate(config: Config) -> None:
    async with open_store(config.storage.url) as store:
        applied = await store.migrate()
    if applied:
        log.info("store: applied migrations %s", ", ".join(applied))


class Supervisor:
    def __init__(self, config: Config, host: str, port: int, count: int):
        self.config = config
        self.host = host
        self.port = port
        self.count = count
        # fork: workers inherit the parsed config; the supervisor has no loop or threads then.
        self._context = multiprocessing.get_context("fork")
        self._workers: dict[int, tuple[BaseProcess, float]] = {}
        self._scheduler: BaseProcess | None = None
        self._stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
        log.info("supervisor: starting %d workers on %s:%d", self.count, self.host, self.port)
        for slot in range(self.count):
            self._start(slot)
        while not self._stopping:
            self._replace_dead()
            self._keep_scheduler()
            time.sleep(0.2)
        self._shutdown()

    def _start(self, slot: int) -> None:
        process = self._context.Process(
            target=_worker_main,
            args=(self.config, self.host, self.port),
            name=f"flywheel-worker-{slot}",
            daemon=False,
        )
        process.start()
        self._workers[slot] = (process, time.monotonic())

    def _keep_scheduler(self) -> None:
        """Scheduled export jobs run in their own process (exporters/scheduler.py), restarted
        when it dies and after a reload (so it runs the new config's jobs)."""
        if self._scheduler is not None and self._scheduler.is_alive():
            return
        if self._scheduler is not None:
            self._scheduler.join()
            self._scheduler.close()
            self._scheduler = None
        if self._stopping or not any(job.schedule for job in self.config.exports.values()):
            return
        from exporters.scheduler import scheduler_main

        self._scheduler = self._context.Process(
            target=scheduler_main, args=(self.config,), name="flywheel-scheduler", daemon=False
        )
        self._scheduler.start()

    def _replace_dead(self) -> None:
        for slot, (process, started) in list(self._workers.items()):
            if process.is_alive() or self._stopping:
                continue
            log.error(
                "worker %s (pid %s) exited with %s; starting a new one",
                slot,
                process.pid,
                process.exitcode,
            )
            if process.pid is not None:
                mark_worker_dead(process.pid)
            process.close()
            if time.monotonic() - started < _MIN_WORKER_LIFETIME:
                time.sleep(_RESTART_BACKOFF)
            self._start(slot)

    def _on_stop(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _on_reload(self, signum: int, frame: object) -> None:
        # Validate here too: a worker started later must get the new config, not the first one.
        try:
            self.config = load_config(self.config.source)
        except ConfigError as exc:
            log.error("reload rejected, running config kept: %s", exc)
            return
        for process, _ in self._workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)
        if self._scheduler is not None and self._scheduler.pid is not None:
            os.kill(self._scheduler.pid, signal.SIGTERM)  # restarted with the new config

    def _shutdown(self) -> None:
        log.info("supervisor: stopping %d workers", len(self._workers))
        if self._scheduler is not None and self._scheduler.pid is not None:
            os.kill(self._scheduler.pid, signal.SIGTERM)
        for process, _ in self._workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        # Workers need the request grace period plus the recorder's drain, bounded by the same.
        deadline = time.monotonic() + 2 * self.config.server.shutdown_timeout + 5
        for process, _ in self._workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker pid %s did not stop in time: killing it", process.pid)
                process.kill()
                process.join()
            if process.pid is not None:
                mark_worker_dead(process.pid)
        if self._scheduler is not None:
            # A run in progress finishes first: its row would otherwise stay `running`.
            self._scheduler.join(max(0.0, deadline - time.monotonic()))
            if self._scheduler.is_alive():
                self._scheduler.kill()
                self._scheduler.join()


def _worker_main(config: Config, host: str, port: int) -> None:
    # Default signal handling again: aiohttp's run_app installs its own for SIGTERM/SIGINT.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    run_worker(config, host, port, reuse_port=True)
