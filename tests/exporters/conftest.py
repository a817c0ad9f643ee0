"""Exporter fixtures: a real store (SQLite and PostgreSQL) seeded with `seed.CASES`."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from exporters.formats import FormatOptions
from exporters.run import ExportRequest, run_export
from exporters.selection import Filters
from gateway.config import AnonymizeConfig
from gateway.store.base import Store
from tests.exporters.seed import seed


@pytest.fixture
def datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """`datasets`, offline, with its caches under this test's tmp_path."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    import datasets

    # The environment is read once, at import: another test may have imported it already.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return datasets


@pytest.fixture
async def seeded(store: Store) -> dict[str, str]:
    return await seed(store)


class Exported:
    """An export's manifest and the records of each file, read back from disk."""

    def __init__(self, out: Path, manifest: dict[str, Any]):
        self.out = out
        self.manifest = manifest
        self.files = {f["name"]: out / f["name"] for f in manifest["files"]}
        # The files of records (each says how many it holds), not the card or the schema.
        self.data_files = {f["name"]: out / f["name"] for f in manifest["files"] if "records" in f}

    def records(self, name: str) -> list[dict[str, Any]]:
        path = self.out / name
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]

    @property
    def all_records(self) -> list[dict[str, Any]]:
        return [r for name in self.files if name.endswith(".jsonl") for r in self.records(name)]

    @property
    def dropped(self) -> dict[str, Any]:
        return self.manifest["counts"]["dropped"]


async def export(
    store: Store,
    out: Path,
    fmt: str,
    anonymize: AnonymizeConfig | None = None,
    options: FormatOptions | None = None,
    **filters: Any,
) -> Exported:
    request = ExportRequest(fmt, Filters(**filters), options or FormatOptions())
    manifest = await run_export(store, anonymize or AnonymizeConfig(), request, out)
    return Exported(out, manifest)
