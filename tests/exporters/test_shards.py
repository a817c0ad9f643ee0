"""`--shard i/N` and `dataset merge --shards`: N slices exported apart and merged are the
export one machine writes, byte for byte in the records, with the same manifest apart from
when it was made."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from exporters.formats import FormatOptions
from exporters.run import ExportRequest, run_export
from exporters.selection import Filters
from exporters.shards import ORDER_FILE, Shard, merge_shards
from gateway.config import AnonymizeConfig
from gateway.errors import ConfigError
from gateway.store.base import Store
from gateway.store.queries import Cursor, ExportQuery, Slice, slice_of
from tests.exporters import traffic
from tests.exporters.seed import seed
from tests.exporters.test_cli_export import flywheel


def request(fmt: str, shard: Shard | None = None, **filters: Any) -> ExportRequest:
    options = FormatOptions(system_prompt_variants=traffic.OVERRIDING)
    return ExportRequest(
        fmt, Filters(validation_fraction=0.3, seed=2, **filters), options, shard=shard
    )


def timeless(manifest: dict[str, Any], out: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    # The card says when it was written; everything else must match.
    manifest = {k: v for k, v in manifest.items() if k != "created_at"}
    manifest["files"] = [f for f in manifest["files"] if f["name"] != "README.md"]
    return manifest, {f["name"]: (out / f["name"]).read_bytes() for f in manifest["files"]}


@pytest.mark.parametrize("fmt", ["openai", "huggingface", "kto"])
@pytest.mark.parametrize("count", [1, 3])
async def test_shards_merged_are_the_unsharded_export(
    store: Store, tmp_path: Path, fmt: str, count: int
) -> None:
    await seed(store)  # personal data, feedback of every kind
    await seed(store, traffic.cases())  # duplicates across users, rejected turns across rows
    config = AnonymizeConfig(salt="s")
    whole = await run_export(store, config, request(fmt), tmp_path / "whole")
    folders = []
    for index in range(count):
        folder = tmp_path / f"shard-{index}"
        await run_export(store, config, request(fmt, Shard(index, count)), folder, jobs=1)
        assert (folder / ORDER_FILE).exists()
        folders.append(folder)
    merged = merge_shards(folders[::-1], tmp_path / "merged")  # in any order
    assert whole["counts"]["records_written"] > 0
    assert whole["counts"]["dropped"]["duplicate"] > 0
    if fmt == "openai":  # turns rejected in rows of other slices, too
        assert whole["counts"]["turns_zero_weighted"] > 0
    assert timeless(merged, tmp_path / "merged") == timeless(whole, tmp_path / "whole")


async def test_each_shard_holds_its_own_slice(store: Store, tmp_path: Path) -> None:
    await seed(store, traffic.cases())
    config = AnonymizeConfig(salt="s")
    selected, read = [], []
    for index in range(2):
        out = tmp_path / str(index)
        manifest = await run_export(store, config, request("openai", Shard(index, 2)), out)
        assert manifest["shard"] == {"index": index, "count": 2, "reads": "slice"}
        selected.append(manifest["counts"]["examples_selected"])
        read.append(manifest["counts"]["interactions_read"])
    whole = await run_export(store, config, request("openai"), tmp_path / "whole")
    assert all(n > 0 for n in selected)
    assert sum(selected) == whole["counts"]["examples_selected"]
    assert sum(read) == whole["counts"]["interactions_read"]


@pytest.mark.parametrize("count", [2, 5])
async def test_the_database_picks_the_slice_python_names(store: Store, count: int) -> None:
    """Each engine's SQL puts every interaction in the slice `slice_of` names; a page of a
    slice holds its rows and, of the other slices, only answers that may have been thrown
    away, which a shard needs to know which history turns not to train on."""
    await seed(store, traffic.cases())
    everything = await _pages(store, ExportQuery())
    judged = {record["id"]: record["feedback"] for record in everything}
    for index in range(count):
        part = Slice(index, count)
        page = await _pages(store, ExportQuery(slice=part))
        own = [r["id"] for r in everything if slice_of(str(r["id"]), count) == index]
        assert [r["id"] for r in page if part.holds(str(r["id"]))] == own
        assert await store.export_count(ExportQuery(slice=part)) == len(own)
        others = [r["id"] for r in page if not part.holds(str(r["id"]))]
        assert others  # the traffic throws answers away in every slice
        assert all(any(_thrown(event) for event in judged[i]) for i in others)
        missed = [
            r["id"]
            for r in everything
            if r["id"] not in own and any(_thrown(event) for event in r["feedback"])
        ]
        assert sorted(others) == sorted(missed)


async def test_the_database_gives_the_answers_that_may_have_been_thrown_away(
    store: Store,
) -> None:
    """What an export reads from before its window (exporters.history.learn_before): only
    the rows given feedback that may have thrown their answer away, every one of them."""
    await seed(store, traffic.cases())
    everything = await _pages(store, ExportQuery())
    thrown = await _pages(store, ExportQuery(thrown_away=True))
    expected = [r["id"] for r in everything if any(_thrown(e) for e in r["feedback"])]
    assert 0 < len(expected) < len(everything)
    assert [r["id"] for r in thrown] == expected


async def _pages(store: Store, query: ExportQuery) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = await store.export_page(query, after, 40)
        rows += page
        if len(page) < 40:
            return rows
        last = page[-1]
        after = Cursor(datetime.fromisoformat(str(last["created_at"])), str(last["id"]))


def _thrown(event: dict[str, Any]) -> bool:
    return (
        event.get("outcome") == "rejected"
        or event.get("thumbs") == "down"
        or event.get("correction") is not None
    )


@pytest.mark.parametrize(
    ("fmt", "filters", "message"),
    [
        ("dpo", {}, "joins examples"),
        ("conversations", {}, "joins examples"),
        ("jsonl", {}, "joins examples"),
        ("openai", {"max_examples": 5}, "max-examples"),
    ],
)
async def test_what_cannot_be_split_is_refused(
    store: Store, tmp_path: Path, fmt: str, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        await run_export(
            store, AnonymizeConfig(), request(fmt, Shard(0, 2), **filters), tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()


async def test_a_merge_wants_every_shard_once(store: Store, tmp_path: Path) -> None:
    await seed(store, traffic.cases(requests=30))
    shard = tmp_path / "0"
    await run_export(store, AnonymizeConfig(), request("openai", Shard(0, 2)), shard)
    with pytest.raises(ConfigError, match="shards 0 to 1 of 2"):
        merge_shards([shard], tmp_path / "merged")
    whole = tmp_path / "whole"
    await run_export(store, AnonymizeConfig(), request("openai"), whole)
    with pytest.raises(ConfigError, match="--shard export"):
        merge_shards([shard, whole], tmp_path / "merged")


async def test_shards_whose_keys_were_made_another_way_do_not_merge(
    store: Store, tmp_path: Path
) -> None:
    """Shards from builds that made dedup keys differently would keep duplicates across them:
    a shard exported before keys had a version (or with another) is refused."""
    await seed(store, traffic.cases(requests=30))
    shards = [tmp_path / str(index) for index in range(2)]
    for index, folder in enumerate(shards):
        await run_export(store, AnonymizeConfig(), request("openai", Shard(index, 2)), folder)
    merge_shards(shards, tmp_path / "merged")
    manifest_file = shards[1] / "manifest.json"
    older = orjson.loads(manifest_file.read_bytes())
    del older["content_key_version"]
    manifest_file.write_bytes(orjson.dumps(older))
    with pytest.raises(ConfigError, match="another content_key_version"):
        merge_shards(shards, tmp_path / "again")


@pytest.mark.parametrize("text", ["1/1", "2", "a/b", "-1/2"])
def test_a_shard_is_i_of_n(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard"):
        Shard.parse(text)
    assert Shard.parse("1/2") == Shard(1, 2)


async def test_the_indexed_job_recipe_merges_into_one_export(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    """The README's Kubernetes recipe, as its pods run it: each pod's command with its
    JOB_COMPLETION_INDEX filled in, then the merge; against one export with `--jobs 2`."""
    await seed(store)
    await seed(store, traffic.cases())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": database_url}}))
    done = flywheel(
        "export", "openai", "--jobs", "2", "--out", str(tmp_path / "whole"), config=config
    )
    assert done.returncode == 0, done.stderr
    for index in range(3):
        done = flywheel("export", "openai", "--shard", f"{index}/3", "--out",
                        str(tmp_path / "shards" / str(index)), config=config)  # fmt: skip
        assert done.returncode == 0, done.stderr
    shards = [str(tmp_path / "shards" / str(index)) for index in range(3)]
    done = flywheel("dataset", "merge", "--shards", *shards, "--out", str(tmp_path / "merged"),
                    config=config)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "records from" in done.stdout
    whole = orjson.loads((tmp_path / "whole" / "manifest.json").read_bytes())
    merged = orjson.loads((tmp_path / "merged" / "manifest.json").read_bytes())
    assert timeless(merged, tmp_path / "merged") == timeless(whole, tmp_path / "whole")

    done = flywheel("export", "openai", "--jobs", "0", "--out", str(tmp_path / "x"), config=config)
    assert done.returncode != 0
    assert "--jobs must be at least 1" in done.stderr
