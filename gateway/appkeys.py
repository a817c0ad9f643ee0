"""Typed keys for the state `create_app` puts on the application; nothing lives in globals."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.auth import KeyRing
from gateway.config import Config
from gateway.feedback.recent import RecentInteractions
from gateway.feedback.tokens import FeedbackTokens
from gateway.metrics import Metrics
from gateway.overload import InFlightLimit
from gateway.pricing import PriceTable
from gateway.providers import Provider
from gateway.recorder import Recorder
from gateway.routing import Router
from gateway.store import Store
from gateway.store.migrator import Migrations

CONFIG = web.AppKey("config", Config)
ROUTER = web.AppKey("router", Router)
KEYS = web.AppKey("keys", KeyRing)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
PROVIDERS = web.AppKey("providers", dict[str, Provider])
STORE = web.AppKey("store", Store)
MIGRATIONS = web.AppKey("migrations", Migrations)
RECORDER = web.AppKey("recorder", Recorder)
PRICES = web.AppKey("prices", PriceTable)
IN_FLIGHT = web.AppKey("in_flight", InFlightLimit)
FEEDBACK_TOKENS = web.AppKey("feedback_tokens", FeedbackTokens)
RECENT_INTERACTIONS = web.AppKey("recent_interactions", RecentInteractions)
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
METRICS = web.AppKey("metrics", Metrics)
