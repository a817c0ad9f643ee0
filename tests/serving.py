"""Run `flywheel serve` as a real subprocess (the CLI, the supervisor, signals) for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedGateway:
    """`python -m gateway serve` on a free port, run in `folder` with `folder/config.yaml`
    (written from `config` when given). `command` replaces `python -m gateway` (an installed
    `flywheel`, say) and `env` adds variables to a copy of this process's, less FLYWHEEL_* and
    OPENAI_*."""

    def __init__(
        self,
        folder: Path,
        config: dict[str, Any] | None = None,
        *,
        command: Sequence[str] = (sys.executable, "-m", "gateway"),
        env: Mapping[str, str] | None = None,
    ):
        self.folder = folder
        self.port = free_port()
        if config is not None:
            (folder / "config.yaml").write_text(yaml.safe_dump(config))
        inherited = os.environ.items()
        child_env = {k: v for k, v in inherited if not k.startswith(("FLYWHEEL_", "OPENAI_"))}
        child_env.update(env or {})
        self.log = (folder / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [*command, "serve", "--port", str(self.port)],
            cwd=folder,
            env=child_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                assert self.process.poll() is None, self.output()
                try:
                    async with session.get(f"{self.base_url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"flywheel serve never became ready:\n{self.output()}")

    def worker_pids(self) -> set[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in path.read_text().split()}

    async def terminate(self, wait_seconds: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, wait_seconds)

    def output(self) -> str:
        self.log.flush()
        return (self.folder / "serve.log").read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()
