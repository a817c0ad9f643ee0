"""`jobs`: redaction in a pool of processes changes nothing in what an export writes. The
same files, byte for byte, in the same order, with the same manifest apart from its timestamp,
whatever the number of jobs; dedup and the user-grouped split included."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import ANY

import orjson
import pytest

from exporters import pool
from exporters.formats import FormatOptions
from exporters.pool import Done, work
from exporters.prepare import Failure
from exporters.privacy import Privacy
from exporters.run import ExportRequest, run_export
from exporters.selection import Example, Filters
from gateway.config import AnonymizeConfig
from gateway.store.base import Store
from tests.exporters import traffic
from tests.exporters.seed import seed
from tests.exporters.test_unformattable import ODD


async def run(store: Store, out: Path, fmt: str, jobs: int) -> tuple[dict[str, Any], dict]:
    request = ExportRequest(
        fmt,
        Filters(validation_fraction=0.3, seed=4),
        FormatOptions(system_prompt_variants=traffic.OVERRIDING),
    )
    manifest = await run_export(store, AnonymizeConfig(salt="s"), request, out, jobs=jobs)
    # Timings apart: when the export ran, and the dataset card that says when.
    manifest.pop("created_at")
    manifest["files"] = [f for f in manifest["files"] if f["name"] != "README.md"]
    files = {f["name"]: (out / f["name"]).read_bytes() for f in manifest["files"]}
    return manifest, files


@pytest.mark.parametrize("fmt", ["openai", "dpo", "conversations", "jsonl", "kto", "huggingface"])
async def test_two_jobs_write_what_one_writes(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    await seed(store)  # the cases with personal data
    await seed(store, traffic.cases())
    # Small batches: many of them in flight, answered in any order by the two workers.
    monkeypatch.setattr(pool, "BATCH", 7)
    one, one_files = await run(store, tmp_path / "one", fmt, jobs=1)
    two, two_files = await run(store, tmp_path / "two", fmt, jobs=2)
    assert one["counts"]["records_written"] > 0
    assert sum(one["redactions"].values()) > 0
    assert two == one
    assert two_files == one_files
    assert (tmp_path / "two" / "manifest.json").read_bytes() != b""
    manifest = orjson.loads((tmp_path / "two" / "manifest.json").read_bytes())
    assert manifest["counts"] == one["counts"]


async def test_rows_no_format_can_read_are_counted_alike_with_two_jobs(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(store, {**ODD, **traffic.cases(requests=20)})
    monkeypatch.setattr(pool, "BATCH", 3)
    one, _ = await run(store, tmp_path / "one", "openai", jobs=1)
    two, _ = await run(store, tmp_path / "two", "openai", jobs=2)
    assert one["counts"]["dropped"]["unformattable"] > 0
    assert two == one


def test_an_example_privacy_cannot_walk_comes_back_as_a_failure() -> None:
    privacy = Privacy(AnonymizeConfig())
    odd = Example(record={"id": "x", "request": {}, "tags": "not a mapping"}, feedback={})
    fine = Example(record={"id": "y", "request": {}, "error_message": "Mail a@b.no"}, feedback={})
    assert work(privacy, None, odd, 100) == Done(
        "x", failure=Failure("AttributeError", "privacy.py", ANY)
    )
    assert work(privacy, None, fine, 100) == Done("y", example=fine)
    assert fine.record["error_message"] == "Mail [EMAIL]"


def _same_conversation(count: int) -> list[Example]:
    """Rows of one conversation: the same first user message, then a turn of their own."""
    first = {"role": "user", "content": "Pasient: Kari Nordmann, tlf 912 34 567"}
    return [
        Example(
            record={
                "id": f"row-{n}",
                "request": {"messages": [first, {"role": "user", "content": f"Mail k{n}@x.no"}]},
            },
            feedback={},
        )
        for n in range(count)
    ]


async def test_one_conversation_in_every_row_still_uses_every_worker_and_keeps_the_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Rows go to the worker of their conversation, but not when it is far busier than another:
    # one conversation everywhere must not leave a worker idle, nor change the order.
    monkeypatch.setattr(pool, "BATCH", 4)
    rows = _same_conversation(60)
    job = pool.Work(AnonymizeConfig(salt="s"), None, FormatOptions())
    privacy = Privacy(AnonymizeConfig(salt="s"))
    workers = pool.Workers(job, 2, privacy)
    try:
        for row in rows:
            workers.send(row)
        assert all(busy > 0 for busy in workers._busy), workers._busy
        done = [await workers.next() for _ in rows]
    finally:
        workers.close()
    assert [d.id for d in done] == [row.id for row in rows]
    alone = Privacy(AnonymizeConfig(salt="s"))
    expected = [work(alone, None, row, 100) for row in _same_conversation(60)]
    assert [d.example.record for d in done] == [e.example.record for e in expected]  # type: ignore[union-attr]
    assert privacy.redactions == alone.redactions
    assert done[0].example.record["request"]["messages"][1]["content"] == "Mail [EMAIL]"  # type: ignore[union-attr]


def test_an_example_travels_to_a_worker_whole() -> None:
    """exporters.pool sends an Example as the tuple of its fields: a field added to Example
    must be added to `pool.Row` too, or workers would lose it."""
    from dataclasses import fields

    from exporters.selection import Example

    assert [field.name for field in fields(Example)] == ["record", "feedback", "rejected_turns"]
