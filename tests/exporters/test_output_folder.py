"""An export never mixes runs: a used folder is refused, or replaced whole when asked."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from exporters.run import ExportRequest, Progress, run_export
from exporters.selection import Filters
from gateway.config import AnonymizeConfig
from gateway.errors import ConfigError
from gateway.store.base import Store
from tests.exporters.conftest import export


def on_disk(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


async def replace(store: Store, out: Path, **filters: object) -> dict:
    request = ExportRequest("openai", Filters(**filters))  # type: ignore[arg-type]
    return await run_export(store, AnonymizeConfig(), request, out, replace=True)


async def test_a_folder_holding_an_export_is_refused_unless_replaced(
    store: Store, seeded: dict[str, str], tmp_path: Path, datasets: ModuleType
) -> None:
    out = tmp_path / "out"
    first = await export(store, out, "openai", validation_fraction=0.5, seed=3)
    assert {"train.jsonl", "validation.jsonl"} <= set(first.files)
    before = on_disk(out)

    with pytest.raises(ConfigError, match="not empty"):
        await export(store, out, "openai", validation_fraction=0.0)
    assert on_disk(out) == before

    manifest = await replace(store, out, validation_fraction=0.0)
    # The earlier run's validation file is gone, and the manifest names every file there is.
    assert on_disk(out) == {f["name"] for f in manifest["files"]} | {"manifest.json"}
    assert "validation.jsonl" not in on_disk(out)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train"}
    assert len(loaded["train"]) == manifest["counts"]["records_written"]


async def test_replace_never_deletes_what_no_export_wrote(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    await export(store, out, "openai")
    (out / "notes.txt").write_text("mine")
    before = on_disk(out)
    with pytest.raises(ConfigError, match=r"notes\.txt"):
        await replace(store, out)
    assert on_disk(out) == before

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "train.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"no readable manifest\.json"):
        await replace(store, stranger)
    assert on_disk(stranger) == {"train.jsonl"}


async def test_progress_counts_rows_read_and_records_written(
    store: Store, seeded: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exporters.run.PROGRESS_EVERY", 5)
    seen: list[Progress] = []
    request = ExportRequest("openai", Filters())
    manifest = await run_export(
        store, AnonymizeConfig(), request, tmp_path / "out", progress=seen.append
    )
    counts = manifest["counts"]
    assert [p.read for p in seen] == [5, 10, counts["interactions_read"]]
    # The total is what the store holds for the selection, known from the start.
    assert {p.total for p in seen} == {counts["interactions_read"]}
    assert seen[-1].eta == 0
    assert seen[-1].written == counts["records_written"]
    assert seen[-1].dropped == sum(counts["dropped"].values()) > 0
    assert all(p.rate >= 0 for p in seen)
