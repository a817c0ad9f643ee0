"""Checking and merging dataset files that already exist: `flywheel dataset validate` and
`flywheel dataset merge`, for files this gateway exported or that another installation sent.

A line is checked exactly as the exporter checks a record before writing it: it must be a JSON
object, pass the format's `check`, fit `max_tokens`, and not repeat an earlier record
(`content_key`, so metadata does not count). Files are streamed line by line; what grows with a
file is the dedup index (one int per record) and nothing else, since only the first
`max_problems` problems are kept in full.

A merge keeps the provenance of every input: its hash, what was dropped from it and why, and the
export manifest that came with it, so a merged file still says which filters and which
anonymization produced each part. Never write into an input: the output is refused if it is one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

from exporters.curate import content_key
from exporters.formats import Format, FormatOptions, get_format
from exporters.output import MANIFEST
from gateway import __version__
from gateway.errors import ConfigError

logger = logging.getLogger(__name__)

# What a merge copies from an input's manifest: enough to know how the part was made (a merged
# input brings its own `inputs`, so provenance survives merges of merges).
_PROVENANCE_KEYS = (
    "format",
    "gateway_version",
    "created_at",
    "filters",
    "changed_since",
    "counts",
    "redactions",
    "inputs",
)
# Problems per input written into a merge manifest; the counts cover all of them.
_MANIFEST_PROBLEMS = 20
# The dedup index stores where a record first appeared as one int, (source << 40) | line:
# a tuple would triple the index's memory on a file of millions of lines.
_LINE_BITS = 40
# The exporter manifest's `dropped` categories that a file check can give.
_DROP_CATEGORIES = ("invalid", "duplicate", "too_long")


class Problem(NamedTuple):
    line: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.detail}"


@dataclass
class ValidationReport:
    """What `validate_file` found. `problems` holds the first `max_problems` in full;
    `problem_counts` counts every problem by kind."""

    path: Path
    format: str
    lines: int = 0
    blank_lines: int = 0
    valid: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_counts: Counter[str] = field(default_factory=Counter)
    max_problems: int = 1000

    @property
    def ok(self) -> bool:
        return not self.problem_counts

    @property
    def total_problems(self) -> int:
        return sum(self.problem_counts.values())

    def add(self, problem: Problem) -> None:
        self.problem_counts[problem.kind] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def summary(self, limit: int = 20) -> str:
        head = f"{self.path}: {self.lines} lines, {self.valid} valid {self.format} records" + (
            f", {self.blank_lines} blank lines skipped" if self.blank_lines else ""
        )
        if self.ok:
            return f"{head}: OK"
        shown = self.problems[:limit]
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.problem_counts.items()))
        text = [f"{head}: {self.total_problems} problems ({kinds})"]
        text += [f"  {problem}" for problem in shown]
        if self.total_problems > len(shown):
            text.append(f"  ... and {self.total_problems - len(shown)} more")
        return "\n".join(text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "ok": self.ok,
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "valid": self.valid,
            "problem_counts": dict(sorted(self.problem_counts.items())),
            "problems": [problem._asdict() for problem in self.problems],
            "problems_omitted": self.total_problems - len(self.problems),
        }


def validate_file(
    path: Path,
    format_name: str,
    options: FormatOptions | None = None,
    max_problems: int = 1000,
) -> ValidationReport:
    """Check every line of the JSONL file at `path` as the exporter checks a record."""
    path = Path(path)
    options = options or FormatOptions()
    _require_dataset(path)
    checker = _Checker(get_format(format_name, options), options)
    report = ValidationReport(path, checker.fmt.name, max_problems=max_problems)
    reader = _Reader(path)
    for number, raw in reader:
        if not raw.strip():
            report.blank_lines += 1
            continue
        record, problems = checker.check(raw, number, source=0)
        for problem in problems:
            report.add(problem)
        if record is not None:
            report.valid += 1
    report.lines = reader.lines
    return report


def merge_files(
    paths: list[Path],
    out: Path,
    format_name: str | None = None,
    options: FormatOptions | None = None,
) -> dict[str, Any]:
    """Write the valid records of `paths` to `out`, each record once (first occurrence wins),
    and return the manifest, also written next to it as `<out stem>.manifest.json`.

    Without `format_name`, the format is the one the inputs' manifests agree on.
    """
    out = Path(out)
    paths = [Path(path) for path in paths]
    options = options or FormatOptions()
    _check_merge_paths(paths, out)
    manifests = [_input_manifest(path) for path in paths]
    fmt = get_format(format_name or _infer_format(paths, manifests), options)
    for path, found in zip(paths, manifests, strict=True):
        if found and found[1].get("format") not in (None, fmt.name):
            logger.warning(
                "%s was exported as %s, merged as %s", path, found[1]["format"], fmt.name
            )
    started = datetime.now(UTC)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside `out` and renamed at the end, so a merge that fails halfway (an unreadable
    # input, a full disk) never leaves a partial file that looks finished.
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(partial, "wb") as sink:
            merge = _Merge(_Checker(fmt, options), [str(path) for path in paths], sink)
            inputs = [
                merge.add(source, path, found)
                for source, (path, found) in enumerate(zip(paths, manifests, strict=True))
            ]
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    manifest = {
        "format": fmt.name,
        "gateway_version": __version__,
        "created_at": started.isoformat(),
        "merged": True,
        "options": {"max_tokens": options.max_tokens},
        "inputs": inputs,
        "counts": _total_counts(inputs, merge.lines),
        "files": [
            {
                "name": out.name,
                "bytes": merge.bytes,
                "lines": merge.lines,
                "sha256": merge.sha256.hexdigest(),
            }
        ],
    }
    manifest_path(out).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest


def manifest_path(dataset: Path) -> Path:
    """Where a merged file's manifest lives: `merged.jsonl` -> `merged.manifest.json`. Not
    `manifest.json`, which belongs to the export whose folder the file may sit in."""
    return dataset.with_suffix(".manifest.json")


class _Checker:
    """The exporter's checks for one line, with one dedup index across every file checked."""

    def __init__(self, fmt: Format, options: FormatOptions):
        self.fmt = fmt
        self.options = options
        self._seen: dict[int, int] = {}  # content_key -> (source << _LINE_BITS) | line

    def check(
        self, raw: bytes, line: int, source: int, labels: list[str] | None = None
    ) -> tuple[dict[str, Any] | None, list[Problem]]:
        """The record, or None and why not. `labels` name the sources in duplicate details."""
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return None, [Problem(line, "invalid_json", str(exc))]
        if not isinstance(record, dict):
            return None, [Problem(line, "data_type", "a line must be a JSON object")]
        problems = [_problem(line, text) for text in self.fmt.problems(record)]
        if problems:
            return None, problems
        if self.fmt.all_traffic:
            return record, []  # raw and analytics files keep every row, as the exporter does
        tokens = self.fmt.tokens(record)
        if tokens is not None and tokens > self.options.max_tokens:
            detail = f"{tokens} tokens, over the limit of {self.options.max_tokens}"
            return None, [Problem(line, "too_long", detail)]
        key = content_key(record)
        first = self._seen.get(key)
        if first is not None:
            first_source, first_line = first >> _LINE_BITS, first & ((1 << _LINE_BITS) - 1)
            where = f"line {first_line}"
            if labels is not None:
                where = f"{labels[first_source]} {where}"
            return None, [Problem(line, "duplicate", f"same content as {where}")]
        self._seen[key] = (source << _LINE_BITS) | line
        return record, []


def _problem(line: int, text: str) -> Problem:
    kind, _, detail = text.partition(": ")
    return Problem(line, kind, detail)


class _Reader:
    """The lines of a file with their numbers (from 1), hashing and counting as it goes."""

    def __init__(self, path: Path):
        self.path = path
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.lines = 0

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        try:
            with open(self.path, "rb") as file:
                for raw in file:
                    self.sha256.update(raw)
                    self.bytes += len(raw)
                    self.lines += 1
                    yield self.lines, raw
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror or exc}") from exc


class _Merge:
    """Appends each input's valid, not yet seen records to `sink`, hashing what it writes."""

    def __init__(self, checker: _Checker, labels: list[str], sink: BinaryIO):
        self.checker = checker
        self.labels = labels
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.lines = 0

    def add(
        self, source: int, path: Path, found: tuple[Path, dict[str, Any]] | None
    ) -> dict[str, Any]:
        """Merge one input; its entry in the manifest's `inputs`."""
        reader = _Reader(path)
        dropped: Counter[str] = Counter()
        invalid: Counter[str] = Counter()
        problems: list[Problem] = []
        blank = kept = 0
        for number, raw in reader:
            if not raw.strip():
                blank += 1
                continue
            record, found_problems = self.checker.check(raw, number, source, self.labels)
            if record is None:
                # One reason per dropped line, its first problem's, as the exporter counts.
                kind = found_problems[0].kind
                category = kind if kind in ("duplicate", "too_long") else "invalid"
                dropped[category] += 1
                if category == "invalid":
                    invalid[kind] += 1
                problems.extend(found_problems[: _MANIFEST_PROBLEMS - len(problems)])
                continue
            self._write(orjson.dumps(record) + b"\n")
            kept += 1
        sha256 = reader.sha256.hexdigest()
        return {
            "path": str(path),
            "sha256": sha256,
            "bytes": reader.bytes,
            "lines": reader.lines,
            "blank_lines": blank,
            "kept": kept,
            "dropped": {reason: dropped[reason] for reason in _DROP_CATEGORIES},
            "dropped_by_reason": {"invalid": dict(sorted(invalid.items()))},
            "problems": [str(problem) for problem in problems],
            "manifest": _provenance(path, sha256, found),
        }

    def _write(self, line: bytes) -> None:
        self.sink.write(line)
        self.sha256.update(line)
        self.bytes += len(line)
        self.lines += 1


def _total_counts(inputs: list[dict[str, Any]], records_written: int) -> dict[str, Any]:
    dropped: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    for entry in inputs:
        dropped.update(entry["dropped"])
        invalid.update(entry["dropped_by_reason"]["invalid"])
    return {
        "records_written": records_written,
        "dropped": {reason: dropped[reason] for reason in _DROP_CATEGORIES},
        "dropped_by_reason": {"invalid": dict(sorted(invalid.items()))},
    }


def _require_dataset(path: Path) -> None:
    if path.suffix == ".json":
        raise ConfigError(
            f"{path} is JSON, not a JSONL dataset (a manifest?): pass the .jsonl files it lists"
        )
    if not path.is_file():
        raise ConfigError(f"cannot read {path}: no such file")


def _check_merge_paths(paths: list[Path], out: Path) -> None:
    if not paths:
        raise ConfigError("nothing to merge: name at least one input file")
    if out.suffix != ".jsonl":
        raise ConfigError(f"the merge output {out} must be a .jsonl file")
    for path in paths:
        _require_dataset(path)
    if out.exists() and any(out.samefile(path) for path in paths):
        raise ConfigError(f"the merge output {out} is also an input; write it elsewhere")


def _input_manifest(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """The manifest that came with an input: its own (`<stem>.manifest.json`, as a merge
    writes), else the export's `manifest.json` in its folder; None when there is neither."""
    for candidate in (manifest_path(path), path.parent / MANIFEST):
        if not candidate.is_file():
            continue
        try:
            manifest = orjson.loads(candidate.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the manifest {candidate}: {exc}") from exc
        if not isinstance(manifest, dict):
            raise ConfigError(f"the manifest {candidate} is not a JSON object")
        return candidate, manifest
    return None


def _infer_format(paths: list[Path], manifests: list[tuple[Path, dict[str, Any]] | None]) -> str:
    formats = {}
    for path, found in zip(paths, manifests, strict=True):
        name = found[1].get("format") if found else None
        if not isinstance(name, str):
            raise ConfigError(
                f"cannot tell the format of {path}: no manifest next to it names one; pass --format"
            )
        formats[path] = name
    if len(set(formats.values())) > 1:
        listed = ", ".join(f"{path} is {name}" for path, name in formats.items())
        raise ConfigError(
            f"the inputs are of different formats ({listed}); merge one format at a time"
        )
    return next(iter(formats.values()))


def _provenance(
    path: Path, sha256: str, found: tuple[Path, dict[str, Any]] | None
) -> dict[str, Any] | None:
    """The input's manifest, cut to what says how it was made, and whether it describes this
    very file: `sha256_matches` is False when the file changed after it was written."""
    if found is None:
        return None
    manifest_file, manifest = found
    entries = manifest.get("files")
    entry = next(
        (
            f
            for f in (entries if isinstance(entries, list) else [])
            if isinstance(f, dict) and f.get("name") == path.name
        ),
        None,
    )
    return {
        "source": manifest_file.name,
        **{key: manifest[key] for key in _PROVENANCE_KEYS if key in manifest},
        "listed": entry is not None,
        "sha256_matches": entry.get("sha256") == sha256 if entry is not None else None,
    }
