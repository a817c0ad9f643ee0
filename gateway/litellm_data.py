"""Files that litellm ships and Flywheel reads as plain data, without importing litellm."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def litellm_dir() -> Path:
    # find_spec locates the package without executing it (importing costs ~4 s).
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("litellm is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def price_table_path() -> Path:
    return litellm_dir() / "model_prices_and_context_window_backup.json"


def tiktoken_cache_dir() -> Path:
    """tiktoken's cached encodings (cl100k_base, o200k_base...), named as tiktoken expects."""
    return litellm_dir() / "litellm_core_utils" / "tokenizers"
