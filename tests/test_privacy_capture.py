"""Redaction at capture (`capture.redact`), through the real gateway on SQLite and PostgreSQL.

The client gets the real answer; the row stored (or spooled, with the database down) holds no
raw personal value, checked byte for byte; names keep one pseudonym across the interaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.anonymize import Anonymizer
from gateway.config import CaptureRedactConfig, parse_config
from gateway.errors import ConfigError
from gateway.ids import uuid7
from gateway.privacy.capture import REDACTED_FLAG, CaptureRedactor
from gateway.recorder import Recorder
from gateway.records.interaction import Interaction
from gateway.spool import Spool
from gateway.store import open_store
from tests.conftest import base_config
from tests.fake_upstream import FakeUpstream
from tests.harness import GatewayHarness

# Found by the pattern rules (and the title cue for the name), whatever the name detector does.
RAW = {
    "email": "kari.nordmann@example.no",
    "phone": "+47 912 34 567",
    "card": "4111 1111 1111 1111",
    "key": "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx",
    "name": "Ola Hansen",
}
PROMPT = (
    f"Dr. {RAW['name']} asked me to write to {RAW['email']} or call {RAW['phone']}; card "
    f"{RAW['card']}, key {RAW['key']}. Please confirm to {RAW['name'].split()[0]}."
)


def _leaks(data: bytes) -> list[str]:
    """The raw values found in `data`, as UTF-8 or as JSON escapes them."""
    found = []
    for kind, value in RAW.items():
        if value.encode() in data or orjson.dumps(value)[1:-1] in data:
            found.append(kind)
    return found


def _config(upstream: FakeUpstream, database_url: str, spool: Path, redact: Any) -> dict:
    config = base_config(upstream, database_url, spool_dir=str(spool))
    config["capture"].update(redact=redact, flush_interval=0)
    return config


async def _chat(gateway: GatewayHarness, model: str = "fake-chat", **headers: str) -> tuple:
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"Flywheel-User": "patient-17", **headers},
    )
    return raw.headers["Flywheel-Interaction-Id"], raw.parse()


async def test_the_row_is_stored_redacted_and_the_client_gets_the_real_answer(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    gateway = await make_gateway(_config(upstream, database_url, tmp_path / "spool", True))
    interaction_id, completion = await _chat(gateway)

    assert completion.choices[0].message.content == "Hello! You said: " + PROMPT
    row = await gateway.row(interaction_id)
    stored = orjson.dumps(row, default=str)
    assert _leaks(stored) == []
    assert row["user"] == "patient-17"  # ids stay: a forget looks them up
    assert REDACTED_FLAG in row["quality_flags"]
    asked = row["request"]["messages"][0]["content"]
    answered = row["response"]["choices"][0]["message"]["content"]
    for placeholder in ("[EMAIL]", "[PHONE]", "[CARD]", "[SECRET]", "[PERSON_1]"):
        assert placeholder in asked and placeholder in answered
    # One pseudonym table per interaction: Ola is the same person in prompt and answer.
    assert "[PERSON_2]" not in asked + answered
    assert answered == "Hello! You said: " + asked


async def test_with_the_database_down_the_spool_holds_no_raw_value(
    unreachable_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    gateway = await make_gateway(_config(upstream, unreachable_url, spool, True))
    ids = [(await _chat(gateway))[0] for _ in range(3)]

    def spooled() -> bytes:
        return b"".join(path.read_bytes() for path in spool.rglob("*") if path.is_file())

    for _ in range(200):
        if all(i.encode() in spooled() for i in ids):
            break
        await asyncio.sleep(0.05)
    data = spooled()
    assert all(i.encode() in data for i in ids)
    assert _leaks(data) == []
    assert REDACTED_FLAG.encode() in data


@pytest.mark.parametrize(
    ("redact", "model", "headers", "redacted"),
    [
        ({"models": ["fake-chat"]}, "fake-chat", {}, True),
        ({"models": ["fake-chat"]}, "gpt-4o-mini", {}, False),
        ({"tags": {"phi": "yes"}}, "gpt-4o-mini", {"Flywheel-Tags": "phi=yes"}, True),
        ({"tags": {"phi": "yes"}}, "gpt-4o-mini", {"Flywheel-Tags": "phi=no"}, False),
        (False, "fake-chat", {}, False),
    ],
)
async def test_the_policy_picks_rows_by_model_or_tag(
    sqlite_url: str,
    upstream: FakeUpstream,
    make_gateway: Callable[..., Any],
    tmp_path: Path,
    redact: Any,
    model: str,
    headers: dict[str, str],
    redacted: bool,
) -> None:
    gateway = await make_gateway(_config(upstream, sqlite_url, tmp_path / "spool", redact))
    interaction_id, _ = await _chat(gateway, model, **headers)
    row = await gateway.row(interaction_id)
    assert (_leaks(orjson.dumps(row, default=str)) == []) is redacted
    assert (REDACTED_FLAG in row["quality_flags"]) is redacted


def _row(content: str) -> Interaction:
    return Interaction(
        id=uuid7(),
        created_at=datetime.now(UTC),
        endpoint="chat/completions",
        requested_model="fake-chat",
        request={"messages": [{"role": "user", "content": content}]},
    )


async def test_rows_spooled_from_a_full_queue_and_at_shutdown_are_redacted(
    tmp_path: Path,
) -> None:
    """The paths that write before the writer task sees a row: a full queue, and shutdown."""
    (tmp_path / "not-a-folder").write_text("")  # the database cannot be opened: all spools
    store = await open_store(f"sqlite:///{tmp_path}/not-a-folder/db.sqlite", connect=False)
    redactor = CaptureRedactor(CaptureRedactConfig(all=True), Anonymizer())
    recorder = Recorder(store, Spool(tmp_path / "spool"), queue_size=2, redactor=redactor)
    for _ in range(5):
        recorder.record(_row(PROMPT))  # 2 queued, 3 straight to the spool
    assert recorder.spooled == 3
    recorder.start()
    await recorder.close(drain_seconds=0)  # cancelled at once: the queued rows are spooled
    await store.close()
    data = b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("*.jsonl"))
    assert data.count(b"\n") >= 5
    assert _leaks(data) == []


def test_redaction_is_applied_once_and_leaves_the_original_alone() -> None:
    redactor = CaptureRedactor(CaptureRedactConfig(all=True), Anonymizer())
    original = _row(PROMPT)
    once = redactor.batch([original])[0]
    assert original.request == {"messages": [{"role": "user", "content": PROMPT}]}
    assert redactor.batch([once])[0] is once  # flagged: a replayed row is not redone
    assert once.quality_flags == [REDACTED_FLAG]


@pytest.mark.parametrize(
    ("redact", "problem"),
    [
        ({"models": ["no-such-model"]}, "capture.redact.models[0] names unknown model"),
        ({"modles": ["fake-chat"]}, "capture.redact.modles is not a known key"),
        ({"all": "yes"}, "capture.redact.all must be bool"),
    ],
)
def test_a_redact_policy_that_would_miss_rows_is_refused(
    upstream: FakeUpstream, sqlite_url: str, redact: Any, problem: str
) -> None:
    config = base_config(upstream, sqlite_url)
    config["capture"]["redact"] = redact
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_config(config, source="test.yaml")
