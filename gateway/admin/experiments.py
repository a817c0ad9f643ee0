"""`GET /admin/experiments/{model}`: the A/B readout of one model for a time window."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.admin.params import time_window
from gateway.appkeys import CONFIG, ROUTER, STORE
from gateway.experiments import arms_of_figures, readout_of_arms
from gateway.http_errors import json_response
from gateway.store import StatsStore
from gateway.store.queries import TimeWindow


async def experiment_readout(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    control = request.app[ROUTER].control(model)  # raises ModelNotFound
    window = time_window(request.query)
    result = await compute_readout(request.app[STORE], request.app[CONFIG], model, control, window)
    return json_response(result)


async def compute_readout(
    store: StatsStore, config: Any, model: str, control: str | None, window: TimeWindow
) -> dict[str, Any]:
    # Aggregated per variant in SQL: pulling a day's rows into Python took 350-530 ms on a
    # busy PostgreSQL at 1M rows.
    arms = arms_of_figures(await store.experiment_figures(model, window))
    # The statistics (and scipy's import) run on a thread: the loop keeps serving traffic.
    return await asyncio.to_thread(
        readout_of_arms,
        model,
        arms,
        control=control,
        min_samples=config.experiments.min_samples,
        alpha=config.experiments.alpha,
    )
