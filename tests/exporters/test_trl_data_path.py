"""TRL's own data path (`trl.data_utils`) on real exports: every row is conversational and
goes through the chat template with its tools, as the SFT, DPO and KTO trainers apply it.

Optional: TRL is not a dependency (it pulls in torch, too heavy for CI); the test runs where
`trl`, `transformers` and `jinja2` are installed, with a tokenizer built in-process (no
download). CI covers the same files with `datasets` (test_loading.py).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from exporters.formats import FormatOptions
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import CASES as BASIC
from tests.exporters.seed import seed
from tests.exporters.training_seed import CASES as TRAINING
from tests.exporters.training_seed import OVERRIDING

trl_data = pytest.importorskip("trl.data_utils")
pytest.importorskip("jinja2")

# Renders every part of a chat message the exports carry: text or text parts, tool calls,
# the tools offered.
TEMPLATE = (
    "{% if tools %}TOOLS {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}<{{ m['role'] }}>"
    "{% if m['content'] is string %}{{ m['content'] }}{% elif m['content'] %}"
    "{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% endif %}"
    "{% for c in m['tool_calls'] or [] %}CALL {{ c['function']['name'] }}{% endfor %}\n"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    built = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]")
    built.chat_template = TEMPLATE
    return built


@pytest.mark.parametrize("fmt", ["openai", "huggingface", "dpo", "kto"])
async def test_trl_reads_every_row(
    store: Store, tmp_path: Path, datasets: ModuleType, fmt: str
) -> None:
    await seed(store, {**BASIC, **{f"t_{name}": case for name, case in TRAINING.items()}})
    options = FormatOptions(system_prompt_variants=OVERRIDING)
    result = await export(store, tmp_path / "out", fmt, options=options)
    loaded = datasets.load_dataset(str(result.out), cache_dir=str(tmp_path / "cache"))
    template = tokenizer()
    rows = [row for split in loaded.values() for row in split]
    assert rows
    for row in rows:
        assert trl_data.is_conversational(row)
        applied = trl_data.maybe_apply_chat_template(row, template, tools=row.get("tools"))
        assert all(isinstance(v, str) and v for k, v in applied.items() if k != "label")
