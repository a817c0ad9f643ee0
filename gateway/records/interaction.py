"""One recorded request: what was asked, what came back, what it cost. The unit of capture."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

# Outcomes of a request, as stored in `interactions.status`.
SUCCESS = "success"
ERROR = "error"
CLIENT_DISCONNECTED = "client_disconnected"


@dataclass(slots=True)
class Interaction:
    id: str
    created_at: datetime
    endpoint: str
    requested_model: str | None = None
    variant: str | None = None
    # The A/B arm that failed when `variant` answered as the model's fallback.
    fallback_from: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    user: str | None = None
    session: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    api_key_name: str | None = None
    # The body as sent upstream (metadata stripped, never a key) and the body that came
    # back; for a stream, the message assembled from its chunks.
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    response_id: str | None = None
    stream: bool = False
    status: str = SUCCESS
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    usage_estimated: bool = False
    cost_usd: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    quality_flags: list[str] = field(default_factory=list)

    def as_row(self) -> tuple[Any, ...]:
        """Values in `COLUMNS` order, for the stores' batched inserts."""
        # Not dataclasses.astuple: it deep-copies every request and response body.
        return _row_values(self)  # type: ignore[no-any-return]


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Interaction))
# One C call for the whole row (a generator of getattr took ~6x as long, on the event loop).
_row_values = attrgetter(*COLUMNS)
# Columns holding structured values: JSONB in PostgreSQL, JSON text in SQLite.
JSON_COLUMNS = frozenset({"tags", "request", "response", "quality_flags"})
