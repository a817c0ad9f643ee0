"""One export across machines: `--shard i/N` exports one deterministic slice of the selection,
and `merge_shards` puts N such exports back together into the export one machine would have
written, byte for byte in the records.

A slice is the interactions whose id hashes to `i` modulo N (gateway.store.queries.slice_of),
picked by the database. A shard reads its own slice, and of the other slices only the rows
given feedback that may have thrown their answer away (so a turn rejected in a row of another
slice is known here too). Until 2026-12-01 every shard read every row, a cost that did not
shrink with more machines (issue 21). `interactions_read` is the slice's; the merge sums them.

Each shard writes its records as usual, deduplicated within the slice, plus `shard-order.jsonl`:
for each record written, its split, the place of its interaction in store order (created_at in
microseconds, id, then the record's number within the shard) and its dedup key. The merge walks
the N shards in that order, so the merged files hold the records in the order of an unsharded
export, keeps the first of each dedup key across shards (the one an unsharded export keeps), and
sums the counts. The train/validation split needs no second pass: it is a seeded hash of the
user (else session), the same on every machine.

Formats that pair or join examples (`dpo`, `openai-preference`, `conversations`), the all-traffic
formats, and `--max-examples` (a sample over the whole selection) cannot be split this way and
are refused.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from exporters.formats import Format, FormatOptions, get_format
from exporters.output import MANIFEST, clear_out, describe_file, describe_records
from gateway.errors import ConfigError
from gateway.store.queries import Slice

ORDER_FILE = "shard-order.jsonl"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`i/N`, 0 <= i < N."""
        index, sep, count = text.partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            raise ConfigError(f"--shard wants i/N (e.g. 0/4), got {text!r}") from None
        if not sep or not 0 <= shard.index < shard.count:
            raise ConfigError(f"--shard wants i/N with 0 <= i < N, got {text!r}")
        return shard

    @property
    def slice(self) -> Slice:
        return Slice(self.index, self.count)

    def check(self, fmt: Format, max_examples: int | None) -> None:
        if not fmt.builds_anywhere or fmt.all_traffic:
            raise ConfigError(f"--shard: format {fmt.name} joins examples; export it whole")
        if max_examples:
            raise ConfigError("--shard: --max-examples samples the whole selection")

    def describe(self) -> dict[str, Any]:
        # `reads`: interactions_read counts the slice's rows (before 2026-12-01, the store's).
        return {"index": self.index, "count": self.count, "reads": "slice"}


def position(record: dict[str, Any]) -> tuple[int, str]:
    """Where a row is in store order (created_at, then id), as JSON can carry it exactly."""
    created = record["created_at"]
    moment = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1), str(record["id"])


class OrderLog:
    """`shard-order.jsonl`, one line per record a shard writes."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / ORDER_FILE
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._seq = 0

    def add(self, split: str, where: tuple[int, str], key: int) -> None:
        self._file.write(orjson.dumps([split, where[0], where[1], self._seq, key]) + b"\n")
        self._seq += 1

    def close(self) -> Path:
        self._file.close()
        return self.path


def _records(folder: Path, files: dict[str, str]) -> Iterator[tuple[Any, ...]]:
    """One shard's records in its write order: (micros, id, seq, split, line, key), each
    record as the JSON line the shard wrote, which the merge writes as it is."""
    opened = {split: open(folder / name, "rb") for split, name in files.items()}  # noqa: SIM115
    try:
        with open(folder / ORDER_FILE, "rb") as order:
            for entry in order:
                split, micros, interaction, seq, key = orjson.loads(entry)
                yield micros, interaction, seq, split, opened[split].readline(), key
    finally:
        for file in opened.values():
            file.close()


def merge_shards(folders: list[Path], out_dir: Path, *, replace: bool = False) -> dict[str, Any]:
    """Merge the exports of `--shard 0/N` ... `--shard N-1/N` into `out_dir` and return its
    manifest (also written there): the manifest of the unsharded export, apart from when."""
    manifests = [orjson.loads((Path(f) / MANIFEST).read_bytes()) for f in folders]
    first = manifests[0]
    _check_complete(manifests, folders)
    fmt = get_format(first["format"], FormatOptions(max_tokens=first["options"]["max_tokens"]))
    out_dir = Path(out_dir)
    clear_out(out_dir, replace)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = fmt.open_writer(out_dir)
    streams = [
        _records(Path(folder), _split_files(manifest))
        for folder, manifest in zip(folders, manifests, strict=True)
    ]
    seen: set[int] = set()
    duplicate = zero_weighted = 0
    for _, _, _, split, line, key in heapq.merge(*streams, key=lambda item: item[:3]):
        if key in seen:
            duplicate += 1
            continue
        seen.add(key)
        writer.write_line(split, line)
        zero_weighted += fmt.zero_weighted_line(line)
    files = writer.close() + describe_records(fmt, writer, out_dir)
    manifest = _merged(manifests, writer, duplicate, zero_weighted)
    records = {path.as_posix(): n for path, n in writer.split_files().values()}
    manifest["files"] = [describe_file(path, out_dir, records) for path in sorted(files)]
    (out_dir / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest


def _check_complete(manifests: list[dict[str, Any]], folders: list[Path]) -> None:
    if any(m.get("shard") is None for m in manifests):
        raise ConfigError("dataset merge --shards: every folder must hold a --shard export")
    shards: list[dict[str, int]] = [m["shard"] for m in manifests]
    count = shards[0]["count"]
    indices = sorted(s["index"] for s in shards)
    if indices != list(range(count)) or any(s["count"] != count for s in shards):
        raise ConfigError(f"dataset merge --shards: want shards 0 to {count - 1} of {count}")
    # content_key_version: the order logs' dedup keys must be one function of the records.
    same = (
        "format",
        "filters",
        "changed_since",
        "options",
        "split",
        "gateway_version",
        "content_key_version",
    )
    for folder, manifest in zip(folders, manifests, strict=True):
        for key in same:
            if manifest.get(key) != manifests[0].get(key):
                raise ConfigError(f"dataset merge --shards: {folder} has another {key}")


def _split_files(manifest: dict[str, Any]) -> dict[str, str]:
    """split -> file of records, from a shard's manifest (train.jsonl, data/train.jsonl ...)."""
    return {
        Path(f["name"]).stem: f["name"]
        for f in manifest["files"]
        if "records" in f and f["name"] != ORDER_FILE
    }


def _merged(
    manifests: list[dict[str, Any]], writer: Any, duplicate: int, zero_weighted: int
) -> dict[str, Any]:
    first = manifests[0]
    counts = [m["counts"] for m in manifests]
    dropped = {key: sum(c["dropped"][key] for c in counts) for key in first["counts"]["dropped"]}
    dropped["duplicate"] += duplicate
    by_reason = {
        kind: _sum_dicts(c["dropped_by_reason"][kind] for c in counts)
        for kind in first["counts"]["dropped_by_reason"]
    }
    split_counts: dict[str, int] = getattr(writer, "counts", {})
    manifest = {key: value for key, value in first.items() if key != "shard"}
    manifest["created_at"] = datetime.now(UTC).isoformat()
    manifest["counts"] = {
        "interactions_read": _read(manifests),
        "examples_selected": sum(c["examples_selected"] for c in counts),
        "records_written": sum(split_counts.values()),
        **split_counts,
        "dropped": dropped,
        "dropped_by_reason": by_reason,
        "turns_zero_weighted": zero_weighted,
    }
    manifest["redactions"] = _sum_dicts(m["redactions"] for m in manifests)
    changes = [m["latest_change"] for m in manifests if m["latest_change"] is not None]
    manifest["latest_change"] = max(changes) if changes else None
    for kind in ("user_hashes", "session_hashes"):
        manifest[kind] = sorted({h for m in manifests for h in m.get(kind, ())})
    return manifest


def _read(manifests: list[dict[str, Any]]) -> int:
    """The rows the unsharded export would have read: the slices' own, summed. Shards made
    before 2026-12-01 each read every row, and count the store's."""
    counts = [m["counts"]["interactions_read"] for m in manifests]
    if all(m["shard"].get("reads") == "slice" for m in manifests):
        return sum(counts)
    return counts[0]


def _sum_dicts(dicts: Iterator[dict[str, int]] | Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in dicts:
        for key, value in one.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))
