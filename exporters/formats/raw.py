"""Raw interactions with their latest feedback, one flat row each, for pandas and spreadsheets.

`jsonl` writes `interactions.jsonl`, `csv` writes `interactions.csv`; both carry exactly the
columns of `COLUMNS`, in that order, on every row. Values are the prompt (the last user message)
and the answer as text, quality flags joined with commas, the latest value of each feedback
field, and the whole request, response and tags: JSON objects in `jsonl` (typed `json` in its
declared schema, so `datasets` and `pd.read_json(lines=True)` get objects, not text to decode
again), JSON text in the CSV, where a cell holds text. Every other `jsonl` value is of its
column's declared type (a timestamp is ISO 8601 text). A CSV cell whose text would start a
spreadsheet formula (`=`, `+`, `-`, `@`...) begins with a `'` (`spreadsheet_safe`). Rows stream
straight to the file.

Never written: the API key's name (the privacy step drops it, and no column asks for it) and the
feedback events themselves (only how many there were).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

import orjson

from exporters.chat import text_of
from exporters.formats import Built, Format
from exporters.selection import Example
from exporters.writers import Writer, spreadsheet_safe
from gateway.apis.chat_view import chat_request, chat_response

# The interaction's own columns, as stored.
INTERACTION_COLUMNS = (
    "id",
    "created_at",
    "endpoint",
    "requested_model",
    "variant",
    "fallback_from",
    "provider",
    "upstream_model",
    "user",
    "session",
    "stream",
    "status",
    "http_status",
    "error_type",
    "error_message",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "response_id",
)
FEEDBACK_FIELDS = (
    "rating",
    "thumbs",
    "score",
    "outcome",
    "correction",
    "correction_type",
    "comment",
)
COLUMNS = (
    *INTERACTION_COLUMNS,
    "tags",
    "quality_flags",
    "prompt",
    "answer",
    "request",
    "response",
    *(f"feedback_{name}" for name in FEEDBACK_FIELDS),
    "feedback_events",
)


# The type of every column of `jsonl` (`exporters.schema`).
COLUMN_TYPES: dict[str, str] = {
    **dict.fromkeys(COLUMNS, "string"),
    **dict.fromkeys(("stream", "usage_estimated"), "bool"),
    **dict.fromkeys(
        (
            "http_status",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "feedback_rating",
            "feedback_events",
        ),
        "int64",
    ),
    **dict.fromkeys(("cost_usd", "latency_ms", "ttft_ms", "feedback_score"), "float64"),
    **dict.fromkeys(("tags", "request", "response"), "json"),
}
_CASTS: dict[str, Any] = {"bool": bool, "int64": int, "float64": float}


class _Raw(Format):
    builds_anywhere = True
    endpoints = ()
    all_traffic = True

    def build(self, example: Example) -> list[Built]:
        return [(flat_row(example), example.group)]

    def check(self, record: dict[str, Any]) -> list[str]:
        if tuple(record) != COLUMNS:
            return [f"columns: expected {len(COLUMNS)} fixed columns, got {list(record)}"]
        return []


class RawJsonl(_Raw):
    name = "jsonl"
    schema = COLUMN_TYPES

    def build(self, example: Example) -> list[Built]:
        return [(typed_row(example), example.group)]

    def open_writer(self, out_dir: Any) -> Writer:
        return JsonLines(Path(out_dir) / "interactions.jsonl")


class RawCsv(_Raw):
    name = "csv"

    def open_writer(self, out_dir: Any) -> Writer:
        return CsvRows(Path(out_dir) / "interactions.csv")


def flat_row(example: Example) -> dict[str, Any]:
    """One interaction as `COLUMNS`: scalars only."""
    record, feedback = example.record, example.feedback
    row = {name: record.get(name) for name in INTERACTION_COLUMNS}
    row["tags"] = _json(record.get("tags") or {})
    row["quality_flags"] = ",".join(record.get("quality_flags") or ())
    # Read as chat whichever API the interaction came in on (Responses, Messages).
    row["prompt"] = prompt_text(chat_request(str(record.get("endpoint")), record.get("request"))[1])
    row["answer"] = answer_text(chat_response(record.get("response")))
    row["request"] = _json(record.get("request"))
    row["response"] = _json(record.get("response"))
    for name in FEEDBACK_FIELDS:
        row[f"feedback_{name}"] = feedback.get(name)
    row["feedback_events"] = len(record.get("feedback") or ())
    return row


def typed_row(example: Example) -> dict[str, Any]:
    """One interaction as `COLUMNS`, each value of its column's type, bodies as objects."""
    row = flat_row(example)
    record = example.record
    row["tags"] = record.get("tags") or {}
    row["request"] = record.get("request")
    row["response"] = record.get("response")
    for name, dtype in COLUMN_TYPES.items():
        value = row[name]
        if value is None or dtype == "json":
            continue
        if dtype == "string" and not isinstance(value, str):
            row[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        elif dtype in _CASTS and not isinstance(value, _CASTS[dtype]):
            row[name] = _CASTS[dtype](value)
    return row


def prompt_text(request: Any) -> str | None:
    """What was asked: the last user message of a chat, else the prompt or embedding input."""
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        return text_of(users[-1].get("content")) if users else ""
    raw = request.get("prompt", request.get("input"))
    items = raw if isinstance(raw, list) else [raw]
    return "\n".join(item for item in items if isinstance(item, str))


def answer_text(response: Any) -> str | None:
    """The first choice's text (chat or completion); None when there was no answer."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if "text" in choice:
        return str(choice.get("text") or "")
    message = choice.get("message")
    return text_of(message.get("content")) if isinstance(message, dict) else None


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class JsonLines(Writer):
    """One file of JSON lines, each record written as it comes; the file exists even when no
    row matched, so a notebook reading it does not need a special case."""

    def __init__(self, path: Path):
        self.path = path
        self.counts: dict[str, int] = {}
        self._file: IO[bytes] | None = None

    def write(self, split: str, record: dict[str, Any]) -> None:
        self._open().write(orjson.dumps(record) + b"\n")
        self.counts[split] = self.counts.get(split, 0) + 1

    def split_files(self) -> dict[str, tuple[Path, int]]:
        # One file of every row: to `datasets`, a train split.
        return {"train": (Path(self.path.name), self.counts.get("all", 0))}

    def close(self) -> list[Path]:
        self._open().close()
        return [self.path]

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        return self._file


class CsvRows(Writer):
    """One CSV file with a header row of `COLUMNS` (written even when no row matched); None
    becomes an empty cell."""

    def __init__(self, path: Path):
        self.path = path
        self.counts: dict[str, int] = {}
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None

    def write(self, split: str, record: dict[str, Any]) -> None:
        self._open().writerow({name: spreadsheet_safe(value) for name, value in record.items()})
        self.counts[split] = self.counts.get(split, 0) + 1

    def split_files(self) -> dict[str, tuple[Path, int]]:
        return {"train": (Path(self.path.name), self.counts.get("all", 0))}

    def close(self) -> list[Path]:
        self._open()
        if self._file is not None:
            self._file.close()
        return [self.path]

    def _open(self) -> csv.DictWriter[str]:
        if self._writer is None:
            # newline="": the csv module writes its own \r\n and quotes newlines inside cells.
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
            self._writer.writeheader()
        return self._writer


FORMATS = {"jsonl": RawJsonl, "csv": RawCsv}
