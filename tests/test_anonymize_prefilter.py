"""The pre-filter never leaves out a rule that matches, nor a place where a match begins: for
every pattern the anonymizer runs and patterns an operator may configure, on the corpus and on
fuzz of the characters where `re` and Hyperscan differ, within Latin-1 and beyond it
(gateway/anonymize/prefilter.py). Redaction with it is what it was without."""

from __future__ import annotations

import pickle
import random
import re
import sys

import pytest

from bench.anonymize_recall import DEFAULT_CORPUS, load_corpus
from gateway.anonymize import Anonymizer, cues, prefilter
from gateway.anonymize.names import _words_at, cue_words_at
from gateway.anonymize.patterns import BUILTIN_RULES
from gateway.anonymize.prefilter import Prefilter, translate
from gateway.anonymize.scan import Scanner
from tests.test_anonymize_scan import CONFIGURED

# Latin-1 letters `re` counts as word characters, digits and letters where Hyperscan's own
# `\w`, `\d` and case do not (ª, ², µ, æ/Æ, ÿ, ß), the rules' separators, and the shapes they
# look for, jumbled.
ALPHABET = list(
    " \t\n0123456789+-()./:@<>=_'\"#%,;?aAkKsSxXoOnNgGbBeE"
    "\u00aa\u00b2\u00b3\u00b5\u00b9\u00ba\u00bc\u00df\u00e6\u00c6\u00f8\u00d8\u00e5\u00c5\u00e9\u00c9\u00ff\u00a0"
)
# Beyond Latin-1, scanned as `?`: case folds into ASCII (the Kelvin sign, the long s, dotted and
# dotless i), digits and spaces of other scripts, the punctuation answers are full of, emoji,
# other scripts, a lone surrogate.
BEYOND = list(
    "\u212a\u017f\u0130\u0131\u0663\u2003\u3000\u2019\u201c\u2013\u2014\u2026"
    "\U0001f600\u03a3\u03c3\u03c2\u0416\u4e2d\u0178\u1e9e\ud800"
)
SNIPPETS = [
    "NO93 8601 1117 947",
    "GB82 WEST 1234 5698 7654 32",
    "4111 1111 1111 1111",
    "010190 12345",
    "123-45-6789",
    "1234.56.78903",
    "Kontonummer: 12345678903",
    "192.168.1.20",
    "fe80::1:2:3:4",
    "Storgata 12, 0155 Oslo",
    "221B Baker Street, London",
    "+47 912 34 567",
    "0047 22 33 44 55",
    "(555) 123-4567",
    "14.03.85",
    "3 June 2023",
    "June 3rd, 2023",
    "2024-08-06",
    "kari@x.no",
    "password=Tr0ub4dor&3",
    "sk-abc123XYZabc",
    "AKIA1234567890ABCDEF",
    "redis://:pw@host",
    "Bearer abcdefghijklmnopqrst",
    "Ærlig",
    "øst",
    "Pasient:",
    # Matched only through characters beyond Latin-1: digits of another script, case folds.
    "\u0660\u0661\u0660\u0661\u0669\u0660 \u0661\u0662\u0663\u0664\u0665",
    "\u0661\u0669\u0662.\u0661\u0666\u0668.\u0661.\u0662\u0660",
    "\u212aari",
    "ca\u017fe 12",
]
CONFIGURED_RULES = [
    *CONFIGURED,
    re.compile(r"(\w)\1{2}"),  # a backreference: its group's pattern stands in for it
    re.compile(r"(?i:ÆRE)\s+\d"),  # case folding of Latin-1 letters is `re`'s own
    re.compile(r"(?:Ω|ω)\d"),  # only characters beyond Latin-1 begin a match
    re.compile(r"(x)?(?(1)y|z)"),  # a conditional: not translated, runs on every text
]
PATTERNS = [rule.pattern for rule in BUILTIN_RULES] + CONFIGURED_RULES


@pytest.fixture(scope="module")
def texts() -> list[str]:
    corpus = [example.text for example in load_corpus(DEFAULT_CORPUS)]
    rng = random.Random(29)
    fuzz = ["".join(rng.choices(ALPHABET, k=rng.randint(0, 60))) for _ in range(6000)]
    beyond = ["".join(rng.choices(ALPHABET + BEYOND, k=rng.randint(0, 60))) for _ in range(6000)]
    shapes = [
        " ".join(rng.choice(SNIPPETS + ALPHABET) for _ in range(rng.randint(1, 6)))
        for _ in range(6000)
    ]
    jumbled = ["".join(rng.sample(s, len(s))) for s in rng.choices(SNIPPETS, k=3000)]
    cased = [*(t.upper() for t in corpus), *(t.lower() for t in corpus)]
    return [*corpus, *cased, *fuzz, *beyond, *shapes, *jumbled]


def test_no_rule_with_a_match_is_left_out(texts: list[str]) -> None:
    prefilter = Prefilter(PATTERNS)
    skipped = matched = within = 0
    for text in texts:
        candidates = prefilter.candidates(text)
        assert candidates is not None
        for index, pattern in enumerate(PATTERNS):
            if pattern.search(text) is None:
                skipped += index not in candidates
                continue
            assert index in candidates, (pattern.pattern[:60], text)
            matched += 1
            spans = candidates[index]
            if spans is not None:
                # Tried only within its spans, the pattern finds what it finds everywhere.
                expected = [(m.start(), m.end(), m.groups()) for m in pattern.finditer(text)]
                found = Scanner(pattern).finditer_within(text, spans)
                assert [(s, e, m.groups()) for s, e, m in found] == expected, (pattern, text)
                within += 1
    # And it does leave rules out: most of them, on most texts.
    assert skipped > len(texts) * len(PATTERNS) // 2
    assert within > matched * 0.9  # and nearly every rule that matches, in its spans alone


def test_a_rule_is_tried_only_where_a_match_may_begin() -> None:
    date = next(rule.pattern for rule in BUILTIN_RULES if rule.kind == "date")
    text = "Sett 3 ganger, 12 mg x 2. Kontroll 14.03.2025 kl 10, rom 4."
    candidates = Prefilter([date]).candidates(text)
    assert candidates is not None
    spans = candidates[0] or []
    where = text.index("14.03.2025")
    # At the date ("14.03.20", "14.03.2025"), not at every digit, as the rule alone tries.
    assert spans and all(where <= start < end <= where + 10 for start, end in spans)


def test_a_rule_with_too_many_places_searches_the_whole_text() -> None:
    card = next(rule.pattern for rule in BUILTIN_RULES if rule.kind == "card")
    digits = "4111 " * (prefilter.MAX_SPANS // 2)  # a span ends at each digit past the 13th
    candidates = Prefilter([card]).candidates(digits)
    assert candidates == {0: None}  # anywhere: kept spans would grow with the text
    one = Prefilter([card]).candidates("Kort 4111 1111 1111 1111, ellers ingenting.")
    assert one is not None and {start for start, _ in one[0] or ()} == {5}


def test_it_finds_every_word_a_cue_begins_with(texts: list[str]) -> None:
    rules, one_pass = Anonymizer()._scanners()
    rng = random.Random(31)
    # Cue words in any case, at either end, beside marks, digits and letters beyond Latin-1
    # (the Kelvin sign lowers to k, İ to two characters, ß stays).
    words = [*cues.CUES_BY_WORD, "KJÆRE", "pAsIeNt", "\u212aunden", "İ", "Ærlig", "x"]
    marks = ["", ":", "'", "é", "\u0130", "ß", "1", "_", "-", "\u03a3", "\n"]
    odd = [
        " ".join(rng.choice(words) + rng.choice(marks) for _ in range(rng.randint(1, 8)))
        for _ in range(6000)
    ]
    looked_up = every_word = 0
    for text in texts + odd:
        starts = cue_words_at(one_pass.candidates(text), len(rules))
        assert starts is not None
        found = [(w.start(), w.group()) for w in _words_at(text, starts)]
        expected = [(w.start(), w.group()) for w in cues.WORD_RE.finditer(text)]
        assert _cue_words(found) == _cue_words(expected), text
        looked_up, every_word = looked_up + len(found), every_word + len(expected)
    assert looked_up < every_word // 2  # and it leaves most others out
    many = " i" * prefilter.MAX_SPANS + " i"
    assert cue_words_at(one_pass.candidates(many), len(rules)) is None  # every word, then


def _cue_words(words: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(start, word) for start, word in words if word.lower() in cues.CUES_BY_WORD]


def test_what_it_cannot_read_runs_on_every_text() -> None:
    prefilter = Prefilter(PATTERNS)
    conditional = len(PATTERNS) - 1
    assert prefilter.candidates(" - ") == {conditional: None}  # None: anywhere
    assert (prefilter.candidates("plain words") or {})[conditional] is None
    # Beyond Latin-1, a character is scanned as `?`: what can match one is not left out.
    omega = PATTERNS.index(CONFIGURED_RULES[-2])
    assert (prefilter.candidates("Ω3") or {})[omega] == [(0, 2)]
    ascii_only = prefilter.candidates("O3")
    assert ascii_only is not None and omega not in ascii_only


def test_the_translation_is_res_own_character_sets() -> None:
    # `\w` and `\d` as `re` reads them over Latin-1: ª and µ are letters, ² is a word character
    # but no digit; (?i) folds æ and Æ, not ASCII-only.
    [word] = translate(r"\w")
    assert "\\xaa" in word and "\\xb2" in word
    assert translate(r"\d", re.ASCII) == ["[0-9]"]
    assert translate(r"(?i)æ") == ["[\\xc6\\xe6]"]
    assert translate(r"\bfoo(?=bar)(?<!x)") == ["foo"]  # assertions left out
    # And `?`, which every character beyond Latin-1 is scanned as, where `re` matches one: `\d`
    # matches ٣, (?i)k the Kelvin sign.
    assert translate(r"\d") == ["[0-9\\x3f]"]
    assert translate(r"(?i)k") == ["[\\x3fKk]"]
    assert translate(r"k.") == ["k[\\x00-\\x09\\x0b-\\xff]"]
    assert translate(r"Ω") == ["\\x3f"]
    assert translate(r"[^\s\S]") == []  # nothing matches


def test_redaction_with_it_is_the_same_as_without(
    texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = texts[:2000] + texts[-4000:]
    filtered = Anonymizer()
    with_it = [filtered.redact(text, {}) for text in rows]
    assert filtered._scanners()[1].candidates("text") is not None  # it was in use
    monkeypatch.setattr(Prefilter, "candidates", lambda self, text: None)
    plain = Anonymizer()
    assert [plain.redact(text, {}) for text in rows] == with_it


@pytest.mark.parametrize(
    ("pattern", "flags", "text"),
    [
        # A group that sets ASCII or UNICODE drops the other, as `re` combines them.
        (r"(?a:(?u:\w))", 0, "é"),
        (r"(?a:(?u:\s))", 0, "\xa0"),
        (r"(?u:Æ)", re.ASCII | re.IGNORECASE, "æ"),
        (r"(?a)(?iu:é)", 0, "É"),
        # Under IGNORECASE a reference matches its group's text in any case.
        (r"(a)(?i:\1)", 0, "aA"),
        (r"(?i)(?-i:(a))\1", 0, "aA"),
        (r"(?i)(?-i:(é))\1", 0, "éÉ"),
    ],
)
def test_a_second_readers_counterexamples(pattern: str, flags: int, text: str) -> None:
    compiled = re.compile(pattern, flags)
    assert compiled.search(text) is not None
    candidates = Prefilter([compiled]).candidates(text)
    assert candidates is not None and 0 in candidates


def test_a_pattern_hyperscan_refuses_runs_on_every_text() -> None:
    too_large = re.compile("(?:a{1000}){1000}")  # Hyperscan: "Resource limit exceeded"
    prefilter = Prefilter([too_large, re.compile("kari")])
    assert prefilter.candidates("no one") == {0: None}
    assert prefilter.candidates("kari") == {0: None, 1: [(0, 4)]}  # the others still filtered


def test_repeats_nested_deep_are_left_to_re() -> None:
    # Hyperscan would take minutes to compile this one (`re` compiles it at once): it runs on
    # every text, found or not.
    deep = re.compile("(?:" * 30 + "a+" + ")+" * 30)
    assert Prefilter([deep]).candidates("b") == {0: None}


def test_an_anonymizer_that_has_redacted_still_pickles() -> None:
    anonymizer = Anonymizer()
    text = "Ring Kari Nordmann på 912 34 567, kari@example.no."
    before = anonymizer.redact(text, {})
    copy = pickle.loads(pickle.dumps(anonymizer))
    assert copy.redact(text, {}) == before
    assert copy._scanners()[1].candidates(text) is not None


def test_compiled_in_a_child_or_in_this_process_it_answers_the_same(
    texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = [rule.pattern for rule in BUILTIN_RULES]
    prefilter._scanner_of.cache_clear()
    in_child = Prefilter(rules)
    answers = [in_child.candidates(text) for text in texts[:3000]]

    prefilter._scanner_of.cache_clear()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # no child can start
    here = Prefilter(rules)
    assert [here.candidates(text) for text in texts[:3000]] == answers
    assert any(answers)
    prefilter._scanner_of.cache_clear()  # the next test compiles the usual way


def test_a_long_word_list_is_filtered_too() -> None:
    # Hyperscan takes no expression of 16,000 characters or more: a list of 1,000 names, as
    # `anonymize.words` makes it into one rule, goes in one expression per word.
    names = [f"{chr(97 + number % 26)}kunde{number:04d}" for number in range(1000)]
    listed = Anonymizer(words={"customer": names})
    rules, prefilter = listed._scanners()
    words = next(i for i, (rule, *_) in enumerate(rules) if rule.kind == "customer")
    pattern = rules[words][0].pattern
    assert sum(map(len, translate(pattern.pattern, pattern.flags))) > 16_000
    nothing, listed_one = (prefilter.candidates(t) for t in ("Nothing here.", "Ring LKUNDE0999."))
    assert nothing is not None and words not in nothing
    assert listed_one is not None and words in listed_one
    assert listed.redact("Ring LKUNDE0999.", {}).text == "Ring [CUSTOMER]."
