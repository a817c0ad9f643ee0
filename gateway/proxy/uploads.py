"""`/v1` endpoints whose requests are multipart uploads: transcriptions, translations, image
edits and variations. The body is relayed as it came; the record keeps its form fields and, for
each file, its name, type and size, never its bytes.
"""

from __future__ import annotations

import logging
import time
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from functools import partial
from typing import Any

from aiohttp import web

from gateway.appkeys import CONFIG, PROVIDERS, ROUTER
from gateway.bodies import read_body
from gateway.errors import ApiError, InternalError, InvalidRequest
from gateway.proxy.assembler import ResponseAssembler
from gateway.proxy.exchange import Exchange
from gateway.proxy.metadata import read_metadata
from gateway.proxy.relay import relay_body
from gateway.records.headers import VARIANT_HEADER
from gateway.records.tags import MAX_ID_LENGTH

log = logging.getLogger(__name__)

UPLOADS = ("audio/transcriptions", "audio/translations", "images/edits", "images/variations")
# A form field's text kept in the record (a prompt, a language); longer values are cut.
_MAX_FIELD_CHARS = 64 * 1024


def upload_endpoint(endpoint: str):
    return partial(_upload, endpoint=endpoint)


async def _upload(request: web.Request, endpoint: str) -> web.StreamResponse:
    exchange = Exchange(request, endpoint)
    it = exchange.interaction
    server = request.app[CONFIG].server
    try:
        content_type = request.headers.get("Content-Type", "")
        data = await read_body(
            request, server.max_body_bytes, server.body_read_timeout, "multipart/form-data"
        )
        meta = read_metadata(request.headers, {})
        it.user, it.session, it.tags = meta.user, meta.session, meta.tags
        form = read_form(content_type, data)
        model = form.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("You must provide a model parameter.", param="model")
        it.requested_model = model[:MAX_ID_LENGTH]
        route = exchange.route = request.app[ROUTER].route(model, meta.user, meta.session)
        it.provider, it.upstream_model, it.variant = route.provider, route.upstream_model, None
        it.request = form
        if route.upstream_model != model:
            raise InvalidRequest(
                f"Model '{model}' is an alias for '{route.upstream_model}': uploads are relayed "
                "as they came, so ask for the upstream name.",
                param="model",
            )
        if route.variant:
            exchange.headers[VARIANT_HEADER] = route.variant
        provider = request.app[PROVIDERS][route.provider]
        forward = getattr(provider, "forward", None)
        if forward is None:
            raise InvalidRequest(
                f"Model '{model}' is served by provider '{route.provider}', which does not "
                f"offer /v1/{endpoint}.",
                param="model",
            )
        exchange.upstream_from = time.perf_counter()
        upstream = await forward("POST", endpoint, data, content_type)
    except ApiError as error:
        return exchange.refuse(error)
    except Exception:  # a bug of ours: answered and recorded all the same (see handlers._proxy)
        log.exception("interaction %s: failed before the answer", exchange.interaction.id)
        return exchange.refuse(InternalError(exchange.interaction.id))
    exchange.upstream_wait_ended()
    return await relay_body(exchange, upstream, ResponseAssembler(endpoint))


def read_form(content_type: str, data: bytes) -> dict[str, Any]:
    """A multipart body's fields: text as text, files as {filename, content_type, bytes}."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + data)
    if not message.is_multipart():
        raise InvalidRequest("The multipart body could not be read.")
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        form[name] = _field(part)
    return form


def _field(part: Message) -> Any:
    payload = part.get_payload(decode=True)
    payload = payload if isinstance(payload, bytes) else b""
    filename = part.get_filename()
    if filename is not None:
        kind = part.get_content_type()
        return {"filename": filename, "content_type": kind, "bytes": len(payload)}
    return payload.decode("utf-8", errors="replace")[:_MAX_FIELD_CHARS]
