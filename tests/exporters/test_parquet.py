"""`--output-format parquet`: the Hugging Face export as Parquet splits that `datasets` loads
offline, holding exactly the JSONL export's records; a clear error where Parquet cannot be
written (another format, a shard, pyarrow missing), raised before any file is written."""

from __future__ import annotations

import builtins
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from exporters import parquet
from exporters.formats import FormatOptions
from exporters.run import ExportRequest, run_export
from exporters.selection import Filters
from exporters.shards import Shard
from gateway.config import AnonymizeConfig
from gateway.errors import ConfigError
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.test_huggingface import expected_features, front_matter

PARQUET = FormatOptions(output="parquet")


async def test_parquet_splits_load_as_the_jsonl_export_reads(
    store: Store,
    seeded: dict[str, str],
    tmp_path: Path,
    datasets: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP", 2)  # several row groups per file
    split = {"validation_fraction": 0.5, "seed": 3}
    jsonl = await export(store, tmp_path / "jsonl", "huggingface", **split)
    result = await export(store, tmp_path / "parquet", "huggingface", options=PARQUET, **split)
    assert sorted(result.files) == [
        "README.md",
        "data/train.parquet",
        "data/validation.parquet",
        "features.json",
    ]
    counts = result.manifest["counts"]
    assert counts == jsonl.manifest["counts"]
    assert result.manifest["options"]["output"] == "parquet"
    card = front_matter(result.out / "README.md")
    assert card["configs"][0]["data_files"] == [
        {"split": "train", "path": "data/train.parquet"},
        {"split": "validation", "path": "data/validation.parquet"},
    ]
    loaded = datasets.load_dataset(str(result.out), cache_dir=str(tmp_path / "cache"))
    for name in ("train", "validation"):
        assert loaded[name].num_rows == counts[name] > 0
        assert loaded[name].features == expected_features(datasets)
        assert loaded[name].to_list() == jsonl.records(f"data/{name}.jsonl")
    described = {f["name"]: f for f in result.manifest["files"]}
    assert described["data/train.parquet"]["records"] == counts["train"]


@pytest.mark.parametrize(
    ("fmt", "shard", "message"),
    [
        ("openai", None, "the openai format writes jsonl, not parquet"),
        ("huggingface", "0/2", "--shard writes JSON lines"),
    ],
)
async def test_parquet_where_it_cannot_be_written_is_refused_before_writing(
    store: Store, tmp_path: Path, fmt: str, shard: str | None, message: str
) -> None:
    request = ExportRequest(fmt, Filters(), PARQUET, shard=Shard.parse(shard) if shard else None)
    with pytest.raises(ConfigError, match=message):
        await run_export(store, AnonymizeConfig(), request, tmp_path / "out")
    assert not (tmp_path / "out").exists()


async def test_without_pyarrow_parquet_says_what_to_install(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "pyarrow":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    request = ExportRequest("huggingface", Filters(), PARQUET)
    with pytest.raises(ConfigError, match=r"pip install 'flywheel-gateway\[parquet\]'"):
        await run_export(store, AnonymizeConfig(), request, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_gateway_and_a_jsonl_export_never_import_pyarrow() -> None:
    # pyarrow is an extra: importing the exporters must not need it.
    code = (
        "import sys, exporters.run, exporters.formats.huggingface, gateway.cli; "
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
