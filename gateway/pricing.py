"""Cost in USD from litellm's price table (read as data), with `pricing` overrides from config.

An unknown model costs `None`, not 0: a zero would silently understate every cost report. Each
unknown model is warned about once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.config import Price
from gateway.litellm_data import price_table_path

log = logging.getLogger(__name__)
_PER_MILLION = 1_000_000


@dataclass(frozen=True)
class TokenPrice:
    """USD per token."""

    input: float
    output: float
    cached_input: float


class PriceTable:
    def __init__(self, table: Mapping[str, Any], overrides: Mapping[str, Price]):
        # Only the three prices of each priced model are kept: litellm's whole table (context
        # windows, modes, feature flags of ~2,500 models) held 5.8 MB in every worker.
        self._table = {
            name: _token_price(entry)
            for name, entry in table.items()
            if isinstance(entry, Mapping) and "input_cost_per_token" in entry
        }
        self.replace_overrides(overrides)

    def replace_overrides(self, overrides: Mapping[str, Price]) -> None:
        """New `pricing` from a reloaded config; lookups are resolved again from scratch."""
        self._resolved: dict[str, TokenPrice | None] = {}
        self._overrides = {
            model: TokenPrice(
                p.input_per_million / _PER_MILLION,
                p.output_per_million / _PER_MILLION,
                (
                    p.cached_input_per_million
                    if p.cached_input_per_million is not None
                    else p.input_per_million
                )
                / _PER_MILLION,
            )
            for model, p in overrides.items()
        }

    @classmethod
    def load(cls, overrides: Mapping[str, Price], path: Path | None = None) -> PriceTable:
        table = orjson.loads((path or price_table_path()).read_bytes())
        table.pop("sample_spec", None)  # the table's documentation of itself, not a model
        return cls(table, overrides)

    def price(self, model: str | None, provider_hint: str | None = None) -> TokenPrice | None:
        if not model:
            return None
        key = f"{provider_hint}/{model}" if provider_hint else model
        if key not in self._resolved:
            self._resolved[key] = self._lookup(model, provider_hint)
            if self._resolved[key] is None:
                log.warning("no price known for model %r: its cost is recorded as null", model)
        return self._resolved[key]

    def _lookup(self, model: str, provider_hint: str | None) -> TokenPrice | None:
        if model in self._overrides:
            return self._overrides[model]
        candidates = [model, model.rsplit("/", 1)[-1]]
        if provider_hint:
            candidates.insert(0, f"{provider_hint}/{model}")
        for name in candidates:
            if name in self._table:
                return self._table[name]
        return None

    def cost(
        self,
        model: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        cached_tokens: int | None = None,
        provider_hint: str | None = None,
    ) -> float | None:
        price = self.price(model, provider_hint)
        if price is None or prompt_tokens is None:
            return None
        cached = min(cached_tokens or 0, prompt_tokens)
        return (
            (prompt_tokens - cached) * price.input
            + cached * price.cached_input
            + (completion_tokens or 0) * price.output
        )


def _token_price(entry: Mapping[str, Any]) -> TokenPrice:
    input_cost = float(entry["input_cost_per_token"])
    return TokenPrice(
        input_cost,
        float(entry.get("output_cost_per_token") or 0.0),
        float(entry.get("cache_read_input_token_cost") or input_cost),
    )
