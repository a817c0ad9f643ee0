"""Raw passthrough to any OpenAI-compatible API: OpenAI, Azure OpenAI, vLLM, Ollama, Together,
Groq, OpenRouter... The body is forwarded as bytes and the answer relayed as bytes; nothing is
translated, which is what keeps this path fast and faithful.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from gateway.config import ProviderConfig
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.providers.base import CHAT_FAMILY, UpstreamResponse, client_headers
from gateway.providers.limits import Limits

# Enough of a 5xx body for its message; the rest is not read.
_ERROR_BODY_BYTES = 64 * 1024
# OpenAI's other JSON endpoints, relayed as they are (the multipart ones go through `forward`).
_OTHER_JSON = frozenset({"moderations", "images/generations", "audio/speech"})


class OpenAICompatProvider:
    def __init__(self, config: ProviderConfig, session: aiohttp.ClientSession):
        assert config.base_url is not None  # checked by config validation
        self.name = config.name
        self._base_url = config.base_url.rstrip("/")
        self._query = dict(config.query)
        # Not every OpenAI-compatible server has the Responses API (vLLM and Ollama do, many
        # hosted ones do not): `serves_responses: false` translates it to chat completions.
        self.native = (
            CHAT_FAMILY | _OTHER_JSON | ({"responses"} if config.serves_responses else frozenset())
        )
        # URLs built once: parsing one per request is measurable at thousands of requests/s.
        self._urls = {endpoint: self._url(endpoint) for endpoint in self.native}
        self._session = session
        # Its chunks are the socket's reads, each bounded by sock_read=read_timeout.
        self._limits = Limits.of(config, chunks_are_reads=True)
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.read_timeout
        )
        self._headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            if config.api_key_header.lower() == "authorization":
                self._headers["Authorization"] = f"Bearer {config.api_key}"
            else:
                self._headers[config.api_key_header] = config.api_key

    def _url(self, endpoint: str) -> URL:
        return URL(f"{self._base_url}/{endpoint}").update_query(self._query)

    async def send(
        self,
        endpoint: str,
        body: dict[str, Any],
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        return await self._request(
            "POST", self._urls[endpoint], orjson.dumps(body), self._headers, stream
        )

    async def forward(
        self, method: str, endpoint: str, data: bytes | None, content_type: str | None
    ) -> UpstreamResponse:
        headers = dict(self._headers)
        if content_type:
            headers["Content-Type"] = content_type
        else:
            headers.pop("Content-Type", None)
        return await self._request(method, self._url(endpoint), data, headers, stream=False)

    async def _request(
        self, method: str, url: URL, data: bytes | None, headers: Mapping[str, str], stream: bool
    ) -> UpstreamResponse:
        deadline = self._limits.deadline()
        async with self._limits.until(deadline):
            try:
                response = await self._session.request(
                    method, url, data=data, headers=headers, timeout=self._timeout
                )
            except TimeoutError as exc:
                raise UpstreamTimeout(self.name, "no answer before the timeout") from exc
            except aiohttp.ClientError as exc:
                raise UpstreamError(self.name, f"cannot reach {self._base_url}: {exc}") from exc

            content_type = response.headers.get("Content-Type", "application/json")
            if response.status >= 500:
                detail = await self._read_error(response)
                raise UpstreamError(
                    self.name, f"HTTP {response.status}: {detail}", upstream_status=response.status
                )
            headers = client_headers(response.headers)
            if stream and response.status == 200 and content_type.startswith("text/event-stream"):
                chunks = self._limits.stream(self._relay(response), deadline)
                return UpstreamResponse(200, content_type, chunks=chunks, headers=headers)
            payload = await self._read(response)
        return UpstreamResponse(response.status, content_type, body=payload, headers=headers)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            size = response.content_length
            if (
                size is not None
                and size <= self._limits.max_response_bytes
                and "Content-Encoding" not in response.headers
            ):
                # Its length is known and within the limit, and no decompression can grow it:
                # one read, without the async chunk loop that counts it (issue 20).
                return await response.read()
            return await self._limits.read_body(response.content.iter_any())
        except TimeoutError as exc:
            raise UpstreamTimeout(self.name, "response body timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(self.name, f"response cut off: {exc}") from exc
        finally:
            # A connection with bytes left unread (a body over the limit) is closed, not pooled.
            response.release()

    async def _relay(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for chunk in response.content.iter_any():
                yield chunk
            finished = True
        except TimeoutError as exc:
            raise UpstreamTimeout(self.name, "stream stalled past the read timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(self.name, f"stream cut off: {exc}") from exc
        finally:
            # A stream abandoned half-way (our client went away) leaves unread bytes on the
            # connection: close it rather than return it to the pool.
            if finished:
                response.release()
            else:
                response.close()

    async def _read_error(self, response: aiohttp.ClientResponse) -> str:
        raw = b""
        try:
            async for piece in response.content.iter_any():
                raw += piece
                if len(raw) >= _ERROR_BODY_BYTES:
                    break
        except (aiohttp.ClientError, TimeoutError):
            return "(no body)"
        finally:
            response.release()
        try:
            return str(orjson.loads(raw)["error"]["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return raw[:200].decode(errors="replace") or "(empty body)"

    async def close(self) -> None:
        """The shared session belongs to the app, which closes it."""
