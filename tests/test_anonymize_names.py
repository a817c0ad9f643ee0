"""Person names (issue 17): found after cues, from the name lists and by later mention, in both
languages; never across a line break; never in an eponym, a drug, a place used as a diagnosis,
a product or a model; and in structure (a message's `name`, tool-call arguments, tool results)."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporters.privacy import Privacy
from exporters.selection import Example
from gateway.anonymize import Anonymizer, redact_json
from gateway.config import AnonymizeConfig


@pytest.fixture(scope="module")
def anonymizer() -> Anonymizer:
    return Anonymizer()


NAMED = [
    # Norwegian: labels, roles with and without a colon, address words, signatures, no cue.
    ("Pasient: Kari Nordmann\nTlf: 912 34 567", "Pasient: [PERSON_1]\nTlf: [PHONE]"),
    ("Pasient Kari Nordmann, 47 år", "Pasient [PERSON_1], 47 år"),
    ("Kunden Amir Haddad klager på fakturaen.", "Kunden [PERSON_1] klager på fakturaen."),
    ("Henvist fra fastlege Ingrid Solberg.", "Henvist fra fastlege [PERSON_1]."),
    ("Kjære Anne-Lise,\ntakk for sist.", "Kjære [PERSON_1],\ntakk for sist."),
    ("Hei Ola! Timen er flyttet.", "Hei [PERSON_1]! Timen er flyttet."),
    (
        "Med vennlig hilsen\nTorunn Birkeland\nKiropraktor",
        "Med vennlig hilsen\n[PERSON_1]\nKiropraktor",
    ),
    ("Per ringte i går.", "[PERSON_1] ringte i går."),
    ("pasient per hansen møtte ikke", "pasient [PERSON_1] møtte ikke"),
    ("Snakket med Huda Rahimi om øvelser.", "Snakket med [PERSON_1] om øvelser."),
    ("Fru Olsen kom til kontroll.", "Fru [PERSON_1] kom til kontroll."),
    ("Herr Nilsen ønsker ny time.", "Herr [PERSON_1] ønsker ny time."),
    ("Thanh Nguyen har fått øvelser.", "[PERSON_1] har fått øvelser."),
    ('{"pasient": "Zainab Qureshi"}', '{"pasient": "[PERSON_1]"}'),
    # English.
    ("Seen patient Oluwaseun Adeyemi today.", "Seen patient [PERSON_1] today."),
    ("Dear Emily,\n\nThanks for writing.", "Dear [PERSON_1],\n\nThanks for writing."),
    ("Best regards,\nChidi Okafor\nSupport", "Best regards,\n[PERSON_1]\nSupport"),
    ("Mrs. Clarke reports improvement.", "Mrs. [PERSON_1] reports improvement."),
    ("Signed by John Smith, DC.", "Signed by [PERSON_1], DC."),
    ("My name is Sarah Connor.", "My name is [PERSON_1]."),
    (
        "Please forward to Wei Zhang <wei.zhang@example.org>.",
        "Please forward to [PERSON_1] <[EMAIL]>.",
    ),
    ("Nkechi Eze said the pain is better.", "[PERSON_1] said the pain is better."),
    # An eponym next to the person it is not.
    ("Dr. Thomas Berg tok Thomas test: negativ.", "Dr. [PERSON_1] tok Thomas test: negativ."),
    ("Hi Claude, write to Emily Clarke.", "Hi Claude, write to [PERSON_1]."),
]


@pytest.mark.parametrize(("text", "expected"), NAMED)
def test_names_are_found(anonymizer: Anonymizer, text: str, expected: str) -> None:
    assert anonymizer.redact(text).text == expected


KEPT = [
    "Bell's palsy venstre side, Thomas test negativ.",
    "Wilsons sykdom er utelukket; Parkinsons sykdom, står på Madopar.",
    "Adams forward bend test shows mild scoliosis, Cobb angle 12 degrees.",
    "Gilbert syndrome explains the bilirubin; Barrett's oesophagus on surveillance.",
    "Lyme borreliose etter flåttbitt; Stockholm syndrome was discussed.",
    "Voltaren gel og Paralgin forte, Lyrica 75 mg.",
    "Claude 3.5 Sonnet is better than Gemini 1.5 Pro.",
    "Hi Claude, summarise this note.",
    "Julia 1.10 and Ruby on Rails; Travis CI and a Jenkins pipeline.",
    "text-embedding-ada-002 is old; Ada embeddings are cheap.",
    "Patient Portal login fails; Customer Service is closed.",
    "Per dag: 2 tabletter.",
    "Will this dose be enough? May I take it with food?",
    "Martina Hansens Hospital opererte kneet.",
    "Bor i Karl Johans gate, henvist til St. Olavs hospital.",
    "I'm Norwegian.",
    "Patient: Male, 52 y/o.",
    "Best regards,\nThe Support Team",
    "Mvh\nResepsjonen",
    "Attn: Accounts Payable",
    "Release Notes For Version 2.3.1",
]


@pytest.mark.parametrize("text", KEPT)
def test_look_alikes_are_kept(anonymizer: Anonymizer, text: str) -> None:
    result = anonymizer.redact(text)
    assert result.text == text
    assert not result.counts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Invoice to 12 Penny Lane, Liverpool.", "Invoice to [ADDRESS]."),
        ("Bor i Karl Johans gate 1, 0154 Oslo.", "Bor i [ADDRESS]."),
    ],
)
def test_a_street_named_after_someone_is_an_address(
    anonymizer: Anonymizer, text: str, expected: str
) -> None:
    result = anonymizer.redact(text)
    assert (result.text, result.counts["person"]) == (expected, 0)


@pytest.mark.parametrize(
    "cue", ["Pasient:", "Navn:", "Dr.", "Kjære", "Hei", "Patient:", "Mrs", "pasient"]
)
def test_no_name_runs_across_a_line_break(anonymizer: Anonymizer, cue: str) -> None:
    text = f"{cue} Kari Nordmann\nTlf: 912 34 567\nLege Ola Hansen"
    out = anonymizer.redact(text).text
    assert out.split("\n")[1] == "Tlf: [PHONE]"
    assert out.count("\n") == 2


def test_a_name_found_once_is_found_again_by_first_name(anonymizer: Anonymizer) -> None:
    people: dict[str, int] = {}
    prompt = anonymizer.redact("Pasient: Kari Nordmann, 47 år. Dr. Lie henviste.", people)
    answer = anonymizer.redact("Kari bør fortsette øvelsene, sier Lie.", people)
    assert prompt.text == "Pasient: [PERSON_1], 47 år. Dr. [PERSON_2] henviste."
    assert answer.text == "[PERSON_1] bør fortsette øvelsene, sier [PERSON_2]."


def test_a_first_name_that_is_a_word_counts_only_where_a_name_would(
    anonymizer: Anonymizer,
) -> None:
    text = "Pasient: Per Hansen\nPer dag: 2 tabletter. Per ringte i går."
    assert anonymizer.redact(text).text == (
        "Pasient: [PERSON_1]\nPer dag: 2 tabletter. [PERSON_1] ringte i går."
    )
    text = "Follow-up: Rose Patel is well. Rose will return in May."
    assert anonymizer.redact(text).text == (
        "Follow-up: [PERSON_1] is well. [PERSON_1] will return in May."
    )


def test_redact_name_gives_identifier_safe_pseudonyms(anonymizer: Anonymizer) -> None:
    people: dict[str, int] = {}
    name = anonymizer.redact_name("kari_nordmann", people, identifier=True)
    text = anonymizer.redact("Hei, jeg heter Kari Nordmann.", people)
    assert (name.text, name.counts["person"]) == ("PERSON_1", 1)
    assert text.text == "Hei, jeg heter [PERSON_1]."


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"name": "Ola Hansen", "phone": "912 34 567", "reason": "L4-L5"},
            {"name": "[PERSON_1]", "phone": "[PHONE]", "reason": "L4-L5"},
        ),
        # A person field whatever the value looks like; `name` only when it reads as a name.
        ({"full_name": "nkechi eze"}, {"full_name": "[PERSON_1]"}),
        ({"name": "get_weather", "city": "Oslo"}, {"name": "get_weather", "city": "Oslo"}),
        ({"name": "Oslo"}, {"name": "Oslo"}),
        ({"name": "Ibuprofen", "dose": "400 mg"}, {"name": "Ibuprofen", "dose": "400 mg"}),
        # JSON inside a string, as tool-call arguments carry it.
        (
            {"arguments": json.dumps({"patient": "Oluwaseun Adeyemi"})},
            {"arguments": json.dumps({"patient": "[PERSON_1]"})},
        ),
    ],
)
def test_person_fields_in_json(
    anonymizer: Anonymizer, document: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert orjson.loads(redact_json(anonymizer, json.dumps(document))) == expected


def test_json_without_personal_data_keeps_its_bytes(anonymizer: Anonymizer) -> None:
    text = '{\n  "city":   "Oslo",\n  "n": 3\n}'
    assert (
        redact_json(anonymizer, json.dumps({"arguments": text}))
        == orjson.dumps({"arguments": text}).decode()
    )


def test_long_keys_in_tool_results_are_not_kept(anonymizer: Anonymizer) -> None:
    """The keys of JSON in a tool result are the caller's data, of any length and all
    distinct; the key cache once kept 4,096 of them twice over, however long (4 MB here)."""
    result = json.dumps({f"{n:02d} " + "k" * 50_000: "ok" for n in range(40)})
    tracemalloc.start()
    try:
        redact_json(anonymizer, json.dumps({"role": "tool", "content": result}))
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1_000_000


def _chat_record() -> dict[str, Any]:
    arguments = json.dumps({"name": "Kari Nordmann", "phone": "912 34 567"})
    result = json.dumps({"patient": "Oluwaseun Adeyemi", "time": "10:00"})
    return {
        "endpoint": "chat/completions",
        "request": {
            "model": "support",
            "messages": [
                {"role": "user", "name": "kari_nordmann", "content": "Book meg inn, takk."},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "book_appointment", "arguments": arguments},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": result},
            ],
        },
        "response": {
            "id": "r1",
            "choices": [{"message": {"role": "assistant", "content": "Done, Kari."}}],
        },
        "tags": {},
    }


def test_the_exporter_redacts_names_in_structure() -> None:
    example = Example(_chat_record(), {})
    privacy = Privacy(AnonymizeConfig())
    privacy.apply(example)
    messages = example.record["request"]["messages"]
    assert messages[0]["name"] == "PERSON_1"  # OpenAI's name field takes [A-Za-z0-9_-] only
    call = messages[1]["tool_calls"][0]["function"]
    assert call["name"] == "book_appointment"
    assert json.loads(call["arguments"]) == {"name": "[PERSON_1]", "phone": "[PHONE]"}
    assert json.loads(messages[2]["content"]) == {"patient": "[PERSON_2]", "time": "10:00"}
    answer = example.record["response"]["choices"][0]["message"]["content"]
    assert answer == "Done, [PERSON_1]."
    assert privacy.redactions["person"] == 4
    assert "kari" not in orjson.dumps(example.record).decode().lower()


@pytest.mark.parametrize("fmt", ["openai", "jsonl", "csv"])
async def test_no_name_survives_an_export(tmp_path: Path, fmt: str) -> None:
    """Issue 17: `kari_nordmann` in a message's `name` survived in openai, csv and jsonl."""
    from datetime import UTC, datetime

    from exporters.run import ExportRequest, run_export
    from gateway.records.feedback import Feedback
    from gateway.records.interaction import Interaction
    from gateway.store import open_store

    record = _chat_record()
    store = await open_store(f"sqlite:///{tmp_path}/flywheel.db")
    try:
        await store.migrate()
        now = datetime(2026, 1, 5, tzinfo=UTC)
        await store.insert_interactions(
            [
                Interaction(
                    id="i1",
                    created_at=now,
                    endpoint="chat/completions",
                    requested_model="support",
                    request=record["request"],
                    response=record["response"],
                )
            ]
        )
        await store.insert_feedback([Feedback("f1", "i1", now, thumbs="up")])
        manifest = await run_export(store, AnonymizeConfig(), ExportRequest(fmt), tmp_path / "out")
    finally:
        await store.close()
    written = [p for p in (tmp_path / "out").iterdir() if p.name != "manifest.json"]
    assert manifest["counts"]["records_written"] == 1
    text = "".join(p.read_text(encoding="utf-8") for p in written).lower()
    for personal in ("kari", "nordmann", "oluwaseun", "adeyemi", "912 34 567"):
        assert personal not in text, (personal, fmt)
