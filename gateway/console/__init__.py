"""The web console at /console: people read the traffic, judge it and ship datasets.

Server-rendered pages (Jinja2, autoescaped) with one small script for what a page cannot do
alone (new rows appearing, export progress); every route goes through guard.page (session,
scope, CSRF, CSP). The console reads through the same store roles and report code as the
admin API and is never on the proxy's request path.

    GET  /console/                          overview (console/overview.py)
    GET  /console/interactions              filtered listing, keyset pages (interactions.py)
    GET  /console/interactions/{id}         one interaction as a conversation, its feedback
    POST /console/interactions/{id}/feedback  a judgement or correction (judging.py)
    GET  /console/failures                  failures by provider, quality flags (failures.py)
    GET  /console/experiments               A/B readouts (experiments.py)
    GET  /console/datasets                  export jobs, runs, downloads (datasets.py)
    GET  /console/datasets/jobs/{name}/preview    how many new examples the job would write
    POST /console/datasets/jobs/{name}/run        run a job now (admin)
    POST /console/datasets/export                 an ad-hoc export (admin)
    GET  /console/datasets/runs/{id}[/files/{name}]  a run, its manifest; a file (admin)
    GET|POST /console/sign-in, POST /console/sign-out   (signin.py)
"""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import CONFIG
from gateway.console import datasets, experiments, failures, interactions, overview, signin
from gateway.console.guard import CONSOLE, Console, not_found
from gateway.console.reader import reader_context, search_index_context
from gateway.console.render import templates
from gateway.console.session import SessionSigner


def add_routes(app: web.Application) -> None:
    config = app[CONFIG].console
    if not config.enabled:
        return
    app[CONSOLE] = Console(
        signer=SessionSigner(config.session_secret, config.session_ttl), templates=templates()
    )
    app.cleanup_ctx.append(reader_context)  # after the app's store: PostgreSQL reuses it
    app.cleanup_ctx.append(search_index_context)  # keeps `q` fast (gateway/store/search.py)
    router = app.router
    router.add_get("/console", overview.overview)
    router.add_get("/console/", overview.overview)
    router.add_get("/console/sign-in", signin.sign_in_form)
    router.add_post("/console/sign-in", signin.sign_in)
    router.add_post("/console/sign-out", signin.sign_out)
    router.add_get("/console/interactions", interactions.listing)
    router.add_get("/console/interactions/{id}", interactions.detail)
    router.add_post("/console/interactions/{id}/feedback", interactions.judge)
    router.add_get("/console/failures", failures.failures)
    router.add_get("/console/experiments", experiments.experiments)
    router.add_get("/console/datasets", datasets.datasets)
    router.add_get("/console/datasets/jobs/{name}/preview", datasets.job_preview)
    router.add_post("/console/datasets/jobs/{name}/run", datasets.run_job)
    router.add_post("/console/datasets/export", datasets.run_adhoc)
    router.add_get("/console/datasets/runs/{id}", datasets.run_page)
    router.add_get("/console/datasets/runs/{id}/files/{name:.+}", datasets.download)
    router.add_get("/console/{tail:.*}", not_found)  # last: matches any other page
