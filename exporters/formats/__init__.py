"""Dataset formats, one module each, all built from the same selected examples.

A format turns one `Example` into zero or more records (`build`), may add records that need
several examples (`finish`: A/B preference pairs, merged conversations), declares the type of
every field (`schema`, see `exporters.schema`), says what else a trainer would refuse in a record
(`check`; `problems` runs both, for the pipeline and for `flywheel dataset validate`), and
chooses how its files are laid out (`open_writer`). The pipeline in `exporters.run` does
everything else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

from exporters.chat import CONVERSATION_ENDPOINTS
from exporters.schema import Schema, fits, type_problems
from exporters.selection import Example
from exporters.writers import JsonlSplits, Writer

# A record and the group (user, else session) the train/validation split keeps together.
Built = tuple[dict[str, Any], str]

# name -> what the trainer gets, for `flywheel export --help`.
DESCRIPTIONS = {
    "openai": "OpenAI chat fine-tuning (messages, tools, weight 0 on thrown-away turns)",
    "openai-preference": "OpenAI preference (DPO) fine-tuning: input, preferred/non-preferred",
    "dpo": "TRL DPOTrainer: prompt, chosen, rejected (+ metadata)",
    "kto": "TRL KTOTrainer: prompt, completion, label (+ metadata)",
    "huggingface": "a datasets folder (data/*.jsonl + card): messages for TRL's SFTTrainer",
    "bedrock": "Amazon Bedrock, Nova (bedrock-conversation-2024)",
    "bedrock-claude": "Amazon Bedrock, Claude 3 Haiku (system, messages)",
    "conversations": "ShareGPT for LLaMA-Factory and axolotl, with dataset_info.json",
    "analytics": "traffic totals: analytics.json and analytics.csv",
    "csv": "raw interactions with their latest feedback, one CSV row each",
    "jsonl": "raw interactions with their latest feedback, one JSON object each",
}
# name -> module under exporters.formats; imported only when asked for.
FORMATS = {
    "openai": "openai",
    "openai-preference": "preference",
    "dpo": "preference",
    "kto": "kto",
    "huggingface": "huggingface",
    "bedrock": "bedrock",
    "bedrock-claude": "bedrock",
    "conversations": "conversations",
    "analytics": "analytics",
    "csv": "raw",
    "jsonl": "raw",
}


@dataclass(frozen=True)
class FormatOptions:
    # Examples longer than this (prompt and answer, in the model's tokens) are dropped as
    # `too_long`; OpenAI's fine-tuning accepts 65,536 for its current models.
    max_tokens: int = 65_536
    # (model, variant) of every A/B arm with a `system_prompt` override, from the config: an
    # arm that replaced the client's system prompt is paired on the other turns only (see
    # `exporters.pairing`). None: not known, every arm is paired on the other turns only.
    system_prompt_variants: frozenset[tuple[str, str]] | None = None
    # The files' format: `jsonl`, or `parquet` where the format offers it (`huggingface`).
    output: str = "jsonl"


class Format:
    name: ClassVar[str]
    # Which endpoints' rows this format reads; () reads every endpoint.
    endpoints: ClassVar[tuple[str, ...]] = CONVERSATION_ENDPOINTS
    # Raw and analytics formats describe all traffic: failures and flagged rows included,
    # nothing deduplicated or split.
    all_traffic: ClassVar[bool] = False
    # Every field's type (`exporters.schema`); None for files that are not JSON lines.
    schema: ClassVar[dict[str, Schema] | None] = None
    # True when the writer writes its own dataset card (`huggingface`).
    own_card: ClassVar[bool] = False
    # True when `build` keeps nothing between examples (no `finish`, no counts for `report`),
    # so a worker process may build (exporters.pool); else the exporting process builds.
    builds_anywhere: ClassVar[bool] = False

    # The file formats it can write (`FormatOptions.output`).
    outputs: ClassVar[tuple[str, ...]] = ("jsonl",)

    def __init__(self, options: FormatOptions = FormatOptions()):
        self.options = options

    def build(self, example: Example) -> list[Built]:
        raise NotImplementedError

    def finish(self) -> list[Built]:
        return []

    def check(self, record: dict[str, Any]) -> list[str]:
        """Problems that would make a trainer refuse this record; empty when it is fine."""
        return []

    def problems(self, record: dict[str, Any]) -> list[str]:
        """The format's checks, then the schema's: a record must fit both to be written."""
        problems = self.check(record)
        if not problems and self.schema is not None and not fits(record, self.schema):
            problems = type_problems(record, self.schema)
        return problems

    def report(self) -> dict[str, Any]:
        """Counts of the format's own for the manifest (the preference formats' pairing)."""
        return {}

    def zero_weighted(self, record: dict[str, Any]) -> int:
        """How many of the record's turns a trainer is told not to learn (`weight: 0`)."""
        return 0

    def zero_weighted_line(self, line: bytes) -> int:
        """`zero_weighted` of the record written as the JSON line `line`: a merge copies
        lines, and reading each back took ~40% of its time."""
        return 0

    def tokens(self, record: dict[str, Any]) -> int | None:
        """The record's size in tokens, for `max_tokens`; None when the format has no limit."""
        return None

    def open_writer(self, out_dir: Any) -> Writer:
        return JsonlSplits(out_dir)


def get_format(name: str, options: FormatOptions = FormatOptions()) -> Format:
    from gateway.errors import ConfigError

    module_name = FORMATS.get(name)
    if module_name is None:
        raise ConfigError(f"unknown export format {name!r} (one of: {', '.join(FORMATS)})")
    module = importlib.import_module(f"exporters.formats.{module_name}")
    cls: type[Format] = module.FORMATS[name]
    return cls(options)
