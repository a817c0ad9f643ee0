"""Dataset formats, one module each, all built from the same selected examples.

A format turns one `Example` into zero or more records (`build`), may add records that need
several examples (`finish`: A/B preference pairs, merged conversations), says what is wrong
with a record (`check`, also used by `flywheel dataset validate`), and chooses how its files
are laid out (`open_writer`). The pipeline in `exporters.run` does everything else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

from exporters.chat import CONVERSATION_ENDPOINTS
from exporters.selection import Example
from exporters.writers import JsonlSplits, Writer

# A record and the group (user, else session) the train/validation split keeps together.
Built = tuple[dict[str, Any], str]

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


class Format:
    name: ClassVar[str]
    # Which endpoints' rows this format reads; () reads every endpoint.
    endpoints: ClassVar[tuple[str, ...]] = CONVERSATION_ENDPOINTS
    # Raw and analytics formats describe all traffic: failures and flagged rows included,
    # nothing deduplicated or split.
    all_traffic: ClassVar[bool] = False

    def __init__(self, options: FormatOptions = FormatOptions()):
        self.options = options

    def build(self, example: Example) -> list[Built]:
        raise NotImplementedError

    def finish(self) -> list[Built]:
        return []

    def check(self, record: dict[str, Any]) -> list[str]:
        """Problems that would make a trainer refuse this record; empty when it is fine."""
        return []

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
