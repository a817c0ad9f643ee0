"""The in-flight cap: past `server.max_in_flight` requests, answer 503 at once.

Queueing without bound is how a gateway under a burst runs out of memory and times out every
caller instead of some. Rejected requests are cheap (no parsing, no record) and carry
`Retry-After`, which the OpenAI SDKs honour with their built-in retries.

The cap sits after authentication, and a request still waiting to show its feedback token takes
a slot of a small pool of its own: otherwise unauthenticated clients that trickle their bodies
could fill every slot and turn each keyed caller away (bodies are read with a deadline,
gateway/bodies.py).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.auth import AWAITING_TOKEN
from gateway.errors import Overloaded
from gateway.http_errors import error_response


class InFlightLimit:
    def __init__(self, limit: int):
        self.limit = limit
        # Keyless feedback (a browser with its token) has a small pool of its own: it cannot
        # take the keyed callers' slots, nor hold unbounded bodies in memory at once.
        self.tokens_limit = max(8, limit // 10)
        self.in_flight = 0
        self.admitted = 0  # ever: with in_flight, how background work tells traffic
        self.tokens_in_flight = 0
        self.rejected = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)  # health, readiness and metrics must always answer
        if request.get(AWAITING_TOKEN):
            if self.tokens_in_flight >= self.tokens_limit:
                return self._reject(request, self.tokens_limit)
            self.tokens_in_flight += 1
            try:
                return await handler(request)
            finally:
                self.tokens_in_flight -= 1
        if self.in_flight >= self.limit:
            return self._reject(request, self.limit)
        self.in_flight += 1
        self.admitted += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    def _reject(self, request: web.Request, limit: int) -> web.Response:
        self.rejected += 1
        error = Overloaded(f"The gateway has {limit} requests in flight, its limit. Retry shortly.")
        return error_response(error, request.path, headers={"Retry-After": "1"})
