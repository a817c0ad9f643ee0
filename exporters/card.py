"""The files that describe an export's records to the tools that load them: `features.json`
(the declared schema, `datasets.Features.to_dict()` form) and a `README.md` dataset card whose
YAML names each split's file and declares the same features, so `datasets.load_dataset(folder)`
reads any JSONL export as it is, offline, every split typed alike.

Only files that exist are named: a card listing a split with no file makes `load_dataset` fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from exporters.schema import Schema, features_dict, yaml_features

CARD = "README.md"
FEATURES = "features.json"


def write_features(out_dir: Path, schema: dict[str, Schema]) -> Path:
    path = out_dir / FEATURES
    path.write_bytes(orjson.dumps(features_dict(schema), option=orjson.OPT_INDENT_2) + b"\n")
    return path


# split -> (file, relative to the card's folder; its number of records)
SplitFiles = dict[str, tuple[Path, int]]


def front_matter(
    out_dir: Path, schema: dict[str, Schema], files: SplitFiles, tags: list[str]
) -> str:
    """The card's YAML: one config naming each split's file, and the features; `datasets`
    checks each split's `num_examples` against what it reads."""
    front: dict[str, Any] = {"license": "other", "pretty_name": "Flywheel export", "tags": tags}
    if files:
        front["configs"] = [
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": path.as_posix()} for split, (path, _) in files.items()
                ],
            }
        ]
    front["dataset_info"] = {
        "features": yaml_features(schema),
        # Without num_bytes `datasets` ignores the whole list; it does not check the number.
        "splits": [
            {"name": split, "num_bytes": (out_dir / path).stat().st_size, "num_examples": n}
            for split, (path, n) in files.items()
        ],
    }
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n"


def write_card(
    out_dir: Path, schema: dict[str, Schema], files: SplitFiles, format_name: str
) -> Path:
    """A short card for a format that has none of its own."""
    listed = "\n".join(
        f"| {split} | `{path.as_posix()}` | {n} |" for split, (path, n) in files.items()
    )
    body = f"""
# Flywheel export ({format_name})

| split | file | records |
|---|---|---|
{listed}

The features are declared above and in `{FEATURES}`; the filters, counts and why records were
dropped are in `manifest.json`.

```python
import json
from datasets import Features, load_dataset

dataset = load_dataset("path/to/this/folder")
# or the files alone, with the same types:
features = Features.from_dict(json.load(open("path/to/this/folder/{FEATURES}")))
```
"""
    path = out_dir / CARD
    front = front_matter(out_dir, schema, files, ["flywheel", format_name])
    path.write_text(front + body, encoding="utf-8")
    return path
