"""The loop after an export: fine-tune, register the model as a version, canary, promote.

    launchers.py   OpenAI, Together, local TRL recipe (recipe.py): upload, create, poll
    runs.py        `tuning_runs`: start from an export run, poll (resumed after a restart),
                   register the result as a model version with its lineage
    allocation.py  which buckets each arm owns; changes that move as few users as possible
    rollout.py     canary / weights / promote / rollback / reset over config.yaml's baseline,
                   stored, audited, and refreshed on every replica
    policy.py      guardrails, promotion, Thompson sampling: decisions from a readout
    autopilot.py   policies and retraining triggers, run on their intervals
    health.py      per-version health over the last windows, with a recommendation
    admin.py       the admin routes; cli.py `flywheel tune` and `flywheel models`

`install(app)` adds the routes and one cleanup context that runs the override refresher and
the job poller, the policies and the triggers; nothing here runs at import.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.errors import ApiError, StoreError

if TYPE_CHECKING:
    from gateway.tuning.autopilot import Decisions

log = logging.getLogger(__name__)
DECISIONS: web.AppKey[Decisions] = web.AppKey("tuning_decisions")


def install(app: web.Application) -> None:
    from gateway.tuning import admin

    admin.add_routes(app)
    app.cleanup_ctx.append(_tuning)


async def _tuning(app: web.Application) -> AsyncIterator[None]:
    from gateway.appkeys import CONFIG, METRICS_REGISTRY, ROUTER, STORE
    from gateway.tuning.autopilot import Decisions
    from gateway.tuning.rollout import OverrideRefresher, stop_task

    config = app[CONFIG]
    refresher = OverrideRefresher(app[STORE], app[ROUTER], config.tuning.refresh_interval)
    refresher.start()
    app[DECISIONS] = Decisions(app[METRICS_REGISTRY])
    tasks = [asyncio.create_task(_poll_forever(app), name="flywheel-tuning-poll")]
    tasks += _autopilot(app)
    yield
    for task in tasks:
        await stop_task(task)
    await refresher.stop()


def _autopilot(app: web.Application) -> list[asyncio.Task[None]]:
    from gateway.appkeys import CONFIG, HTTP_SESSION, ROUTER, STORE
    from gateway.tuning.autopilot import check_trigger, evaluate, run_every

    config, store, router = app[CONFIG], app[STORE], app[ROUTER]
    tasks = []
    for policy in config.tuning.policies.values():

        async def judge(policy: Any = policy) -> None:
            await evaluate(store, config, policy, router=router, decisions=app[DECISIONS])

        lock = f"flywheel-policy:{policy.model}"
        work = run_every(f"policy {policy.model}", policy.interval, lock, store, judge)
        tasks.append(asyncio.create_task(work, name=lock))
    for trigger in config.tuning.triggers.values():

        async def check(trigger: Any = trigger) -> None:
            await check_trigger(store, config, trigger, app[HTTP_SESSION], router)

        lock = f"flywheel-trigger:{trigger.name}"
        work = run_every(f"trigger {trigger.name}", trigger.interval, lock, store, check)
        tasks.append(asyncio.create_task(work, name=lock))
    return tasks


async def _poll_forever(app: web.Application) -> None:
    from gateway.appkeys import CONFIG, HTTP_SESSION, ROUTER, STORE
    from gateway.tuning.runs import poll_runs

    config = app[CONFIG]
    while True:
        # First poll at start: a restart resumes the jobs it left at once.
        try:
            await poll_runs(app[STORE], config, app[HTTP_SESSION], app[ROUTER])
        except (StoreError, ApiError) as exc:
            log.warning("tuning: jobs not polled this turn: %s", exc)
        await asyncio.sleep(config.tuning.poll_interval)
