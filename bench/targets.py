"""Start what the benchmark calls: the fake upstream, the forwarder, and one Flywheel per store.

Every server is a separate process on loopback. Each Flywheel gets a generated config: an
`openai_compat` provider pointing at the fake behind the model `bench`, an `anthropic` one
pointing at the same fake behind `bench-claude`, no auth keys (so it listens on 127.0.0.1), and
its own store: SQLite in the run's temp dir, or a throwaway PostgreSQL from
`pgserver`. Every start registers its own stop on the ExitStack, so whatever happened, the
caller's `finally` tears down exactly what was started, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import warnings
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.procs import Child, free_port, pin, spawn, stop, wait_http, wait_tcp

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAT_PATH = "/v1/chat/completions"
READY_TIMEOUT = 60.0
# Variables that would silently override the generated config in a child (DATABASE_URL would
# give the LiteLLM proxy a database it must not have).
_OVERRIDES = ("FLYWHEEL_CONFIG", "FLYWHEEL_DATABASE_URL", "DATABASE_URL")


@dataclass(frozen=True)
class Target:
    """Something the load generator calls. CPU is charged to `pid`, and to `db_pid`'s process
    tree when the target has a database server of its own."""

    name: str
    url: str
    pid: int
    db_pid: int | None = None
    db_url: str | None = None  # Flywheel's store, for counting rows (the loss check)
    spool_dir: str | None = None

    @property
    def is_flywheel(self) -> bool:
        return self.db_url is not None


@dataclass(frozen=True)
class FleetOptions:
    latency_ms: float
    chunks: int
    chunk_spacing_ms: float
    forwarder: bool
    postgres: bool
    server_cpus: frozenset[int] | None
    litellm: bool = False
    # The console's background search indexer (`--no-search-index` turns it off, to see what
    # it costs the other figures: on PostgreSQL its batches are the database's CPU).
    search_index: bool = True


@dataclass
class Fleet:
    """The running targets, in the order they are measured (direct first)."""

    targets: list[Target]
    upstream_pid: int
    notes: list[str] = field(default_factory=list)
    postgres: Any = None  # pgserver's PostgresServer, to stop and restart it (memory scenario)

    def get(self, name: str) -> Target | None:
        return next((t for t in self.targets if t.name == name), None)

    def flywheels(self) -> list[Target]:
        return [t for t in self.targets if t.is_flywheel]

    def replace(self, target: Target) -> None:
        self.targets = [target if t.name == target.name else t for t in self.targets]


def flywheel_config(
    port: int, upstream_url: str, database_url: str, spool_dir: str, search_index: bool = True
) -> dict[str, Any]:
    """A minimal Flywheel config: the fake upstream behind the model `bench` (chat completions,
    Responses) and, as an Anthropic provider, `bench-claude` (Messages); capture on, and a
    spool folder of its own in the run's temp dir (not ./flywheel-spool in the repo)."""
    return {
        # One worker: the targets are per worker (and the default, one per core, would put a
        # supervisor's pid where the benchmark reads CPU time and RSS).
        "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout": 3, "workers": 1},
        "storage": {"url": database_url},
        "capture": {"enabled": True, "spool_dir": spool_dir},
        "auth": {"keys": []},
        "console": {"search_index": search_index},
        "providers": {
            "fake": {"type": "openai_compat", "base_url": upstream_url, "api_key": "sk-bench"},
            # The same fake, for the Messages API (the `apis` scenario): relayed as bytes.
            "fake-anthropic": {
                "type": "anthropic",
                "base_url": upstream_url,
                "api_key": "sk-ant-bench",
            },
        },
        "models": {
            "bench": {"provider": "fake", "model": "bench-upstream"},
            "bench-claude": {"provider": "fake-anthropic", "model": "bench-upstream"},
        },
        "pricing": {"bench-upstream": {"input_per_million": 0.1, "output_per_million": 0.4}},
    }


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _flywheel_argv(config_path: Path) -> list[str]:
    script = Path(sys.executable).parent / "flywheel"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]
    return [*base, "--log-level", "warning", "--config", str(config_path), "serve"]


class FleetStarter:
    """Starts the servers; each `start_*` registers the matching stop on `stack`."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path, options: FleetOptions):
        self.stack = stack
        self.workdir = workdir
        self.options = options
        self.env = _child_env()

    def spawn_server(
        self, name: str, argv: Sequence[str], extra_env: dict[str, str] | None = None
    ) -> Child:
        """Start one server, pinned to the server CPUs, stopped when the stack unwinds."""
        child = spawn(name, argv, self.workdir, {**self.env, **(extra_env or {})})
        self.stack.callback(stop, child)
        if self.options.server_cpus:
            pin(child.pid, self.options.server_cpus)
        return child

    def start_upstream(self, port: int) -> Child:
        o = self.options
        return self.spawn_server(
            "fake-upstream",
            [
                sys.executable,
                "-m",
                "bench.fake_upstream",
                f"--port={port}",
                f"--latency-ms={o.latency_ms}",
                f"--chunks={o.chunks}",
                f"--chunk-spacing-ms={o.chunk_spacing_ms}",
            ],
        )

    def start_forwarder(self, port: int, upstream_port: int) -> Child:
        return self.spawn_server(
            "forwarder",
            [
                sys.executable,
                "-m",
                "bench.forwarder",
                f"--port={port}",
                f"--upstream=http://127.0.0.1:{upstream_port}",
            ],
        )

    def spool_dir(self, name: str) -> str:
        return str(self.workdir / f"{name}-spool")

    def start_flywheel(self, name: str, port: int, upstream_port: int, database_url: str) -> Child:
        upstream = f"http://127.0.0.1:{upstream_port}/v1"
        spool = self.spool_dir(name)
        config = flywheel_config(port, upstream, database_url, spool, self.options.search_index)
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.spawn_server(name, _flywheel_argv(path))

    def start_postgres(self) -> tuple[str, int, Any]:
        """A throwaway PostgreSQL server; returns (uri, postmaster pid, pgserver handle).
        Stopped on unwind."""
        pgdata = self.workdir / "pgdata"
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir that containers do not set.
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        self.stack.callback(server.cleanup)
        pid = server.get_pid()
        if pid is None:
            raise RuntimeError("pgserver started no postmaster")
        if self.options.server_cpus:
            pin(pid, self.options.server_cpus, tree=True)
        return server.get_uri(), pid, server


async def start_fleet(stack: contextlib.ExitStack, workdir: Path, options: FleetOptions) -> Fleet:
    """Start every target and wait until each one answers."""
    starter = FleetStarter(stack, workdir, options)
    notes: list[str] = []
    up_port = free_port()
    upstream = starter.start_upstream(up_port)
    waits: list[Awaitable[None]] = [wait_tcp(upstream, up_port, READY_TIMEOUT)]
    targets = [Target("direct", f"http://127.0.0.1:{up_port}{CHAT_PATH}", upstream.pid)]

    if options.forwarder:
        port = free_port()
        forwarder = starter.start_forwarder(port, up_port)
        waits.append(wait_tcp(forwarder, port, READY_TIMEOUT))
        targets.append(Target("forwarder", f"http://127.0.0.1:{port}{CHAT_PATH}", forwarder.pid))

    port = free_port()
    sqlite_url = "sqlite:///" + str(workdir / "flywheel.db")
    flywheel = starter.start_flywheel("flywheel-sqlite", port, up_port, sqlite_url)
    waits.append(wait_http(flywheel, f"http://127.0.0.1:{port}/healthz", READY_TIMEOUT))
    url = f"http://127.0.0.1:{port}{CHAT_PATH}"
    spool = starter.spool_dir(flywheel.name)
    targets.append(Target(flywheel.name, url, flywheel.pid, None, sqlite_url, spool))

    pg_server = None
    if options.postgres:
        try:
            pg_url, pg_pid, pg_server = starter.start_postgres()
        except Exception as exc:  # any failure of the optional target only skips it
            notes.append(f"flywheel-postgres skipped: pgserver failed: {exc!r}")
        else:
            port = free_port()
            flywheel = starter.start_flywheel("flywheel-postgres", port, up_port, pg_url)
            waits.append(wait_http(flywheel, f"http://127.0.0.1:{port}/healthz", READY_TIMEOUT))
            url = f"http://127.0.0.1:{port}{CHAT_PATH}"
            spool = starter.spool_dir(flywheel.name)
            targets.append(Target(flywheel.name, url, flywheel.pid, pg_pid, pg_url, spool))

    if options.litellm:
        from bench.litellm_peer import start_litellm  # only when asked: it may pip install

        peer = await start_litellm(starter, up_port)
        if isinstance(peer, str):
            notes.append(peer)
        else:
            waits.append(peer.ready)
            targets.append(peer.target)

    await asyncio.gather(*waits)
    return Fleet(targets, upstream.pid, notes, pg_server)


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
