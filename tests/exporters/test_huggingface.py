"""The Hugging Face export, from a seeded store, read back with `datasets.load_dataset` offline."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from exporters.formats.huggingface import check_record
from gateway.store.base import Store
from tests.exporters.conftest import Exported, export
from tests.exporters.seed import SYSTEM

CORRECTION = "Neck pain for 2 weeks after a car accident."


def expected_features(datasets: ModuleType) -> Any:
    """What the records are, written out independently of the card the exporter writes."""
    string = datasets.Value("string")
    return datasets.Features(
        {
            "messages": datasets.List({"role": string, "content": string}),
            "metadata": {
                "interaction_id": string,
                "model": string,
                "variant": string,
                "outcome": string,
                "rating": datasets.Value("int64"),
                "thumbs": string,
                "correction_type": string,
            },
        }
    )


def load(datasets: ModuleType, result: Exported, tmp_path: Path) -> Any:
    return datasets.load_dataset(str(result.out), cache_dir=str(tmp_path / "load-cache"))


def front_matter(card: Path) -> dict[str, Any]:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    matter, _ = text[4:].split("\n---\n", 1)
    parsed: dict[str, Any] = yaml.safe_load(matter)
    return parsed


async def test_load_dataset_reads_both_splits_as_written(
    store: Store, seeded: dict[str, str], tmp_path: Path, datasets: ModuleType
) -> None:
    result = await export(
        store, tmp_path / "dataset", "huggingface", validation_fraction=0.5, seed=3
    )
    counts = result.manifest["counts"]
    assert sorted(result.files) == [
        "README.md",
        "data/train.jsonl",
        "data/validation.jsonl",
        "features.json",
    ]
    assert all(check_record(r) == [] for r in result.all_records)

    loaded = load(datasets, result, tmp_path)
    assert set(loaded) == {"train", "validation"}
    for split in ("train", "validation"):
        assert counts[split] > 0
        assert loaded[split].num_rows == counts[split]
        assert loaded[split].column_names == ["messages", "metadata"]
        assert loaded[split].features == expected_features(datasets)
        assert loaded[split].to_list() == result.records(f"data/{split}.jsonl")

    rows = {r["metadata"]["interaction_id"]: r for s in loaded.values() for r in s.to_list()}
    modified = rows[seeded["modified"]]
    assert modified["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Write the subjective."},
        {"role": "assistant", "content": CORRECTION},  # the correction, not the answer
    ]
    assert modified["metadata"] == {
        "interaction_id": seeded["modified"],
        "model": "support",
        "variant": None,
        "outcome": "modified",
        "rating": None,
        "thumbs": "down",
        "correction_type": "major_edit",
    }
    assert rows[seeded["ab_candidate"]]["metadata"]["variant"] == "b"
    assert rows[seeded["ab_candidate"]]["metadata"]["rating"] == 5
    assert seeded["tool_call"] not in rows
    assert counts["dropped_by_reason"]["invalid"] == {
        "rejected_without_correction": 2,
        "tool_calls_unsupported": 1,
    }
    assert counts["records_written"] == 7  # the OpenAI export's 8, less the tool call


async def test_card_front_matter_declares_the_splits(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(
        store, tmp_path / "dataset", "huggingface", validation_fraction=0.5, seed=3
    )
    counts = result.manifest["counts"]
    card = result.files["README.md"]
    meta = front_matter(card)
    (config,) = meta["configs"]
    assert config["config_name"] == "default"
    assert config["data_files"] == [
        {"split": "train", "path": "data/train.jsonl"},
        {"split": "validation", "path": "data/validation.jsonl"},
    ]
    splits = {s["name"]: s for s in meta["dataset_info"]["splits"]}
    assert {name: s["num_examples"] for name, s in splits.items()} == {
        "train": counts["train"],
        "validation": counts["validation"],
    }
    assert splits["train"]["num_bytes"] == result.files["data/train.jsonl"].stat().st_size
    features = meta["dataset_info"]["features"]
    assert [f["name"] for f in features] == ["messages", "metadata"]
    assert [f["name"] for f in features[1]["struct"]] == list(result.all_records[0]["metadata"])

    body = card.read_text(encoding="utf-8").split("\n---\n", 1)[1]
    assert f"| train | {counts['train']} |" in body
    assert f"| validation | {counts['validation']} |" in body
    assert "`huggingface` format" in body
    assert "manifest.json" in body


async def test_schema_holds_when_a_split_has_only_nulls_in_a_column(
    store: Store, seeded: dict[str, str], tmp_path: Path, datasets: ModuleType
) -> None:
    # One row, without variant, outcome, rating or correction type: inferred from the data
    # alone those columns would be of type null; the card's features keep them typed.
    result = await export(store, tmp_path / "dataset", "huggingface", models=("other",))
    assert sorted(result.files) == ["README.md", "data/train.jsonl", "features.json"]
    assert [
        s["split"] for s in front_matter(result.out / "README.md")["configs"][0]["data_files"]
    ] == ["train"]
    loaded = load(datasets, result, tmp_path)
    assert set(loaded) == {"train"}
    assert loaded["train"].features == expected_features(datasets)
    assert loaded["train"][0]["metadata"]["variant"] is None
    assert loaded["train"][0]["messages"][-1]["content"] == "Other answer."


async def test_an_empty_export_still_has_a_card(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    result = await export(store, tmp_path / "dataset", "huggingface", models=("nobody",))
    assert sorted(result.files) == ["README.md", "features.json"]
    meta = front_matter(result.out / "README.md")
    assert "configs" not in meta
    assert meta["dataset_info"]["splits"] == []


def test_huggingface_checks_name_each_problem() -> None:
    metadata = {
        "interaction_id": "x",
        "model": None,
        "variant": None,
        "outcome": None,
        "rating": "5",
        "thumbs": None,
        "correction_type": None,
    }
    problems = check_record(
        {
            "messages": [
                {"role": "tool", "content": "x"},
                {"role": "user", "content": " "},
                {"role": "user", "content": "x", "name": "n"},
            ],
            "metadata": metadata,
            "extra": 1,
        }
    )
    assert [p.split(":")[0] for p in problems] == [
        "unrecognized_keys",
        "unrecognized_role",
        "missing_content",
        "message_format",
        "example_missing_assistant_message",
        "metadata_type",
    ]
    good = {"messages": [{"role": "assistant", "content": "x"}], "metadata": {**metadata}}
    good["metadata"]["rating"] = 5
    assert check_record(good) == []
    assert check_record({**good, "metadata": {"interaction_id": "x"}})[0].startswith(
        "metadata_format"
    )
