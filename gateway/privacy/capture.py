"""Redaction at capture (`capture.redact`): the recorder stores, and spools, anonymized rows.

The recorder's writer task hands each batch, after it leaves the queue and before it is written
or spooled, to `CaptureRedactor.batch_elsewhere`: a process of its own (one per worker, started
with the first batch), because the regexes hold the GIL for milliseconds a row, and on a thread
the requests the worker is serving meanwhile would wait for them (measured: p99 33 -> 152 ms).
So raw personal data never touches disk, and the request path pays nothing: the client already
has its real answer. Paths that must write at once (a full queue, shutdown) call `batch` here.
One pseudonym table per interaction keeps `[PERSON_1]` the same person in prompt and answer.

What is redacted: every string in the request and response bodies (not the `model`, the
response `id`, the OpenAI `user` field, which is the id a forget looks for, nor fixed-vocabulary
fields such as `role` and `type`), the error message, and tag values. Ids (`user`, `session`)
stay as sent: forgetting a person needs them. A redacted row carries the quality flag
`pii_redacted_at_capture`, which also makes redaction idempotent: a row is never redacted twice
(a spooled row replayed, say).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import multiprocessing
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from gateway.anonymize import Anonymizer
from gateway.config import AnonymizeConfig, CaptureRedactConfig
from gateway.records.interaction import Interaction

log = logging.getLogger(__name__)
REDACTED_FLAG = "pii_redacted_at_capture"
_REQUEST_KEPT = ("model", "user")
_RESPONSE_KEPT = ("id", "model", "object", "system_fingerprint")
# Keys whose values, at any depth of an OpenAI or Anthropic body, come from a fixed vocabulary
# ("user", "tool_calls", "function"...): never personal, and half the strings of a chat body.
_VOCABULARY_KEYS = frozenset({"role", "type", "finish_reason", "stop_reason", "object"})


class CaptureRedactor:
    def __init__(
        self,
        policy: CaptureRedactConfig,
        anonymizer: Anonymizer,
        anonymize: AnonymizeConfig | None = None,
    ):
        """With `anonymize` (the config `anonymizer` was built from), `batch_elsewhere` runs
        in a process of its own; without it, on a thread."""
        self.policy = policy
        self.anonymizer = anonymizer
        self._models = frozenset(policy.models)
        self._tags = tuple(policy.tags.items())
        self._config = None if anonymize is None else pickle.dumps((policy, anonymize))
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_config(
        cls, policy: CaptureRedactConfig, anonymize: AnonymizeConfig
    ) -> CaptureRedactor | None:
        """None when `capture.redact` selects no row: the recorder then skips this entirely."""
        if not policy.enabled:
            return None
        return cls(policy, Anonymizer.from_config(anonymize), anonymize)

    def wants(self, row: Interaction) -> bool:
        if REDACTED_FLAG in row.quality_flags:
            return False
        if self.policy.all or row.requested_model in self._models:
            return True
        return any(row.tags.get(key) == value for key, value in self._tags)

    def batch(self, rows: Sequence[Interaction]) -> list[Interaction]:
        """The rows, those the policy selects replaced by redacted copies. Blocking (CPU)."""
        return [self.redact(row) if self.wants(row) else row for row in rows]

    async def batch_elsewhere(self, rows: Sequence[Interaction]) -> list[Interaction]:
        """`batch`, off the event loop and out of its GIL (see the module's docstring)."""
        if not any(self.wants(row) for row in rows):
            return list(rows)
        if self._config is None:
            return await asyncio.to_thread(self.batch, rows)
        if self._pool is None:
            # spawn: forking a process that runs threads (SQLite's, the loop's) is unsafe.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, _batch_in_child, self._config, rows)
        except BrokenProcessPool:
            log.exception("capture redaction: its process died; redacting on a thread")
            self._pool = None  # a new one for the next batch
            return await asyncio.to_thread(self.batch, rows)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def redact(self, row: Interaction) -> Interaction:
        """A redacted copy; `row` itself is left alone (a cancelled writer may still hold it,
        and spools it redacted through this same function)."""
        people: dict[str, int] = {}

        def text(value: str) -> str:
            return self.anonymizer.redact(value, people).text if value else value

        return dataclasses.replace(
            row,
            request=_walk(row.request, text, _REQUEST_KEPT),
            response=_walk(row.response, text, _RESPONSE_KEPT),
            error_message=None if row.error_message is None else text(row.error_message),
            tags={key: text(value) for key, value in row.tags.items()},
            quality_flags=[*row.quality_flags, REDACTED_FLAG],
        )


def _walk(value: Any, text: Callable[[str], str], kept: tuple[str, ...] = ()) -> Any:
    """A copy with every string redacted; `kept` keys are kept at the top level only."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, list):
        return [_walk(item, text) for item in value]
    if isinstance(value, dict):
        return {
            k: v if k in kept or (k in _VOCABULARY_KEYS and isinstance(v, str)) else _walk(v, text)
            for k, v in value.items()
        }
    return value


@functools.lru_cache(maxsize=4)
def _child_redactor(config: bytes) -> CaptureRedactor:
    """In the redaction process: the redactor, built once from the pickled config."""
    policy, anonymize = pickle.loads(config)  # our own bytes, from `CaptureRedactor`
    return CaptureRedactor(policy, Anonymizer.from_config(anonymize))


def _batch_in_child(config: bytes, rows: Sequence[Interaction]) -> list[Interaction]:
    return _child_redactor(config).batch(rows)
