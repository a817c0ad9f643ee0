"""Parquet splits for the Hugging Face export (`--output-format parquet`): what trainers load
fastest (`datasets` reads Parquet natively, column by column, without parsing JSON) and about a
third of the JSONL's size for chat text.

pyarrow is an optional dependency (`pip install 'flywheel-gateway[parquet]'`): the gateway and
every JSONL export run without it, and asking for Parquet without it is a config error that
says what to install, raised before the export reads a row. Records are written in row groups
of `ROW_GROUP` as they come, so memory stays flat however large the export.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from exporters.schema import Schema
from exporters.writers import SPLITS, Writer
from gateway.errors import ConfigError

OUTPUT_FORMATS = ("jsonl", "parquet")
# Records per row group: ~10-50 MB of chat text held at once, and what `datasets` reads at a time.
ROW_GROUP = 5_000
_INSTALL = "pip install 'flywheel-gateway[parquet]'"


def require_pyarrow() -> tuple[ModuleType, ModuleType]:
    """pyarrow and pyarrow.parquet, or a ConfigError that says how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ConfigError(
            f"--output-format parquet needs pyarrow, which is not installed: {_INSTALL}"
        ) from exc
    return pyarrow, pyarrow.parquet


def arrow_schema(schema: dict[str, Schema]) -> Any:
    """The pyarrow schema of a format's declared fields (exporters.schema)."""
    pa, _ = require_pyarrow()
    return pa.schema([pa.field(name, _arrow_type(pa, value)) for name, value in schema.items()])


def _arrow_type(pa: ModuleType, value: Schema) -> Any:
    if isinstance(value, str):
        types = {"string": pa.string(), "int64": pa.int64()}
        types |= {"float64": pa.float64(), "bool": pa.bool_()}
        if value not in types:  # `json`: a value of any shape has no column type
            raise ConfigError(f"a {value!r} field cannot be written as Parquet yet")
        return types[value]
    if isinstance(value, list):
        return pa.list_(_arrow_type(pa, value[0]))
    return pa.struct([pa.field(name, _arrow_type(pa, inner)) for name, inner in value.items()])


class ParquetSplits(Writer):
    """`train.parquet` and `validation.parquet` under `folder` (a file only once it has a
    record), written a row group at a time."""

    def __init__(self, out_dir: Path, schema: dict[str, Schema], folder: str = ""):
        self.pa, self.pq = require_pyarrow()
        self.dir = Path(out_dir) / folder
        self.folder = folder
        self.schema = arrow_schema(schema)
        self.counts: dict[str, int] = dict.fromkeys(SPLITS, 0)
        self._writers: dict[str, Any] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}

    def write(self, split: str, record: dict[str, Any]) -> None:
        pending = self._pending.setdefault(split, [])
        pending.append(record)
        self.counts[split] = self.counts.get(split, 0) + 1
        if len(pending) >= ROW_GROUP:
            self._flush(split)

    def _flush(self, split: str) -> None:
        rows = self._pending.pop(split, [])
        if not rows:
            return
        writer = self._writers.get(split)
        if writer is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{split}.parquet"
            writer = self._writers[split] = self.pq.ParquetWriter(path, self.schema)
        writer.write_table(self.pa.Table.from_pylist(rows, schema=self.schema))

    def split_files(self) -> dict[str, tuple[Path, int]]:
        folder = Path(self.folder)
        return {
            split: (folder / f"{split}.parquet", self.counts[split])
            for split in SPLITS
            if split in self._writers or self._pending.get(split)
        }

    def close(self) -> list[Path]:
        for split in list(self._pending):
            self._flush(split)
        paths = []
        for split, writer in self._writers.items():
            writer.close()
            paths.append(self.dir / f"{split}.parquet")
        return paths
