"""The LiteLLM proxy as a peer, run as shipped: master key set, no database, one worker.

It lives in its own virtualenv, `bench/.venv-litellm` (git-ignored), because `litellm[proxy]`
pins versions of fastapi, pydantic and friends that must not leak into Flywheel's environment.
The venv is created with `python -m venv` and `pip install 'litellm[proxy]'` the first time only;
if that fails, the target is skipped with a note instead of failing the whole run.

The proxy gets one model, `bench` -> `openai/bench-model` at the fake upstream, and answers
`Authorization: Bearer sk-bench` (the load generator sends that header to every target).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from bench.procs import free_port, wait_http

if TYPE_CHECKING:
    from bench.targets import FleetStarter, Target

VENV = Path(__file__).resolve().parent / ".venv-litellm"
MASTER_KEY = "sk-bench"
NAME = "litellm-proxy"
# Importing litellm's proxy takes seconds, more on a busy CPU.
READY_TIMEOUT = 180.0
INSTALL_TIMEOUT = 900.0


@dataclass
class Peer:
    target: Target
    ready: Awaitable[None]


def _litellm_bin() -> Path:
    return VENV / "bin" / "litellm"


def ensure_venv() -> str | None:
    """Create the venv and install `litellm[proxy]` unless it is there; None or why not."""
    if _litellm_bin().exists():
        return None
    print(f"installing litellm[proxy] into {VENV} (first run only) ...", flush=True)
    python = VENV / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", "litellm[proxy]"],
    ]
    VENV.mkdir(exist_ok=True)  # `python -m venv` accepts an existing, empty folder
    log = VENV / "install.log"
    try:
        with log.open("wb") as out:
            for step in steps:
                subprocess.run(
                    step, check=True, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT
                )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{NAME} skipped: installing litellm[proxy] failed ({exc!r}); see {log}"
    if not _litellm_bin().exists():
        return f"{NAME} skipped: no litellm executable after install; see {log}"
    return None


def write_config(path: Path, upstream_port: int) -> None:
    config = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": "openai/bench-model",
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": "sk-dummy",
                },
            }
        ]
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


async def start_litellm(starter: FleetStarter, upstream_port: int) -> Peer | str:
    """Start the proxy (installing it first if needed); a Peer, or a note saying why not."""
    from bench.targets import CHAT_PATH, Target

    problem = await asyncio.to_thread(ensure_venv)
    if problem:
        return problem
    config_path = starter.workdir / "litellm.yaml"
    write_config(config_path, upstream_port)
    port = free_port()
    env = {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": "",  # not the repo: nothing of Flywheel's may shadow litellm's imports
    }
    argv = [str(_litellm_bin()), "--config", str(config_path), "--host", "127.0.0.1"]
    child = starter.spawn_server(NAME, [*argv, "--port", str(port)], extra_env=env)
    target = Target(NAME, f"http://127.0.0.1:{port}{CHAT_PATH}", child.pid)
    ready = wait_http(child, f"http://127.0.0.1:{port}/health/liveliness", READY_TIMEOUT)
    return Peer(target, ready)
