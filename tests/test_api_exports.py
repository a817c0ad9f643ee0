"""A conversation held over the Responses API or the Anthropic SDK becomes a training example like
any other (issue 15, item 3): recorded through the live gateway with the official SDKs, judged
with `POST /v1/feedback`, then found in every export format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic

from exporters.formats import FORMATS
from gateway.records.headers import INTERACTION_HEADER
from gateway.store import open_store
from tests.exporters.conftest import export
from tests.fake_upstream import FakeUpstream, expected_content
from tests.test_api_surfaces import _config

COUGH = "The patient reports a dry cough since Monday."
FEVER = "The patient reports fever and chills."
CORRECTED = "Fever with chills; check temperature twice daily."
# Formats that hold only preference pairs, which a correction makes and a thumbs-up does not.
PAIRS_ONLY = {"openai-preference", "dpo"}


async def test_responses_and_messages_conversations_reach_every_export_format(
    database_url: str, upstream: FakeUpstream, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    gateway = await make_gateway(_config(upstream, database_url))
    raw = await gateway.client().responses.with_raw_response.create(
        model="chat-only", instructions="You are a triage nurse.", input=COUGH
    )
    liked = raw.headers[INTERACTION_HEADER]
    async with anthropic.AsyncAnthropic(
        base_url=gateway.base_url, api_key="unused", max_retries=0
    ) as claude:
        answered = await claude.messages.with_raw_response.create(
            model="claude",
            max_tokens=100,
            system="You are a triage nurse.",
            messages=[{"role": "user", "content": FEVER}],
        )
    corrected = answered.headers[INTERACTION_HEADER]
    feedback = [
        {"interaction_id": liked, "thumbs": "up", "outcome": "accepted"},
        {"interaction_id": corrected, "outcome": "modified", "correction": CORRECTED},
    ]
    async with aiohttp.ClientSession() as session:
        posted = await session.post(f"{gateway.api_url}/feedback", json=feedback)
        assert posted.status < 300, await posted.text()
    await gateway.row(liked)
    await gateway.row(corrected)

    store = await open_store(database_url)
    try:
        for fmt in FORMATS:
            exported = await export(store, tmp_path / fmt, fmt)
            text = "\n".join(path.read_text() for path in exported.files.values())
            if fmt == "analytics":  # totals only, grouped by endpoint among others
                assert '"responses"' in text and '"messages"' in text
                continue
            assert CORRECTED in text, fmt
            if fmt not in PAIRS_ONLY:
                assert COUGH in text and FEVER in text, fmt
            if fmt not in PAIRS_ONLY | {"analytics", "csv", "jsonl"}:
                assert expected_content(COUGH) in text, fmt  # the accepted answer teaches
    finally:
        await store.close()
