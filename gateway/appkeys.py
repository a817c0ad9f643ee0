"""Typed keys for the state `create_app` puts on the application; nothing lives in globals."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.config import Config
from gateway.overload import InFlightLimit
from gateway.pricing import PriceTable
from gateway.providers import Provider
from gateway.recorder import Recorder
from gateway.routing import Router
from gateway.store import Store

CONFIG = web.AppKey("config", Config)
ROUTER = web.AppKey("router", Router)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
PROVIDERS = web.AppKey("providers", dict[str, Provider])
STORE = web.AppKey("store", Store)
RECORDER = web.AppKey("recorder", Recorder)
PRICES = web.AppKey("prices", PriceTable)
IN_FLIGHT = web.AppKey("in_flight", InFlightLimit)
