"""The anonymizer against the labelled corpus in bench/pii_corpus.jsonl: floors a little below
what `python -m bench.anonymize_recall` measured, so a regression fails here. The corpus holds
cases the rules are known to miss (names on no list with no cue, addresses); the floors are not
100%."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from bench.anonymize_recall import (
    DEFAULT_CORPUS,
    Example,
    Labelled,
    Score,
    load_corpus,
    main,
    occurrences,
    score,
)

# Measured on 1,149 lines, 667 of them negative (issue 17): overall recall 672/679 = 99.0%,
# person 440/445 = 98.9%, 13 false positives (9 of them order numbers read as phones), 8
# negative lines touched. The misses: names on no list with no cue, a date written 4.3.85 (a
# version has that shape), one phone written 22.33.44.55 (an IP has that shape).
RECALL_FLOORS = {
    "overall": 0.985,
    "email": 1.0,
    "national_id": 1.0,
    "card": 1.0,
    "iban": 1.0,
    "ip": 1.0,
    "secret": 1.0,
    "url_credentials": 1.0,
    "bank_account": 1.0,
    "address": 1.0,
    "date": 0.97,
    "phone": 0.96,
    "person": 0.97,
}
MAX_FALSE_POSITIVES = 14
MAX_PERSON_FALSE_POSITIVES = 3
MAX_NEGATIVE_LINES_TOUCHED = 9
# Clinical and technical forms that must come out unchanged, every one of them.
MUST_KEEP = {
    "vertebra",
    "diagnosis_code",
    "dose",
    "time",
    "duration",
    "version",
    "percentage",
    "model",
    "measurement",
    "lab_value",
    "price",
    "year",
    "invalid_checksum",
    "timestamp",
    "uuid",
    # Eponyms, drugs, places used as diagnoses, products and models that read like names.
    "eponym",
    "eponym_or_product",
}
# 8-digit order numbers starting 2-9 have the form of a Norwegian phone number (91234567): with
# no context to tell them apart, the phone rule wins. Measured: 4 of 12 mangled.
MAX_ORDER_NUMBERS_MANGLED = 4


@pytest.fixture(scope="module")
def corpus() -> list[Example]:
    return load_corpus(DEFAULT_CORPUS)


@pytest.fixture(scope="module")
def measured(corpus: list[Example]) -> Score:
    return score(corpus)


def test_the_corpus_is_well_formed(corpus: list[Example]) -> None:
    assert len(corpus) >= 1000
    assert sum(not e.pii for e in corpus) >= len(corpus) / 2, "too few negative lines"
    for line in DEFAULT_CORPUS.read_text(encoding="utf-8").splitlines():
        assert set(json.loads(line)) <= {"text", "pii", "keep"}, line
    for example in corpus:
        listed = Counter(item.value for item in (*example.pii, *example.keep))
        for item in (*example.pii, *example.keep):
            assert re.fullmatch(r"[a-z_]+", item.kind), item
            assert occurrences(item.value, example.text) >= listed[item.value], (item, example)


@pytest.mark.parametrize(("kind", "floor"), RECALL_FLOORS.items())
def test_recall_does_not_regress(measured: Score, kind: str, floor: float) -> None:
    tally = measured.total if kind == "overall" else measured.kinds[kind]
    assert tally.recall is not None and tally.recall >= floor, measured.misses


def test_false_positives_do_not_grow(measured: Score) -> None:
    assert measured.total.false_positives <= MAX_FALSE_POSITIVES, measured.false_positives
    person = measured.kinds["person"].false_positives
    assert person <= MAX_PERSON_FALSE_POSITIVES, measured.false_positives
    assert measured.negative_lines_touched <= MAX_NEGATIVE_LINES_TOUCHED


def test_clinical_and_technical_lookalikes_are_kept(measured: Score) -> None:
    assert measured.lookalikes.keys() >= MUST_KEEP
    mangled = [f for f in measured.mangled if f.kind in MUST_KEEP]
    assert not mangled
    order_numbers = [f for f in measured.mangled if f.kind == "order_number"]
    assert len(order_numbers) <= MAX_ORDER_NUMBERS_MANGLED, order_numbers


# Short OpenAI-style keys (issue 13: one passed the exporter's redactor), labelled as the corpus
# labels lines, with `sk-` words that must stay.
SHORT_KEYS: dict[str, tuple[str, ...]] = {
    "export OPENAI_API_KEY=sk-abc123XYZ": ("sk-abc123XYZ",),
    "Nøkkelen er sk-proj-Qw3rTy9, ikke del den.": ("sk-proj-Qw3rTy9",),
    "my test key sk-9fK2mQ7xLp works, sk-admin-x8Kq2p too": ("sk-9fK2mQ7xLp", "sk-admin-x8Kq2p"),
    "We use sk-learn and sk-estimators, in the sk-SK locale.": (),
    "A task-Abc12345 runner and a desk-B2c3d4e5f6 label.": (),
}


def test_short_openai_keys_are_found_and_sk_words_kept() -> None:
    examples = [
        Example(text, tuple(Labelled("secret", key) for key in keys))
        for text, keys in SHORT_KEYS.items()
    ]
    measured = score(examples)
    assert measured.kinds["secret"].recall == 1.0, measured.misses
    assert measured.total.false_positives == 0, measured.false_positives
    assert measured.negative_lines_touched == 0


def _one(text: str, *pii: tuple[str, str]) -> Score:
    return score([Example(text, tuple(Labelled(kind, value) for kind, value in pii))])


def test_scoring_rules() -> None:
    # Found: gone, under a placeholder of its own kind.
    found = _one("mail per@gmail.com now", ("email", "per@gmail.com"))
    assert (found.kinds["email"].found, found.total.false_positives) == (1, 0)
    # Cut in half: a miss, and the placeholder on it is not a false positive. (A lowercase
    # "jr." ends the name: "Kari Nordmann" is taken, "Olsen" left.)
    cut = _one("Pasient: Kari Nordmann jr. Olsen", ("person", "Kari Nordmann jr. Olsen"))
    assert (cut.kinds["person"].found, cut.kinds["person"].false_positives) == (0, 0)
    assert cut.misses[0].note == "partly"
    # Gone under another kind: a miss for phone and a false positive for ip.
    other = _one("Tlf.: 22.33.44.55", ("phone", "22.33.44.55"))
    assert (other.kinds["phone"].found, other.kinds["ip"].false_positives) == (0, 1)
    # A redaction on a negative line: a labelled field takes whatever is capitalised after it.
    negative = _one("Product Name: Flywheel")
    assert (negative.total.false_positives, negative.negative_lines_touched) == (1, 1)


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["overall"]["labelled"] == sum(len(e.pii) for e in load_corpus(DEFAULT_CORPUS))
