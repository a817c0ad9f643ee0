"""`GET`/`DELETE /v1/responses/{id}`, its `input_items` and `cancel`: asked of the provider that
created the response, which is found through the interaction that recorded it.

A response made by translation (its provider speaks only chat completions) exists only in the
store: `GET` answers it from there, as it was sent to the client; the rest is 404. A response
recorded for another API key is 404 to this one, as a provider answers for another account.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.apis import responses
from gateway.appkeys import PROVIDERS, RECENT_INTERACTIONS, STORE
from gateway.auth import KEY_NAME
from gateway.errors import NotFound
from gateway.http_errors import json_response


async def stored_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    action = request.match_info.get("action", "")
    row = await _recorded(request, response_id)
    providers = request.app[PROVIDERS]
    if row is not None:
        name = row.get("provider")
        provider = providers.get(name) if isinstance(name, str) else None
        if provider is None or responses.ENDPOINT not in provider.native:
            if request.method == "GET" and not action and isinstance(row.get("response"), dict):
                return json_response(row["response"])
            raise _missing(response_id, "it was answered by translation and is not stored upstream")
    else:
        speaking = [p for p in providers.values() if responses.ENDPOINT in p.native]
        if len(speaking) != 1:
            raise _missing(response_id, "no recorded interaction has it")
        provider = speaking[0]
    path = f"responses/{response_id}" + (f"/{action}" if action else "")
    if request.query_string:
        path += f"?{request.query_string}"
    upstream = await provider.forward(request.method, path, None, None)  # type: ignore[attr-defined]
    return web.Response(
        body=upstream.body,
        status=upstream.status,
        headers={**upstream.headers, "Content-Type": upstream.content_type},
    )


async def _recorded(request: web.Request, response_id: str) -> dict[str, Any] | None:
    """The interaction that recorded `response_id`, if the caller's key may see it."""
    store = request.app[STORE]
    interaction_id = request.app[RECENT_INTERACTIONS].interaction_for(response_id)
    if interaction_id is None:
        found = await store.interactions_for_responses([response_id])
        interaction_id = found.get(response_id)
    row = await store.get_interaction(interaction_id) if interaction_id else None
    if row is not None and request.get(KEY_NAME) not in (None, row.get("api_key_name")):
        raise _missing(response_id, "no recorded interaction has it")
    return row


def _missing(response_id: str, why: str) -> NotFound:
    return NotFound(f"No response with id '{response_id}': {why}.", param="response_id")
