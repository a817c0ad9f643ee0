"""A fake fine-tuning provider: a real aiohttp server on loopback that speaks OpenAI's files,
jobs and events wire format under `/v1`, and Together's under `/together/v1`.

Each GET of a job moves it one step along its provider's status list, so a test polls a job
to the end without waiting on a clock:

    OpenAI    validating_files -> queued -> running -> succeeded (fine_tuned_model set)
    Together  pending -> queued -> running -> completed (output_name set)

A base model whose name holds `fail` ends in `failed` / `error` instead. Uploads are kept
(`files`: id -> (purpose, filename, bytes)), as are created jobs' bodies (`created`), and every
request is recorded (`requests`: method, path) before it is answered. `refuse_create` answers
job creation with OpenAI's 400 error body; `failing_polls` makes job GETs answer 503 for a
while. `POST /hooks` is a webhook receiver (`hooks`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

OPENAI_STEPS = ("validating_files", "queued", "running", "succeeded")
TOGETHER_STEPS = ("pending", "queued", "running", "completed")


@dataclass
class Job:
    body: dict[str, Any]
    provider: str  # openai or together
    step: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeTuning:
    def __init__(self) -> None:
        self.files: dict[str, tuple[str, str, bytes]] = {}
        self.jobs: dict[str, Job] = {}
        self.created: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.refuse_create = False
        self.failing_polls = 0  # this many job GETs answer 503 (an outage) before the rest
        self.hooks: list[dict[str, Any]] = []  # bodies POSTed to /hooks (a webhook receiver)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> FakeTuning:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/v1/files", self.upload)
        app.router.add_post("/together/v1/files/upload", self.upload)
        app.router.add_post("/v1/fine_tuning/jobs", self.create_openai)
        app.router.add_post("/together/v1/fine-tunes", self.create_together)
        app.router.add_get("/v1/fine_tuning/jobs/{id}", self.get_job)
        app.router.add_get("/together/v1/fine-tunes/{id}", self.get_job)
        app.router.add_get("/v1/fine_tuning/jobs/{id}/events", self.events)
        app.router.add_get("/together/v1/fine-tunes/{id}/events", self.events)
        app.router.add_post("/hooks", self.hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def together_url(self) -> str:
        return f"{self.base_url}/together/v1"

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path != "/hooks" and request.headers.get("Authorization") != "Bearer sk-tuning":
            return _error(401, "invalid_api_key", "Incorrect API key provided.")
        return await handler(request)

    async def hook(self, request: web.Request) -> web.Response:
        self.hooks.append(await request.json())
        return web.json_response({"ok": True})

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or form.get("purpose") != "fine-tune":
            return _error(400, "invalid_request", "file and purpose=fine-tune are required")
        data = upload.file.read()
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.files[file_id] = (str(form["purpose"]), upload.filename, data)
        return web.json_response(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": upload.filename,
                "purpose": "fine-tune",
            }
        )

    async def create_openai(self, request: web.Request) -> web.Response:
        return await self._create(request, "openai", "ftjob-")

    async def create_together(self, request: web.Request) -> web.Response:
        return await self._create(request, "together", "ft-")

    async def _create(self, request: web.Request, provider: str, prefix: str) -> web.Response:
        body = await request.json()
        if self.refuse_create:
            return _error(400, "invalid_training_file", "The job failed validation.")
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in self.files:
                return _error(400, "invalid_request", f"{key} {body[key]} does not exist")
        if not body.get("model"):
            return _error(400, "invalid_request", "model is required")
        job_id = f"{prefix}{uuid.uuid4().hex[:12]}"
        self.jobs[job_id] = Job(body=body, provider=provider)
        self.created.append(body)
        return web.json_response(self._job(job_id))

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _error(404, "not_found", "No such job")
        if self.failing_polls:
            self.failing_polls -= 1
            return web.Response(status=503, text="upstream connect error")
        steps = OPENAI_STEPS if job.provider == "openai" else TOGETHER_STEPS
        job.step = min(job.step + 1, len(steps) - 1)
        job.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{uuid.uuid4().hex[:8]}",
                "created_at": int(time.time()),
                "level": "info",
                "message": f"Status: {self._status(job)}",
                "type": "message",
            }
        )
        return web.json_response(self._job(request.match_info["id"]))

    async def events(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _error(404, "not_found", "No such job")
        return web.json_response(
            {"object": "list", "data": list(reversed(job.events)), "has_more": False}
        )

    def _status(self, job: Job) -> str:
        steps = OPENAI_STEPS if job.provider == "openai" else TOGETHER_STEPS
        status = steps[job.step]
        if "fail" in job.body["model"] and job.step == len(steps) - 1:
            return "failed" if job.provider == "openai" else "error"
        return status

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        status = self._status(job)
        done = status in ("succeeded", "completed")
        tuned = f"ft:{job.body['model']}:flywheel:{job_id[-6:]}"
        if job.provider == "together":
            return {
                "id": job_id,
                "status": status,
                "model": job.body["model"],
                "training_file": job.body["training_file"],
                "training_method": job.body.get("training_method"),
                "output_name": tuned if done else None,
                "token_count": 1234 if done else None,
                "total_price": 250 if done else None,
            }
        failed = status == "failed"
        return {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": job.body["model"],
            "created_at": int(time.time()),
            "status": status,
            "fine_tuned_model": tuned if done else None,
            "training_file": job.body["training_file"],
            "validation_file": job.body.get("validation_file"),
            "method": job.body.get("method"),
            "trained_tokens": 4321 if done else None,
            "error": {"code": "invalid_training_file", "message": "Too few examples", "param": None}
            if failed
            else None,
        }


def _error(status: int, code: str, message: str) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
    return web.json_response(body, status=status)
