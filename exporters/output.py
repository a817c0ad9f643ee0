"""The output folder of one export: never two runs' files side by side.

An export writes into a new or empty folder. Told to `replace`, it first removes an earlier
export from the folder: exactly the files that export's manifest lists (and the manifest, card and
schema), and only when nothing else is there, so a mistyped `--out` never deletes anyone's files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from exporters.card import CARD, FEATURES, write_card, write_features

if TYPE_CHECKING:
    from exporters.formats import Format
    from exporters.writers import Writer
from gateway.errors import ConfigError

MANIFEST = "manifest.json"
# Files an export writes besides its records, which `replace` removes with the listed ones.
_EXPORT_FILES = (MANIFEST, CARD, FEATURES)


def clear_out(out_dir: Path, replace: bool) -> None:
    """Make `out_dir` ready for a new export: missing or empty is fine; an earlier export is
    removed when `replace` says so (the files its manifest lists, and nothing else); anything
    else stops the run, so two runs' files never sit side by side."""
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not replace:
        raise ConfigError(
            f"{out_dir} is not empty: export into a new folder, or pass --replace to remove"
            " the earlier export in it"
        )
    manifest_file = out_dir / MANIFEST
    try:
        listed = [entry["name"] for entry in orjson.loads(manifest_file.read_bytes())["files"]]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{out_dir} is not empty and holds no readable {MANIFEST}: not replacing files"
            f" that no export wrote ({exc})"
        ) from None
    root = out_dir.resolve()
    ours = {(out_dir / name).resolve() for name in [*listed, *_EXPORT_FILES]}
    present = {path.resolve() for path in out_dir.rglob("*") if not path.is_dir()}
    foreign = sorted(path.relative_to(root).as_posix() for path in present - ours)
    if foreign:
        raise ConfigError(
            f"{out_dir} holds files the earlier export did not write ({', '.join(foreign[:5])}):"
            " not replacing it"
        )
    for path in present:  # all ours, and inside the folder (a listed ../x is never present)
        path.unlink()
    for folder in sorted((p for p in out_dir.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def describe_records(fmt: Format, writer: Writer, out_dir: Path) -> list[Path]:
    """The schema file and, unless the format writes its own, the dataset card."""
    if fmt.schema is None:
        return []
    written = [write_features(out_dir, fmt.schema)]
    if not fmt.own_card:
        written.append(write_card(out_dir, fmt.schema, writer.split_files(), fmt.name))
    return written


def describe_file(path: Path, out_dir: Path, records: dict[str, int]) -> dict[str, Any]:
    digest = hashlib.sha256()
    lines = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    name = path.relative_to(out_dir).as_posix()
    described: dict[str, Any] = {"name": name, "bytes": path.stat().st_size, "lines": lines}
    if name in records:
        # A CSV cell may hold newlines: lines are not records there.
        described["records"] = records[name]
    described["sha256"] = digest.hexdigest()
    return described
