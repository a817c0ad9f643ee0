"""A Hugging Face dataset folder: `data/{train,validation}.jsonl` (or `.parquet`, with
`--output-format parquet`) and a `README.md` card.

`datasets.load_dataset(folder)` reads the folder as it is, offline: the card's YAML names each
split's file and declares the features. Declaring them matters: the JSON loader infers each
split's schema on its own, so a column that is all nulls in one split (no A/B variant among
the validation rows, say) would come out as type `null` there and the splits would disagree.

A record is `{"messages": [{"role", "content"}], "metadata": {...}}`, the conversational layout
chat templates and TRL's SFTTrainer take: roles are `system`, `user` and `assistant` (OpenAI's
`developer` becomes `system`, which is what chat templates know), content is plain text, and
`metadata` has the same fields in every row, null when unknown. Examples with a tool turn are
dropped as `tool_calls_unsupported` rather than serialized: chat templates disagree on how a
call is written as text, and a call flattened into `content` teaches the model to type JSON
where it should call a tool. Use the `openai` format to train tool use. SFTTrainer learns every
assistant turn of `messages`, so an example whose history holds an answer the user threw away
(`exporters.history`) is left out as `rejected_turn_in_history`: a record cannot mask one turn.

The card gives the counts per split, the features and when the export ran; the filters and why
each row was dropped are in `manifest.json`, which the pipeline writes next to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporters.card import front_matter
from exporters.chat import Unusable, prompt_messages, target_message, text_of
from exporters.formats import Built, Format
from exporters.parquet import ParquetSplits
from exporters.schema import TEXT_MESSAGE
from exporters.selection import Example
from exporters.writers import JsonlSplits, Writer
from gateway import __version__
from gateway.tokens import count_text

DATA_FOLDER = "data"
CARD = "README.md"
# OpenAI role -> the role in the dataset.
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# The metadata of every row, in order, with its `datasets` dtype: the card declares exactly
# these, so adding a field here is all it takes to keep the records and the card in step.
METADATA: dict[str, str] = {
    "interaction_id": "string",
    "model": "string",  # the model the client asked for
    "variant": "string",  # the A/B arm that answered
    "outcome": "string",
    "rating": "int64",
    "thumbs": "string",
    "correction_type": "string",
}
_PYTHON_TYPES: dict[str, type] = {"string": str, "int64": int}


class HuggingFace(Format):
    builds_anywhere = True
    name = "huggingface"
    outputs = ("jsonl", "parquet")
    schema = {"messages": [TEXT_MESSAGE], "metadata": METADATA}
    own_card = True

    def build(self, example: Example) -> list[Built]:
        if example.rejected_turns:
            # SFTTrainer learns every assistant turn of `messages`: none may be one the user
            # threw away, and a record has no way to mask one.
            raise Unusable("rejected_turn_in_history")
        messages = [_message(m) for m in [*prompt_messages(example), target_message(example)]]
        return [({"messages": messages, "metadata": _metadata(example)}, example.group)]

    def check(self, record: dict[str, Any]) -> list[str]:
        return check_record(record)

    def tokens(self, record: dict[str, Any]) -> int:
        return count_text("\n".join(m["content"] for m in record["messages"]))

    def open_writer(self, out_dir: Any) -> Writer:
        return DatasetFolder(Path(out_dir), self.name, self.options.output)


def _message(message: dict[str, Any]) -> dict[str, str]:
    if message["role"] == "tool" or message.get("tool_calls"):
        raise Unusable("tool_calls_unsupported")
    content = message.get("content")
    if isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") not in ("text", "input_text", None)
        for part in content
    ):
        # An image or audio part cannot be kept as text, and the answer was about it.
        raise Unusable("non_text_content")
    return {"role": _ROLES[message["role"]], "content": text_of(content)}


def _metadata(example: Example) -> dict[str, Any]:
    record, feedback = example.record, example.feedback
    rating = feedback.get("rating")
    values = {
        "interaction_id": example.id,
        "model": record.get("requested_model"),
        "variant": record.get("variant"),
        "outcome": feedback.get("outcome"),
        "rating": rating if isinstance(rating, int) and not isinstance(rating, bool) else None,
        "thumbs": feedback.get("thumbs"),
        "correction_type": feedback.get("correction_type"),
    }
    return {name: values[name] for name in METADATA}


def check_record(record: Any) -> list[str]:
    """What would make `load_dataset` or a chat template refuse this record; each problem
    starts with its kind."""
    if not isinstance(record, dict):
        return ["data_type: a line must be a JSON object"]
    problems = []
    if set(record) != {"messages", "metadata"}:
        problems.append(f"unrecognized_keys: {sorted(record)} is not messages and metadata")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "missing_messages_list: `messages` must be a non-empty list"]
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            problems.append(f"message_format: messages[{i}] must be exactly role and content")
            continue
        if message["role"] not in ("system", "user", "assistant"):
            problems.append(f"unrecognized_role: messages[{i}] has role {message['role']!r}")
        if not isinstance(message["content"], str) or not message["content"].strip():
            problems.append(f"missing_content: messages[{i}] has no text")
    if not isinstance(messages[-1], dict) or messages[-1].get("role") != "assistant":
        problems.append("example_missing_assistant_message: the last turn must be the assistant's")
    problems.extend(_metadata_problems(record.get("metadata")))
    return problems


def _metadata_problems(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict) or list(metadata) != list(METADATA):
        return [f"metadata_format: metadata must have exactly {list(METADATA)}, in that order"]
    return [
        f"metadata_type: metadata.{name} must be {dtype} or null"
        for name, dtype in METADATA.items()
        if metadata[name] is not None
        and (
            not isinstance(metadata[name], _PYTHON_TYPES[dtype]) or isinstance(metadata[name], bool)
        )
    ]


class DatasetFolder(Writer):
    """The JSONL splits under `data/`, then, once the counts are known, the card that
    describes them."""

    def __init__(self, out_dir: Path, format_name: str, output: str = "jsonl"):
        self.out_dir = out_dir
        self.format_name = format_name
        self.created_at = datetime.now(UTC)
        self._splits: JsonlSplits | ParquetSplits = (
            ParquetSplits(out_dir, HuggingFace.schema, folder=DATA_FOLDER)
            if output == "parquet"
            else JsonlSplits(out_dir, folder=DATA_FOLDER)
        )

    @property
    def counts(self) -> dict[str, int]:
        # The pipeline's manifest reads the counts from the writer.
        return self._splits.counts

    @property
    def takes_lines(self) -> bool:  # type: ignore[override]
        return self._splits.takes_lines

    def write(self, split: str, record: dict[str, Any]) -> None:
        self._splits.write(split, record)

    def write_line(self, split: str, line: bytes) -> None:
        self._splits.write_line(split, line)

    def split_files(self) -> dict[str, tuple[Path, int]]:
        return self._splits.split_files()

    def close(self) -> list[Path]:
        files = self._splits.close()
        card = self.out_dir / CARD
        card.write_text(self.card(), encoding="utf-8")
        return [*files, card]

    def card(self) -> str:
        files = self.split_files()
        front = front_matter(
            self.out_dir, HuggingFace.schema, files, ["flywheel", "conversational", "sft"]
        )
        return f"{front}\n{self._body(list(files))}"

    def _body(self, splits: list[str]) -> str:
        rows = "\n".join(f"| {split} | {self.counts[split]} |" for split in splits)
        fields = "\n".join(f"  - `{name}` ({dtype}, or null)" for name, dtype in METADATA.items())
        return f"""# Flywheel export

Conversations recorded by the Flywheel LLM gateway (version {__version__}), exported in its
`{self.format_name}` format on {self.created_at.isoformat(timespec="seconds")}. The last assistant
turn of each conversation is what to train on: the user's correction when there was one, else the
model's answer when it was not rejected.

| split | examples |
|---|---|
{rows}

Train and validation are split by user (else session), so no user is on both sides.

## Fields
- `messages`: the conversation, a list of `{{role, content}}` with role `system`, `user` or
  `assistant` and plain-text content.
- `metadata`: where each example came from, the same fields in every row:
{fields}

## Provenance
Which interactions were selected (the filters), how many were dropped and why, and the SHA-256 of
every file are in `manifest.json`, next to this card. Personal data was redacted by the
gateway's anonymization rules before export; the manifest counts the redactions.

## Loading
```python
from datasets import load_dataset

dataset = load_dataset("path/to/this/folder")
```
"""


FORMATS = {"huggingface": HuggingFace}
