"""The output folder of one export: never two runs' files side by side.

An export writes into a new or empty folder. Told to `replace`, it first removes an earlier
export from the folder: exactly the files that export's manifest lists (and the manifest, card and
schema), and only when nothing else is there, so a mistyped `--out` never deletes anyone's files.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from exporters.card import CARD, FEATURES
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
