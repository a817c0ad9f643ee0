"""The Scanner finds what `pattern.finditer` finds, match for match and group for group, for
every pattern the anonymizer searches with and for patterns an operator may configure: it only
changes where `re` looks, never what it finds (gateway/anonymize/scan.py)."""

from __future__ import annotations

import random
import re

import pytest

from bench.anonymize_recall import DEFAULT_CORPUS, load_corpus
from gateway.anonymize import cues
from gateway.anonymize.patterns import ADDRESS_SHAPE, BUILTIN_RULES, DATE_SHAPE, PHONE_SHAPE
from gateway.anonymize.scan import Scanner

# Characters that meet the edge cases: case folding outside ASCII (the Kelvin sign is a `k`
# under IGNORECASE, the long s an `s`, dotted and dotless i), digits of other scripts, word
# boundaries, separators the rules use.
ALPHABET = list(
    "aAkKsSiIoOmMjJ\u212a\u017f\u0130\u0131\u0663 \t\n0123456789+-()./:@<>=_'\u2019"
    "\u00e6\u00f8\u00e5\u00c6\u00d8\u00c5\u00e9\u00c9McOB"
)
CONFIGURED = [
    re.compile(r"\b(?:kari|ola nordmann)\b", re.IGNORECASE),  # `anonymize.words`
    re.compile(r"(?i)\bcase[ -]?(\d+)"),
    re.compile(r"(?:ticket|sak)\s*#?(\d{4,})"),
    re.compile(r"[A-Z]{2}-\d{3}|\d{3}-[A-Z]{2}"),
    re.compile(r"(?<=ID:)\s*\w+"),
    re.compile(r"x*y"),  # one character at least, but may begin with an optional one
]
PATTERNS = [rule.pattern for rule in BUILTIN_RULES] + [
    cues.SEQUENCE_RE,
    cues.DISPLAY_NAME_RE,  # zero-width: every match is empty
    cues.SIGNATURE_RE,
    cues.MENTION_WORD_RE,
    cues.TOKEN_RE,
    cues.LOWER_PAIR_RE,
    DATE_SHAPE,
    PHONE_SHAPE,
    ADDRESS_SHAPE,
    *CONFIGURED,
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    corpus = [example.text for example in load_corpus(DEFAULT_CORPUS)]
    rng = random.Random(21)
    fuzz = ["".join(rng.choices(ALPHABET, k=rng.randint(0, 80))) for _ in range(4000)]
    return [*corpus, *(t.upper() for t in corpus), *(t.lower() for t in corpus), *fuzz]


def found(pattern: re.Pattern[str], text: str) -> list[tuple[object, ...]]:
    return [(m.start(), m.end(), m.groups()) for m in pattern.finditer(text)]


def scanned(scanner: Scanner, text: str) -> list[tuple[object, ...]]:
    groups = range(1, scanner.pattern.groups + 1)
    return [(s, e, tuple(m.group(i) for i in groups)) for s, e, m in scanner.finditer(text)]


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.pattern[:40])
def test_the_scanner_finds_what_finditer_finds(pattern: re.Pattern[str], texts: list[str]) -> None:
    scanner = Scanner(pattern)
    for text in texts:
        assert scanned(scanner, text) == found(pattern, text), text
        assert scanner.holds(text) == (pattern.search(text) is not None), text


def test_the_anonymizers_costly_patterns_are_searched_the_fast_way() -> None:
    # The point of the Scanner: these opened on a lookbehind or `\b` and were tried everywhere.
    for pattern in (*(rule.pattern for rule in BUILTIN_RULES[13:]), cues.SEQUENCE_RE):
        assert Scanner(pattern).fast is not None, pattern.pattern[:40]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"a*", "may match empty and not"),
        (r"\b\d{4}([. ])\d{2}\1\d{5}\b", "a backreference cannot sit in the lookbehind"),
        (r".x", "any character can begin it"),
        (r"[^a]b", "a negated class"),
    ],
)
def test_a_pattern_it_cannot_read_is_searched_the_plain_way(pattern: str, why: str) -> None:
    scanner = Scanner(re.compile(pattern))
    assert scanner.fast is None, why
    assert scanned(scanner, "aab 1234.56.78901 xx b") == found(
        scanner.pattern, "aab 1234.56.78901 xx b"
    )


def test_ignorecase_letters_match_their_unicode_folds() -> None:
    # (?i)k matches the Kelvin sign and (?i)s the long s: a first-character set of ASCII
    # letters only would skip them.
    for pattern, text in ((r"\bkari\b", "\u212aari"), (r"sak \d+", "\u017fak 12")):
        compiled = re.compile(pattern, re.IGNORECASE)  # as `anonymize.words` compiles
        scanner = Scanner(compiled)
        assert scanner.fast is not None
        assert found(compiled, text) != []
        assert scanned(scanner, text) == found(compiled, text)
