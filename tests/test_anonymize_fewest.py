"""`scan.fewest` reads from a pattern the fewest digits and marks any match of it holds, and
the Anonymizer skips a rule for a text that holds fewer. It must be a lower bound, never a
guess: a count one too high would skip a match and leave personal data in a dataset."""

from __future__ import annotations

import random
import re

import pytest

from bench.anonymize_recall import DEFAULT_CORPUS, load_corpus
from gateway.anonymize import Anonymizer
from gateway.anonymize.patterns import BUILTIN_RULES
from gateway.anonymize.scan import DIGITS, fewest
from tests.test_anonymize_cache import plain
from tests.test_anonymize_scan import ALPHABET, PATTERNS

DIGIT = re.compile(r"\d")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    corpus = [example.text for example in load_corpus(DEFAULT_CORPUS)]
    rng = random.Random(26)
    fuzz = ["".join(rng.choices(ALPHABET, k=rng.randint(0, 80))) for _ in range(4000)]
    short = [f"Case {n}: please reply to p{n}@x.no" for n in range(0, 100_000, 997)]
    return [*corpus, *fuzz, *short, "192.168.1.20", "fe80:0:0:0:0:0:0:1", "123-45-6789"]


def held(what: str, text: str) -> int:
    return len(DIGIT.findall(text)) if what == DIGITS else text.count(what)


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.pattern[:40])
def test_every_match_holds_at_least_what_fewest_says(
    pattern: re.Pattern[str], texts: list[str]
) -> None:
    least = fewest(pattern)
    for text in texts:
        for match in pattern.finditer(text):
            for what, needed in least:
                assert held(what, match.group()) >= needed, (what, match.group())


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\b\d(?:[ .-]?\d){12,18}\b", ((DIGITS, 13),)),  # a card
        (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", ((DIGITS, 4), (".", 3))),  # IPv4
        (r"\d{4}([. ])\d{2}\1\d{5}", ((DIGITS, 11),)),  # a backreference counts nothing
        (r"(?:a|\d\d)x", ()),  # a branch counts its fewest
        (r"(?=\d\d)\d", ((DIGITS, 1),)),  # a lookahead counts nothing
        (r"[0-9a]\d?", ()),  # a class with anything but digits counts nothing
        (r"[.]\.|@", ()),
        (r"x{0}\d", ((DIGITS, 1),)),
    ],
)
def test_what_fewest_reads(pattern: str, expected: tuple[tuple[str, int], ...]) -> None:
    assert fewest(re.compile(pattern)) == expected


def test_the_builtin_rules_that_counts_skip() -> None:
    least = {rule.pattern.pattern: dict(fewest(rule.pattern)) for rule in BUILTIN_RULES}
    card = next(r for r in BUILTIN_RULES if r.kind == "card")
    assert least[card.pattern.pattern] == {DIGITS: 13}
    assert [dict(fewest(r.pattern)) for r in BUILTIN_RULES if r.kind == "secret"] == [{}, {}]


def test_short_texts_near_a_count_redact_as_the_plain_path(texts: list[str]) -> None:
    # Each holds exactly what a rule needs, or one less; and the short turns of an export.
    near = [
        "card 4111 1111 1111 1111",
        "card 4111 1111 1111 111",
        "from 10.0.0.12 today",
        "version 10.0.12 today",
        "ssn 123-45-6789",
        "ssn 123-45-678",
        "redis://:hunter22@cache:6379/0",
        "fe80:0:0:0:0:0:0:1 and fe80::1:2:3",
    ]
    anonymizer, reference = Anonymizer(), plain()
    for text in near + texts[-30:]:
        people: dict[str, int] = {"kari": 1}
        expected = reference.redact(text, dict(people))
        assert anonymizer.redact(text, people) == expected, text
    assert anonymizer.redact("from 10.0.0.12 today").text == "from [IP] today"
