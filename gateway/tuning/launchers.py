"""Where a fine-tuning job runs: OpenAI's API, Together's API, or a TRL recipe on disk.

Each launcher uploads an export's files, creates the job, and later reports its state in one
vocabulary (`queued`, `running`, `succeeded`, `failed`, `cancelled`; `recipe_written` for the
local one). Providers' own status names are kept in `JobState.provider_status`.

Wire formats, as documented by each provider:

    OpenAI    POST /files (multipart: purpose=fine-tune, file)            -> {"id": "file-..."}
              POST /fine_tuning/jobs {model, training_file, validation_file, suffix,
                   method: {type: supervised|dpo}}                         -> job
              GET  /fine_tuning/jobs/{id}       status validating_files|queued|running|
                                                succeeded|failed|cancelled, fine_tuned_model,
                                                trained_tokens, error {code, message}
              GET  /fine_tuning/jobs/{id}/events {"data": [{created_at, level, message}]}
    Together  POST /files/upload (multipart: file, file_name, purpose=fine-tune)
              POST /fine-tunes {model, training_file, validation_file, suffix,
                   training_method: {method: sft|dpo}}
              GET  /fine-tunes/{id}             status pending|queued|running|compressing|
                                                uploading|completed|error|user_error|
                                                cancel_requested|cancelled, output_name
              GET  /fine-tunes/{id}/events      {"data": [{created_at, level, message}]}

A launcher never touches the store; gateway/tuning/runs.py records what it reports.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson

from gateway.config import LauncherConfig
from gateway.errors import FlywheelError
from gateway.tuning.recipe import write_recipe

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
RECIPE_WRITTEN = "recipe_written"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
UNFINISHED = (QUEUED, RUNNING)
# Bodies from a provider are read up to this size: a job object is a few kilobytes.
_MAX_ANSWER_BYTES = 1 << 20


class LaunchError(FlywheelError):
    """A provider refused or failed a fine-tuning call; the message says which and why."""


@dataclass(frozen=True)
class TrainingFiles:
    method: str  # sft, dpo or kto
    train: Path
    validation: Path | None = None


@dataclass(frozen=True)
class JobState:
    status: str
    provider_status: str = ""
    result_model: str | None = None
    trained_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class Launcher(Protocol):
    name: str
    backend: str

    def method_for(self, export_format: str) -> str:
        """The tuning method an export of this format trains with; LaunchError if none."""
        ...

    async def start(
        self, run_id: str, base_model: str, files: TrainingFiles
    ) -> tuple[str | None, JobState]:
        """Upload and create the job: (the provider's job id, its first state)."""
        ...

    async def poll(self, external_id: str) -> JobState: ...

    async def events(self, external_id: str) -> list[dict[str, Any]]: ...


class OpenAILauncher:
    backend = "openai"
    # Export format -> OpenAI's `method.type` (and our method name).
    methods = {"openai": ("sft", "supervised"), "openai-preference": ("dpo", "dpo")}
    statuses = {
        "validating_files": QUEUED,
        "queued": QUEUED,
        "running": RUNNING,
        "succeeded": SUCCEEDED,
        "failed": FAILED,
        "cancelled": CANCELLED,
    }

    def __init__(self, config: LauncherConfig, session: aiohttp.ClientSession):
        self.name = config.name
        self.config = config
        self.session = session
        self.base_url = (config.base_url or "").rstrip("/")

    def method_for(self, export_format: str) -> str:
        if export_format not in self.methods:
            known = ", ".join(self.methods)
            raise LaunchError(
                f"launcher {self.name} ({self.backend}) trains on {known} exports,"
                f" not {export_format}"
            )
        return self.methods[export_format][0]

    async def start(
        self, run_id: str, base_model: str, files: TrainingFiles
    ) -> tuple[str | None, JobState]:
        training = await self._upload(files.train, run_id)
        validation = await self._upload(files.validation, run_id) if files.validation else None
        body = self._job_body(base_model, files, training, validation)
        job = await self._call("POST", self._jobs_path(), body)
        state = self.state(job)
        detail = {"training_file": training, "validation_file": validation}
        return str(job["id"]), JobState(**{**state.__dict__, "detail": {**state.detail, **detail}})

    async def poll(self, external_id: str) -> JobState:
        return self.state(await self._call("GET", f"{self._jobs_path()}/{external_id}"))

    async def events(self, external_id: str) -> list[dict[str, Any]]:
        answer = await self._call("GET", f"{self._jobs_path()}/{external_id}/events")
        data = answer.get("data")
        return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []

    # -- what differs between providers ----------------------------------------------------
    def _jobs_path(self) -> str:
        return "/fine_tuning/jobs"

    def _job_body(
        self, base_model: str, files: TrainingFiles, training: str, validation: str | None
    ) -> dict[str, Any]:
        kind = {"sft": "supervised", "dpo": "dpo"}[files.method]
        body: dict[str, Any] = {
            "model": base_model,
            "training_file": training,
            "method": {"type": kind, kind: {"hyperparameters": {}}},
        }
        if validation:
            body["validation_file"] = validation
        if self.config.suffix:
            body["suffix"] = self.config.suffix
        return body

    async def _upload(self, path: Path, run_id: str) -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", "fine-tune")
        # The provider shows this name in its console: the split and our run id find it back.
        data = await asyncio.to_thread(path.read_bytes)
        form.add_field("file", data, filename=f"flywheel-{run_id[-8:]}-{path.name}")
        answer = await self._call("POST", "/files", form)
        return str(answer["id"])

    def state(self, job: dict[str, Any]) -> JobState:
        raw = str(job.get("status") or "")
        error = job.get("error")
        message = None
        if isinstance(error, dict) and (error.get("message") or error.get("code")):
            message = f"{error.get('code') or 'error'}: {error.get('message') or ''}".strip()
        tokens = job.get("trained_tokens")
        return JobState(
            status=self.statuses.get(raw, RUNNING),
            provider_status=raw,
            result_model=job.get("fine_tuned_model") or None,
            trained_tokens=int(tokens) if isinstance(tokens, int) else None,
            error=message,
        )

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.config.api_key or ''}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if isinstance(body, aiohttp.FormData):
            kwargs["data"] = body
        elif body is not None:
            kwargs["json"] = body
        url = f"{self.base_url}{path}"
        try:
            async with self.session.request(method, url, **kwargs) as response:
                data = await response.content.read(_MAX_ANSWER_BYTES)
                if response.status >= 400:
                    text = data[:500].decode(errors="replace")
                    raise LaunchError(f"{self.name}: {method} {path} -> {response.status}: {text}")
                answer = orjson.loads(data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise LaunchError(f"{self.name}: {method} {path} failed: {exc}") from exc
        except ValueError as exc:  # orjson.JSONDecodeError
            raise LaunchError(f"{self.name}: {method} {path}: answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise LaunchError(f"{self.name}: {method} {path}: answer is not a JSON object")
        return answer


class TogetherLauncher(OpenAILauncher):
    backend = "together"
    # Together trains on OpenAI's chat format (sft) and OpenAI's preference format (dpo).
    methods = {"openai": ("sft", "sft"), "openai-preference": ("dpo", "dpo")}
    statuses = {
        "pending": QUEUED,
        "queued": QUEUED,
        "running": RUNNING,
        "compressing": RUNNING,
        "uploading": RUNNING,
        "completed": SUCCEEDED,
        "error": FAILED,
        "user_error": FAILED,
        "cancel_requested": CANCELLED,
        "cancelled": CANCELLED,
    }

    def _jobs_path(self) -> str:
        return "/fine-tunes"

    def _job_body(
        self, base_model: str, files: TrainingFiles, training: str, validation: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": base_model,
            "training_file": training,
            "training_method": {"method": files.method},
        }
        if validation:
            body["validation_file"] = validation
        if self.config.suffix:
            body["suffix"] = self.config.suffix
        return body

    async def _upload(self, path: Path, run_id: str) -> str:
        name = f"flywheel-{run_id[-8:]}-{path.name}"
        form = aiohttp.FormData()
        form.add_field("purpose", "fine-tune")
        form.add_field("file_name", name)
        form.add_field("file", await asyncio.to_thread(path.read_bytes), filename=name)
        answer = await self._call("POST", "/files/upload", form)
        return str(answer["id"])

    def state(self, job: dict[str, Any]) -> JobState:
        raw = str(job.get("status") or "")
        status = self.statuses.get(raw, RUNNING)
        detail = {}
        if job.get("total_price") is not None:
            # Kept as reported: Together's unit for it is not pinned down in its API reference.
            detail["total_price"] = job["total_price"]
        return JobState(
            status=status,
            provider_status=raw,
            result_model=job.get("output_name") or None,
            trained_tokens=tokens if isinstance(tokens := job.get("token_count"), int) else None,
            error=str(job.get("error") or raw) if status == FAILED else None,
            detail=detail,
        )


class LocalLauncher:
    """Writes a ready-to-run TRL recipe (script + config) next to the exported files; the team
    trains on its own GPUs and registers the model it serves with `flywheel tune complete`."""

    backend = "local"
    methods = {"openai": "sft", "huggingface": "sft", "dpo": "dpo", "kto": "kto"}

    def __init__(self, config: LauncherConfig, recipes_dir: Path):
        self.name = config.name
        self.recipes_dir = recipes_dir

    def method_for(self, export_format: str) -> str:
        if export_format not in self.methods:
            raise LaunchError(
                f"launcher {self.name} (local TRL) trains on {', '.join(self.methods)} exports,"
                f" not {export_format}"
            )
        return self.methods[export_format]

    async def start(
        self, run_id: str, base_model: str, files: TrainingFiles
    ) -> tuple[str | None, JobState]:
        folder = self.recipes_dir / run_id
        written = write_recipe(folder, base_model, files)
        detail = {"recipe_dir": str(folder), "files": [p.name for p in written]}
        return None, JobState(status=RECIPE_WRITTEN, provider_status="local", detail=detail)

    async def poll(self, external_id: str) -> JobState:
        return JobState(status=RECIPE_WRITTEN, provider_status="local")

    async def events(self, external_id: str) -> list[dict[str, Any]]:
        return []


def build_launcher(
    config: LauncherConfig, session: aiohttp.ClientSession, recipes_dir: Path
) -> Launcher:
    if config.type == "openai":
        return OpenAILauncher(config, session)
    if config.type == "together":
        return TogetherLauncher(config, session)
    return LocalLauncher(config, recipes_dir)
