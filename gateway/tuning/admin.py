"""The tuning API (admin scope): fine-tuning runs, model versions, and rollout of a model.

    POST   /admin/tuning/runs                 {launcher, base_model, export_run_id | job,
                                               model?, canary_weight?}  -> 201 the run
    GET    /admin/tuning/runs                 runs, newest first
    GET    /admin/tuning/runs/{id}            one run, with the provider's latest events
    POST   /admin/tuning/runs/{id}/poll       poll its provider now
    POST   /admin/tuning/runs/{id}/complete   {model}: a `local` run trained by hand
    GET    /admin/model-versions?model=       versions with their lineage and status
    GET    /admin/routes/{model}              the model's arms: the store's, else config's
    POST   /admin/routes/{model}/canary       {variant, weight, provider?, upstream_model?}
    POST   /admin/routes/{model}/weights      {weights: {arm: weight}}
    POST   /admin/routes/{model}/promote      {variant, reason?}
    POST   /admin/routes/{model}/rollback     {variant, reason?}
    DELETE /admin/routes/{model}              back to config.yaml
    GET    /admin/health/{model}              per-arm health over the last windows, trend,
                                              recommendation, policy decisions, actions taken
    POST   /admin/policies/{model}/evaluate   run the model's policy now (acts in `act` mode)

Each rollout change is also an `audit_log` entry (`rollout.*`) with the weights before and
after; the audit middleware records the HTTP call as well.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.appkeys import CONFIG, HTTP_SESSION, ROUTER, STORE
from gateway.auth import KEY_NAME
from gateway.bodies import read_json
from gateway.errors import NotFound, ValidationFailed
from gateway.http_errors import json_response
from gateway.tuning import rollout, runs
from gateway.tuning.launchers import LaunchError

_BODY_LIMIT = 64 * 1024


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/tuning/runs", start_run)
    app.router.add_get("/admin/tuning/runs", list_runs)
    app.router.add_get("/admin/tuning/runs/{id}", get_run)
    app.router.add_post("/admin/tuning/runs/{id}/poll", poll_run)
    app.router.add_post("/admin/tuning/runs/{id}/complete", complete_run)
    app.router.add_get("/admin/model-versions", list_versions)
    app.router.add_get("/admin/routes/{model}", get_route)
    for action in ("canary", "weights", "promote", "rollback"):
        app.router.add_post(f"/admin/routes/{{model}}/{action}", _change(action))
    app.router.add_delete("/admin/routes/{model}", reset_route)
    app.router.add_get("/admin/health/{model}", get_health)
    app.router.add_post("/admin/policies/{model}/evaluate", evaluate_policy)


async def _body(request: web.Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    timeout = request.app[CONFIG].server.body_read_timeout
    body = await read_json(request, _BODY_LIMIT, timeout)
    if not isinstance(body, dict):
        raise ValidationFailed("body: must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValidationFailed(f"{unknown[0]}: not a known field ({', '.join(allowed)})")
    return body


def _text(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{name}: must be a non-empty string")
    return value


def _number(body: dict[str, Any], name: str, required: bool = True) -> float | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(f"{name}: must be a number")
    return float(value)


async def start_run(request: web.Request) -> web.Response:
    body = await _body(
        request, ("launcher", "base_model", "export_run_id", "job", "model", "canary_weight")
    )
    tune = runs.TuneRequest(
        launcher=str(_text(body, "launcher")),
        base_model=str(_text(body, "base_model")),
        export_run_id=_text(body, "export_run_id", required=False),
        job=_text(body, "job", required=False),
        model=_text(body, "model", required=False),
        canary_weight=_number(body, "canary_weight", required=False),
        actor=request.get(KEY_NAME),
    )
    app = request.app
    run = await runs.start_run(app[STORE], app[CONFIG], app[HTTP_SESSION], tune)
    return json_response({"object": "tuning.run", **run}, status=201)


def _query(request: web.Request, allowed: tuple[str, ...] = ()) -> None:
    """Unknown query parameters are errors, as everywhere in the admin API."""
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise ValidationFailed(f"{unknown[0]}: not a known parameter")


async def list_runs(request: web.Request) -> web.Response:
    _query(request)
    runs_ = await request.app[STORE].tuning_runs(limit=200)
    return json_response({"object": "list", "data": runs_})


async def _run(request: web.Request) -> dict[str, Any]:
    run = await request.app[STORE].get_tuning_run(request.match_info["id"])
    if run is None:
        raise NotFound(f"No tuning run {request.match_info['id']}.")
    return run


async def get_run(request: web.Request) -> web.Response:
    run = await _run(request)
    config = request.app[CONFIG]
    events: list[dict[str, Any]] = []
    if run.get("external_id") and run["launcher"] in config.tuning.launchers:
        launcher = runs.launcher_for(config, request.app[HTTP_SESSION], run["launcher"])
        try:
            events = await launcher.events(run["external_id"])
        except LaunchError as exc:
            run["events_error"] = str(exc)
    return json_response({"object": "tuning.run", **run, "events": events})


async def poll_run(request: web.Request) -> web.Response:
    run = await _run(request)
    app = request.app
    polled = await runs.poll_run(app[STORE], app[CONFIG], app[HTTP_SESSION], run, app[ROUTER])
    return json_response({"object": "tuning.run", **runs.as_json(polled)})


async def complete_run(request: web.Request) -> web.Response:
    body = await _body(request, ("model",))
    app = request.app
    run = await runs.complete_local(
        app[STORE], app[CONFIG], request.match_info["id"], str(_text(body, "model")), app[ROUTER]
    )
    return json_response({"object": "tuning.run", **runs.as_json(run)})


async def list_versions(request: web.Request) -> web.Response:
    _query(request, ("model",))
    model = request.query.get("model")
    versions = await request.app[STORE].model_versions(model)
    return json_response({"object": "list", "data": versions})


async def get_route(request: web.Request) -> web.Response:
    app = request.app
    row = await rollout.current(app[STORE], app[CONFIG], request.match_info["model"])
    return json_response({"object": "route", **rollout.as_json(row)})


def _change(action: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return await change(request, action)

    return handler


async def change(request: web.Request, action: str) -> web.Response:
    app, model = request.app, request.match_info["model"]
    store, config, router, actor = app[STORE], app[CONFIG], app[ROUTER], request.get(KEY_NAME)
    if action == "canary":
        body = await _body(request, ("variant", "weight", "provider", "upstream_model"))
        row = await rollout.canary(
            store,
            config,
            model,
            str(_text(body, "variant")),
            float(_number(body, "weight") or 0),
            actor=actor,
            router=router,
            provider=_text(body, "provider", required=False),
            upstream_model=_text(body, "upstream_model", required=False),
        )
    elif action == "weights":
        body = await _body(request, ("weights",))
        weights = body.get("weights")
        if not isinstance(weights, dict) or not weights:
            raise ValidationFailed("weights: must be an object of arm name to weight")
        parsed = {str(k): _number(weights, str(k)) or 0.0 for k in weights}
        row = await rollout.set_weights(store, config, model, parsed, actor=actor, router=router)
    else:
        body = await _body(request, ("variant", "reason"))
        act = rollout.promote if action == "promote" else rollout.rollback
        row = await act(
            store,
            config,
            model,
            str(_text(body, "variant")),
            actor=actor,
            router=router,
            reason=_text(body, "reason", required=False),
        )
    return json_response({"object": "route", **row})


async def reset_route(request: web.Request) -> web.Response:
    app, model = request.app, request.match_info["model"]
    deleted = await rollout.reset(
        app[STORE], app[CONFIG], model, actor=request.get(KEY_NAME), router=app[ROUTER]
    )
    return json_response({"object": "route.reset", "model": model, "reset": deleted})


async def get_health(request: web.Request) -> web.Response:
    from gateway.tuning.health import model_health

    app = request.app
    return json_response(await model_health(app[STORE], app[CONFIG], request.match_info["model"]))


async def evaluate_policy(request: web.Request) -> web.Response:
    from gateway.tuning import DECISIONS
    from gateway.tuning.autopilot import evaluate

    app, model = request.app, request.match_info["model"]
    policy = app[CONFIG].tuning.policies.get(model)
    if policy is None:
        raise NotFound(f"No policy for {model} under tuning.policies.")
    result = await evaluate(
        app[STORE], app[CONFIG], policy, router=app[ROUTER], decisions=app.get(DECISIONS)
    )
    return json_response({"object": "policy.evaluation", **result})
