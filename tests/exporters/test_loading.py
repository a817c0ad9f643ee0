"""Every JSONL export loads in `datasets` as a folder and as files, all splits at once, with
the types it declares; and `flywheel dataset validate` passes every file it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from exporters.curate import split_of
from exporters.dataset import validate_file
from exporters.formats import FormatOptions
from exporters.privacy import Privacy
from gateway.config import AnonymizeConfig
from gateway.store.base import Store
from tests.exporters.conftest import Exported, export
from tests.exporters.seed import CASES as BASIC
from tests.exporters.seed import seed
from tests.exporters.training_seed import CASES as TRAINING
from tests.exporters.training_seed import OVERRIDING

JSONL_FORMATS = [
    "openai",
    "openai-preference",
    "dpo",
    "kto",
    "huggingface",
    "bedrock",
    "bedrock-claude",
    "conversations",
    "jsonl",
]


@pytest.fixture
async def traffic(store: Store) -> None:
    await seed(store, {**BASIC, **{f"t_{name}": case for name, case in TRAINING.items()}})


def load_folder(datasets: ModuleType, result: Exported, tmp_path: Path) -> Any:
    return datasets.load_dataset(str(result.out), cache_dir=str(tmp_path / "folder-cache"))


def load_files(datasets: ModuleType, result: Exported, tmp_path: Path) -> Any:
    features = json.loads((result.out / "features.json").read_text())
    files = {
        "validation" if "validation" in name else "train": str(path)
        for name, path in result.data_files.items()
    }
    return datasets.load_dataset(
        "json",
        data_files=files,
        features=datasets.Features.from_dict(features),
        cache_dir=str(tmp_path / "files-cache"),
    )


@pytest.mark.parametrize("fmt", JSONL_FORMATS)
async def test_every_export_loads_as_a_folder_and_as_files(
    store: Store, traffic: None, tmp_path: Path, datasets: ModuleType, fmt: str
) -> None:
    options = FormatOptions(system_prompt_variants=OVERRIDING)
    result = await export(store, tmp_path / "out", fmt, options=options, validation_fraction=0.5)
    written = {name: n["records"] for name, n in _by_name(result).items()}
    assert sum(written.values()) == result.manifest["counts"]["records_written"] > 0

    for loaded in (load_folder(datasets, result, tmp_path), load_files(datasets, result, tmp_path)):
        assert sum(len(split) for split in loaded.values()) == sum(written.values())
        # One schema for every split, whatever each split happens to hold.
        assert len({split.features.to_dict().__repr__() for split in loaded.values()}) == 1
    for path in result.data_files.values():
        report = validate_file(path, fmt)
        assert report.ok, report.summary()


def _by_name(result: Exported) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in result.manifest["files"] if "records" in f}


async def test_dpo_goodness_is_typed_when_splits_differ(
    store: Store, traffic: None, tmp_path: Path, datasets: ModuleType
) -> None:
    """The issue's failure: every correction pair (goodness of the chosen side unknown) in one
    split, an A/B pair (known) in the other."""
    privacy = Privacy(AnonymizeConfig())
    corrected, ab_winner = privacy.pseudonym("u2"), privacy.pseudonym("t_ua") or ""
    ab_winner = privacy.pseudonym("ua")
    assert corrected and ab_winner
    seed_ = next(
        s for s in range(200) if split_of(corrected, s, 0.5) != split_of(ab_winner, s, 0.5)
    )
    options = FormatOptions(system_prompt_variants=OVERRIDING)
    result = await export(
        store, tmp_path / "out", "dpo", options=options, validation_fraction=0.5, seed=seed_
    )
    loaded = load_folder(datasets, result, tmp_path)
    assert set(loaded) == {"train", "validation"}
    goodness = {
        row["metadata"]["source"]: row["metadata"]["chosen_goodness"]
        for split in loaded.values()
        for row in split
    }
    assert goodness["correction"] is None and goodness["ab_test"] == 1.0
    assert loaded["train"].features["metadata"]["chosen_goodness"].dtype == "float64"


async def test_validate_fails_where_a_loader_would(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    good = {
        "prompt": [{"role": "user", "content": "Q?"}],
        "chosen": [{"role": "assistant", "content": "Yes."}],
        "rejected": [{"role": "assistant", "content": "No."}],
        "metadata": {"source": "ab_test", "chosen_goodness": 1.0},
    }
    wrong_type = {**good, "metadata": {"source": "ab_test", "chosen_goodness": "high"}}
    path.write_text("\n".join(json.dumps(r) for r in (good, wrong_type)) + "\n")
    report = validate_file(path, "dpo")
    assert not report.ok
    assert [(p.line, p.kind) for p in report.problems] == [(2, "schema_type")]
