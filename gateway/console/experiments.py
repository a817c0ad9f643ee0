"""The experiments page: for each model split into A/B variants, the admin API's readout
(gateway/admin/experiments.py `compute_readout`): share, errors, latency, cost and positive rate
per variant, and each variant against the control with its 95% interval drawn, the p-value
and the verdict in words.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.admin.experiments import compute_readout
from gateway.appkeys import CONFIG, ROUTER
from gateway.console.charts import interval
from gateway.console.guard import REVIEW, page, render
from gateway.console.overview import RANGES, chosen_window
from gateway.console.reader import reader
from gateway.console.session import Session

# How each compared metric reads, and how its difference is shown.
METRICS = {
    "error_rate": ("Error rate", "percent"),
    "positive_rate": ("Positive feedback rate", "percent"),
    "mean_rating": ("Mean rating", "plain"),
    "latency_ms": ("Mean latency (ms)", "plain"),
    "cost_usd": ("Mean cost (USD)", "cost"),
}


@page(REVIEW)
async def experiments(request: web.Request, session: Session) -> web.StreamResponse:
    name, window = chosen_window(request.query)
    config = request.app[CONFIG]
    models = [m for m, spec in config.models.items() if spec.variants]
    readouts = []
    for model in models:
        control = request.app[ROUTER].control(model)
        result = await compute_readout(reader(request), config, model, control, window)
        readouts.append(_shaped(result))
    context = {"ranges": list(RANGES), "range": name, "readouts": readouts}
    return render(request, session, "experiments.html", context)


def _shaped(result: dict[str, Any]) -> dict[str, Any]:
    for comparison in result["comparisons"]:
        for metric in comparison["metrics"]:
            label, kind = METRICS.get(metric["metric"], (metric["metric"], "plain"))
            metric["label"], metric["kind"] = label, kind
            metric["chart"] = interval(metric["difference"], metric["ci95"])
    return result
