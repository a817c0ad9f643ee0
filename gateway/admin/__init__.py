"""The admin API under `/admin` (scope `admin`): reviewing interactions and their feedback."""

from __future__ import annotations

from aiohttp import web

from gateway.admin import api, exports, privacy
from gateway.admin.experiments import experiment_readout


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/interactions", api.list_interactions)
    app.router.add_get("/admin/interactions/{id}", api.get_interaction)
    app.router.add_get("/admin/stats", api.get_stats)
    app.router.add_get("/admin/failures", api.list_failures)
    app.router.add_get("/admin/experiments/{model}", experiment_readout)
    exports.add_routes(app)
    privacy.add_routes(app)
