"""With the database down, every admin route and `POST /v1/feedback` answer 503 in OpenAI's
error shape: the error middleware turns any `StoreError` into it, so no handler has to.

Routes are read from the app's router, so a new admin route is covered without editing this
file; one whose request needs more than its path (a body, a query) gets it from `REQUESTS`.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway.ids import uuid7
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream

ADMIN_KEY = "fw-ops-key"
# What to put in each path parameter: ids that are well formed (a malformed one answers 404
# before the store is asked) and a model the config routes (else 404 model_not_found).
PATH_VALUES = {"id": uuid7(), "model": "gpt-4o-mini", "name": "train.jsonl"}
# Query string and JSON body of the routes that need one to reach the store.
REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/admin/exports/preview"): {"params": {"format": "openai"}},
    ("POST", "/admin/exports"): {"json": {"format": "openai"}},
    # An id this gateway never issued, so only the store can say whether it exists.
    ("POST", "/v1/feedback"): {"json": {"interaction_id": uuid7(), "thumbs": "up"}},
    ("POST", "/admin/tuning/runs"): {
        "json": {
            "launcher": "local",
            "base_model": "gpt-4o-mini",
            "model": "gpt-4o-mini",
            "export_run_id": uuid7(),  # only the store knows whether this run exists
        }
    },
    ("POST", "/admin/tuning/runs/{id}/complete"): {"json": {"model": "ft:gpt-4o-mini:1"}},
    ("POST", "/admin/routes/{model}/canary"): {
        "json": {"variant": "ft", "weight": 5, "upstream_model": "ft:gpt-4o-mini:1"}
    },
    ("POST", "/admin/routes/{model}/weights"): {"json": {"weights": {"base": 100}}},
    ("POST", "/admin/routes/{model}/promote"): {"json": {"variant": "base"}},
    ("POST", "/admin/routes/{model}/rollback"): {"json": {"variant": "base"}},
}
# Routes that never touch the store, and why.
STORELESS = {
    ("POST", "/admin/reload"): "reloads the config file; the storage section is restart-only",
}


def store_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every admin route and the feedback route. HEAD is skipped:
    aiohttp adds it to each GET route, with the same handler and no body to check."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        path = resource.canonical
        if path.startswith("/admin") or path == "/v1/feedback":
            found.append((route.method, path))
    return found


async def test_every_admin_and_feedback_route_answers_503_with_the_store_down(
    unreachable_url: str, upstream: FakeUpstream, make_gateway: Any
) -> None:
    config = base_config(upstream, unreachable_url)
    config["auth"] = {
        "keys": [{"name": "ops", "key": ADMIN_KEY, "scopes": ["admin", "feedback", "inference"]}]
    }
    # A launcher and a policy, so the tuning routes get past their config checks to the store.
    config["tuning"] = {
        "launchers": {"local": {"type": "local", "serve_with": "fake"}},
        "policies": {"gpt-4o-mini": {"mode": "recommend"}},
    }
    gateway = await make_gateway(config)  # starts anyway: the database is down, not the gateway
    routes = store_routes(gateway.app)
    assert set(STORELESS) <= set(routes), "a skipped route no longer exists"
    assert {("GET", "/admin/stats"), ("POST", "/v1/feedback")} <= set(routes), routes

    wrong = {}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for method, template in routes:
            if (method, template) in STORELESS:
                continue
            path = template.format(**{name: PATH_VALUES[name] for name in _params(template)})
            extra = REQUESTS.get((method, template), {})
            async with http.request(method, gateway.base_url + path, **extra) as response:
                problem = _problem(response, await response.read())
            if problem:
                wrong[f"{method} {template}"] = problem
    assert not wrong, wrong


def _params(template: str) -> list[str]:
    return re.findall(r"\{(\w+)", template)


def _problem(response: aiohttp.ClientResponse, raw: bytes) -> str | None:
    """What is wrong with this answer, or None for a 503 in OpenAI's error shape."""
    if response.status != 503 or response.content_type != "application/json":
        return f"{response.status} {response.content_type}: {raw[:200]!r}"
    body = orjson.loads(raw)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(error) != {"message", "type", "param", "code"}:
        return f"not OpenAI's error shape: {body}"
    if error["code"] != "store_unavailable" or not error["message"]:
        return f"not a store error: {body}"
    return None
