"""`flywheel dataset validate` and `merge`: files written here line by line, checked and merged
as a user does with files sent by other installations."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporters.dataset import manifest_path, merge_files, validate_file
from exporters.formats import FormatOptions
from gateway.errors import ConfigError
from gateway.store.base import Store
from tests.exporters.conftest import export


def chat(question: str, answer: str | None = "Noted.") -> dict[str, Any]:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


def pair(question: str) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": "Lumbago."}],
        "rejected": [{"role": "assistant", "content": "Back pain."}],
        "metadata": {"source": "correction"},
    }


def write_jsonl(path: Path, *lines: dict[str, Any] | str) -> Path:
    """Records as JSON lines; a str is written as it is (a broken or blank line)."""
    text = [line if isinstance(line, str) else orjson.dumps(line).decode() for line in lines]
    path.write_text("".join(f"{line}\n" for line in text))
    return path


def write_manifest(folder: Path, fmt: str, **extra: Any) -> dict[str, Any]:
    """The exporter's manifest layout, for the files already in `folder`."""
    files = [
        {
            "name": f.name,
            "bytes": f.stat().st_size,
            "lines": f.read_bytes().count(b"\n"),
            "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
        }
        for f in sorted(folder.glob("*.jsonl"))
    ]
    manifest = {
        "format": fmt,
        "gateway_version": "0.0.9",
        "created_at": "2026-03-01T10:00:00+00:00",
        "filters": {"models": ["support"], "min_rating": 4},
        "counts": {"records_written": 2, "train": 2, "validation": 0},
        "redactions": {"email": 3},
        "files": files,
        **extra,
    }
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    return manifest


def test_a_good_openai_file_validates(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", chat("Back pain?"), "", chat("Neck pain?"))

    report = validate_file(path, "openai")

    assert report.ok, report.summary()
    assert (report.lines, report.blank_lines, report.valid) == (3, 1, 2)
    assert report.problems == []
    assert report.summary().endswith(": OK")
    assert report.as_dict()["ok"] is True


def test_a_broken_file_names_each_problem_with_its_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "friend.jsonl",
        chat("Back pain?"),
        "// exported by hand",
        chat("Neck pain?", answer=None),
        chat("  BACK pain? ", answer="noted."),  # line 1 again, up to spacing and case
        '["not", "an", "object"]',
    )

    report = validate_file(path, "openai")

    assert not report.ok
    assert [(p.line, p.kind) for p in report.problems] == [
        (2, "invalid_json"),
        (3, "example_missing_assistant_message"),
        (4, "duplicate"),
        (5, "data_type"),
    ]
    assert report.problems[2].detail == "same content as line 1"
    assert report.valid == 1
    assert "line 3: example_missing_assistant_message: " in report.summary()
    as_dict = orjson.loads(orjson.dumps(report.as_dict()))
    assert as_dict["problem_counts"]["duplicate"] == 1
    assert as_dict["problems"][0]["line"] == 2


def test_summary_shows_the_first_problems_then_how_many_more(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "broken.jsonl", *(["{"] * 30))

    report = validate_file(path, "openai", max_problems=10)

    assert len(report.problems) == 10
    assert report.total_problems == 30
    assert report.as_dict()["problems_omitted"] == 20
    summary = report.summary(limit=5)
    assert "line 5: invalid_json" in summary and "line 6:" not in summary
    assert summary.endswith("... and 25 more")


def test_a_record_over_the_token_limit_is_too_long(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "long.jsonl", chat("Short?"), chat("word " * 200))

    report = validate_file(path, "openai", FormatOptions(max_tokens=100))

    assert [(p.line, p.kind) for p in report.problems] == [(2, "too_long")]


@pytest.mark.parametrize(
    ("fmt", "module", "good", "other_format"),
    [
        ("openai", "openai", chat("Back pain?"), pair("Back pain?")),
        ("dpo", "preference", pair("Back pain?"), chat("Back pain?")),
    ],
)
def test_each_format_accepts_its_own_records_and_refuses_others(
    tmp_path: Path, fmt: str, module: str, good: dict[str, Any], other_format: dict[str, Any]
) -> None:
    pytest.importorskip(f"exporters.formats.{module}")
    path = write_jsonl(tmp_path / "data.jsonl", good, other_format)

    report = validate_file(path, fmt)

    assert report.valid == 1
    assert {p.line for p in report.problems} == {2}


def test_a_manifest_or_a_missing_file_or_an_unknown_format_is_a_config_error(
    tmp_path: Path,
) -> None:
    write_jsonl(tmp_path / "train.jsonl", chat("Back pain?"))
    write_manifest(tmp_path, "openai")

    with pytest.raises(ConfigError, match="not a JSONL dataset"):
        validate_file(tmp_path / "manifest.json", "openai")
    with pytest.raises(ConfigError, match=r"cannot read .*absent\.jsonl"):
        validate_file(tmp_path / "absent.jsonl", "openai")
    with pytest.raises(ConfigError, match="unknown export format 'alpaca'"):
        validate_file(tmp_path / "train.jsonl", "alpaca")


def test_merge_keeps_each_record_once_and_says_what_it_dropped(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    a = write_jsonl(mine / "train.jsonl", chat("Back pain?"), chat("Neck pain?"))
    b = write_jsonl(
        theirs / "friend-2026-03-01.jsonl",
        chat("Knee pain?"),
        "DPO PAIRS",
        chat("neck   PAIN?"),  # already in `mine`
        "",
        chat("Hip pain?"),
    )
    exported = write_manifest(mine, "openai")
    out = tmp_path / "merged" / "all.jsonl"

    manifest = merge_files([a, b], out, "openai")

    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    questions = [r["messages"][1]["content"] for r in records]
    assert questions == ["Back pain?", "Neck pain?", "Knee pain?", "Hip pain?"]
    assert manifest["counts"] == {
        "records_written": 4,
        "dropped": {"invalid": 1, "duplicate": 1, "too_long": 0},
        "dropped_by_reason": {"invalid": {"invalid_json": 1}},
    }
    first, second = manifest["inputs"]
    assert (first["kept"], second["kept"]) == (2, 2)
    assert second["dropped"] == {"invalid": 1, "duplicate": 1, "too_long": 0}
    assert second["blank_lines"] == 1
    assert second["problems"][1] == f"line 3: duplicate: same content as {a} line 2"
    assert second["sha256"] == hashlib.sha256(b.read_bytes()).hexdigest()
    # Provenance: how `mine` was exported survives; `theirs` came without a manifest.
    assert first["manifest"]["filters"] == exported["filters"]
    assert first["manifest"]["redactions"] == {"email": 3}
    assert first["manifest"]["counts"] == exported["counts"]
    assert first["manifest"]["sha256_matches"] is True
    assert second["manifest"] is None
    (described,) = manifest["files"]
    assert described["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert described["lines"] == 4
    assert orjson.loads(manifest_path(out).read_bytes()) == manifest
    assert not list(out.parent.glob(".*partial"))


def test_merge_notes_an_input_changed_after_its_export(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "train.jsonl", chat("Back pain?"))
    write_manifest(tmp_path, "openai")
    write_jsonl(a, chat("Back pain?"), chat("Edited in later?"))

    manifest = merge_files([a], tmp_path / "out" / "merged.jsonl")

    assert manifest["inputs"][0]["manifest"]["listed"] is True
    assert manifest["inputs"][0]["manifest"]["sha256_matches"] is False


def test_merge_infers_the_format_from_the_manifests(tmp_path: Path) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for n, folder in enumerate(folders):
        folder.mkdir()
        write_jsonl(folder / "train.jsonl", chat(f"Question {n}?"))
        write_manifest(folder, "openai")
    out = tmp_path / "merged.jsonl"

    manifest = merge_files([f / "train.jsonl" for f in folders], out)

    assert manifest["format"] == "openai"
    assert manifest["counts"]["records_written"] == 2
    # A merged file carries its own manifest, so it can be merged again, format inferred.
    again = merge_files([out, folders[0] / "train.jsonl"], tmp_path / "again.jsonl")
    assert again["counts"]["dropped"]["duplicate"] == 1
    assert again["inputs"][0]["manifest"]["source"] == "merged.manifest.json"
    assert len(again["inputs"][0]["manifest"]["inputs"]) == 2


def test_merge_refuses_to_guess_the_format(tmp_path: Path) -> None:
    sft, dpo, bare = tmp_path / "sft", tmp_path / "dpo", tmp_path / "bare"
    for folder in (sft, dpo, bare):
        folder.mkdir()
    a = write_jsonl(sft / "train.jsonl", chat("Back pain?"))
    b = write_jsonl(dpo / "train.jsonl", pair("Back pain?"))
    c = write_jsonl(bare / "friend.jsonl", chat("Neck pain?"))
    write_manifest(sft, "openai")
    write_manifest(dpo, "dpo")
    out = tmp_path / "merged.jsonl"

    with pytest.raises(ConfigError, match=r"different formats \(.*openai.*dpo\)"):
        merge_files([a, b], out)
    with pytest.raises(ConfigError, match=r"cannot tell the format of .*friend\.jsonl.*--format"):
        merge_files([a, c], out)
    assert not out.exists()
    # Told the format, the merge goes ahead.
    assert merge_files([a, c], out, "openai")["counts"]["records_written"] == 2


def test_merge_never_writes_over_an_input(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", chat("Back pain?"))
    before = a.read_bytes()

    with pytest.raises(ConfigError, match="is also an input"):
        merge_files([a], a, "openai")
    assert a.read_bytes() == before


async def test_merging_two_real_exports(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    """The exporter's own manifests are what a merge reads: format, provenance, hashes."""
    support = await export(store, tmp_path / "support", "openai", models=("support",))
    everything = await export(store, tmp_path / "all", "openai")
    inputs = [r.data_files[n] for r in (support, everything) for n in sorted(r.data_files)]

    manifest = merge_files(inputs, tmp_path / "merged.jsonl")

    assert manifest["format"] == "openai"
    assert manifest["counts"]["records_written"] == len(everything.all_records)
    assert manifest["counts"]["dropped"]["duplicate"] == len(support.all_records) > 0
    assert all(entry["manifest"]["sha256_matches"] for entry in manifest["inputs"])
    assert manifest["inputs"][0]["manifest"]["filters"] == support.manifest["filters"]


def test_validate_knows_openai_tool_and_weight_rules(tmp_path: Path) -> None:
    ask = {"role": "user", "content": "Book me."}
    rows = [
        {
            "messages": [
                ask,
                {"role": "tool", "content": "ok"},
                {"role": "assistant", "content": "Done."},
            ]
        },
        {
            "messages": [
                ask,
                {"role": "assistant", "content": "No.", "weight": 2},
                ask,
                {"role": "assistant", "content": "Yes."},
            ]
        },
        {
            "messages": [ask, {"role": "assistant", "content": "Done."}],
            "tools": [{"type": "function"}],
        },
        {"messages": [ask, {"role": "assistant", "content": "Done.", "weight": 1}]},
    ]
    path = write_jsonl(tmp_path / "train.jsonl", *rows)
    report = validate_file(path, "openai")
    assert [(p.line, p.kind) for p in report.problems] == [
        (1, "missing_tool_call_id"),
        (2, "invalid_weight"),
        (3, "invalid_tool"),
    ]
