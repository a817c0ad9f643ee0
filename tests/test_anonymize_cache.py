"""The span cache and the rules' pre-checks change what redaction costs, never what it writes:
on the labelled corpus, cached and pre-checked results equal those of the plain path (every
rule tried on every text, nothing kept) byte for byte, counts and pseudonym numbers included."""

from __future__ import annotations

import dataclasses
import gc
import random
import re
import tracemalloc
from array import array
from collections.abc import Callable

import orjson
import pytest

from bench.anonymize_recall import DEFAULT_CORPUS, load_corpus
from gateway.anonymize import Anonymizer, Redaction
from gateway.anonymize.engine import (
    SPAN_ENTRY_BYTES,
    ResultCache,
    SpanCache,
    _kept_cost,
    _pack,
    _unpack,
)
from gateway.anonymize.names import later_mentions
from gateway.anonymize.patterns import BUILTIN_RULES, DIGIT, Rule


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [example.text for example in load_corpus(DEFAULT_CORPUS)]


class Plain(Anonymizer):
    """The path before the shortcuts, kept here as the reference: every rule on every text,
    then names, then later mentions, nothing kept between texts."""

    def redact(self, text: str, people: dict[str, int] | None = None) -> Redaction:
        spans: list[tuple[int, int, str, str]] = []
        taken = bytearray(len(text))
        for rule in self.rules:
            for match in rule.pattern.finditer(text):  # plain `re`, not the Scanner
                start, end, value = _plain_part(match, rule.group)
                if start == end or any(taken[start:end]):
                    continue
                if rule.valid is not None and not rule.valid(value):
                    continue
                taken[start:end] = b"\x01" * (end - start)
                spans.append((start, end, rule.kind, value))
        spans += [(n.start, n.end, "person", n.text) for n in self.names.find(text, taken)]
        people = {} if people is None else people
        for _, _, kind, value in sorted(spans):
            if kind == "person":
                self._remember(people, value)
        spans += [
            (n.start, n.end, "person", n.text)
            for n in later_mentions(text, people, taken, self.lexicon)
        ]
        return self._replace(text, sorted(spans), people)


def _plain_part(match: re.Match[str], group: int) -> tuple[int, int, str]:
    if group == -1:
        for index in range(1, (match.lastindex or 0) + 1):
            if match.group(index) is not None:
                return match.start(index), match.end(index), match.group(index)
        return match.start(), match.start(), ""
    return match.start(group), match.end(group), match.group(group)


def plain() -> Anonymizer:
    anonymizer = Plain()
    anonymizer.rules = tuple(dataclasses.replace(rule, needs=None) for rule in anonymizer.rules)
    return anonymizer


def examples(texts: list[str], count: int) -> list[list[str]]:
    """Examples of several texts sharing one pseudonym table, drawn with repeats, as an
    export's rows repeat their system prompts: the same text meets different tables."""
    rng = random.Random(5)
    pool = texts + ["\n".join(rng.sample(texts, 4)) for _ in range(200)]
    return [rng.sample(pool, rng.randint(1, 4)) for _ in range(count)]


def redact_all(anonymizer: Anonymizer, rows: list[list[str]]) -> list[tuple[str, dict]]:
    out = []
    for row in rows:
        people: dict[str, int] = {}
        for text in row:
            result = anonymizer.redact(text, people)
            out.append((result.text, dict(result.counts)))
        out.append(("", dict(people)))
    return out


def test_each_line_of_the_corpus_is_redacted_as_by_the_plain_path(texts: list[str]) -> None:
    cached = Anonymizer(cache_size=10_000)
    expected = [plain().redact(text) for text in texts]
    for _ in range(2):  # the first pass fills the cache, the second reads it
        assert [cached.redact(text) for text in texts] == expected
    assert cached.spans.hits >= len(set(texts))


def test_people_are_numbered_from_one_in_the_order_they_are_met(texts: list[str]) -> None:
    """Each new person is the highest number so far plus one (a name's parts share its
    number): in the table, numbers rise in insertion order, from 1, without a gap. The plain
    reference numbers with the engine's own `_remember`, so this checks the numbering itself."""
    anonymizer = Anonymizer(cache_size=100_000)
    numbered = 0
    for row in examples(texts, 500):
        people: dict[str, int] = {}
        for text in row:
            anonymizer.redact(text, people)
        numbers = list(people.values())
        assert numbers == sorted(numbers)
        assert set(numbers) == set(range(1, len(set(numbers)) + 1))
        numbered += bool(numbers)
    assert numbered > 100  # most examples name someone


@pytest.mark.parametrize("cache_size", [0, 50, 100_000])
def test_examples_are_redacted_as_by_the_plain_path(texts: list[str], cache_size: int) -> None:
    """Names found in one text are mentioned in the next, whatever the cache holds; a small
    cache that keeps evicting gives the same result as a large one."""
    rows = examples(texts, 1_500)
    cached = Anonymizer(cache_size=cache_size)
    assert redact_all(cached, rows) == redact_all(plain(), rows)
    if cache_size:
        assert cached.spans.hits > 0
        assert len(cached.spans._spans) <= cache_size


@pytest.mark.parametrize("cache_size", [0, 100])
def test_a_name_found_earlier_is_redacted_in_a_text_with_nothing_else(cache_size: int) -> None:
    rows = [["Pasient: Oluwaseun Adeyemi.", "Oluwaseun kom tilbake.", "Oluwaseun kom tilbake."]] * 2
    cached = Anonymizer(cache_size=cache_size)
    assert redact_all(cached, rows) == redact_all(plain(), rows)
    assert "Oluwaseun" not in "".join(text for text, _ in redact_all(cached, rows))


def test_short_texts_without_a_capital_are_redacted_as_by_the_plain_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Roles, finish reasons and lowercase notes skip the span cache once seen clean; those
    that hold something (a lowercase name after a cue, a number) never do, and a table that
    fills up starts over (at two texts here)."""
    from gateway.anonymize import engine

    monkeypatch.setattr(engine, "CLEAN_TEXTS", 2)
    short = ["assistant", "user", "stop", "pasient per hansen", "ring 22 33 44 55", "kari kom"]
    rows = [["Pasient: Kari Nordmann.", *short], short, ["Kari Nordmann ringte.", *short]] * 3
    cached = Anonymizer(cache_size=100)
    assert redact_all(cached, rows) == redact_all(plain(), rows)
    assert len(cached._clean) <= 2


def test_the_cache_keeps_at_most_its_size_and_drops_the_least_recently_used() -> None:
    cache = SpanCache(2)
    a, b, c = (cache.key(text) for text in ("a", "b", "c"))
    cache.put(a, ())
    cache.put(b, ((0, 1, "email", "b"),))
    assert cache.get(b, "b") == ((0, 1, "email", "b"),)
    assert cache.get(a, "a") == ()  # a is now the most recently used
    cache.put(c, ())
    assert cache.get(b, "b") is None
    assert cache.get(a, "a") == () and cache.get(c, "c") == ()


def test_the_cache_keeps_at_most_its_bytes_however_many_texts_it_may_hold() -> None:
    """Distinct texts full of personal data would fill a count-bound cache with their spans:
    the byte bound drops the least recently used first, and counts a replaced entry once."""
    span = (0, 1, "email", "t")
    per_span = 3 * array("I").itemsize
    cache = SpanCache(1_000, budget=SPAN_ENTRY_BYTES * 3 + per_span * 6)
    texts = [f"text {n}" for n in range(4)]
    keys = [cache.key(text) for text in texts]
    for key in keys[:3]:
        cache.put(key, (span, span))
    cache.put(keys[0], (span, span))  # the same text again: no second charge
    assert all(cache.get(key, text) is not None for key, text in zip(keys[:3], texts, strict=False))
    assert cache.get(keys[0], texts[0]) is not None  # keys[1] is now the least recently used
    cache.put(keys[3], (span,))
    assert cache.get(keys[1], texts[1]) is None  # the least recently used went
    assert cache.bytes <= cache.budget
    assert all(cache.get(keys[n], texts[n]) == (span,) * (1 if n == 3 else 2) for n in (0, 2, 3))


def test_an_entry_costs_its_spans_offsets_not_their_values() -> None:
    """A span's value is the text between its offsets, cut again on the way out: a 100 KB
    token costs its entry no more than a short one, and comes back whole. Kept as tuples of
    their values, a 10 KB prompt's spans took ~41 KB, and the cache held too few of an
    export's long prompts to find any again (issue 21)."""
    cache = SpanCache(1_000, budget=1_000_000)
    texts = [f"Bearer {n:03d}" + "t" * 100_000 for n in range(100)]
    for text in texts:
        cache.put(cache.key(text), ((7, len(text), "secret", text[7:]),))
    assert cache.bytes == 100 * (SPAN_ENTRY_BYTES + 3 * array("I").itemsize)
    assert cache.get(cache.key(texts[5]), texts[5]) == ((7, len(texts[5]), "secret", texts[5][7:]),)


def test_spans_come_back_from_the_cache_as_they_were_found(texts: list[str]) -> None:
    anonymizer = Anonymizer(cache_size=1_000)
    for text in texts:
        found = anonymizer._find(text)
        key = anonymizer.spans.key(text)
        anonymizer.spans.put(key, found)
        assert anonymizer.spans.get(key, text) == found


def test_every_builtin_rule_match_holds_what_its_pre_check_asks_for(texts: list[str]) -> None:
    """A pre-check that a match can lack would skip personal data: each rule's matches on the
    corpus (and on texts made to match) contain its pre-check."""
    samples = [
        *texts,
        "sk-proj-abcdef1234 AKIAABCDEFGHIJKLMNOP hf_" + "a" * 30,
        "Bearer abcdefghijklmnopqrstu",
        "AWS wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "redis://:pw@host password=hunter22",
        "fe80::1:2:3:4 and 2001:db8:0:0:0:0:2:1",
    ]
    matched = set()
    for rule in BUILTIN_RULES:
        assert rule.needs is not None, rule.kind
        for text in samples:
            for match in rule.pattern.finditer(text):
                matched.add(rule.pattern.pattern)
                # Seven characters back: `(?<=Bearer )` holds its mark before the match.
                window = text[max(0, match.start() - 7) : match.end()]
                assert rule.needs.search(window), (rule.kind, match.group())
    assert len(matched) == len(BUILTIN_RULES)


def test_a_unicode_digit_is_a_digit_for_the_pre_check() -> None:
    # The rules' \d matches Arabic-Indic digits; a [0-9] pre-check would skip the rule.
    assert DIGIT.search("\u0663")


def test_a_redaction_is_reused_only_with_the_same_pseudonym_table() -> None:
    anonymizer = Anonymizer(cache_size=100)
    # Long enough to be remembered (REMEMBERED_FROM_CHARS).
    note = "Pasient: Kari Nordmann, tlf 912 34 567. Kari ringte i dag." + " Vondt i ryggen." * 16
    first: dict[str, int] = {}
    assert anonymizer.redact(note, first).text.startswith(
        "Pasient: [PERSON_1], tlf [PHONE]. [PERSON_1] ringte i dag."
    )
    again: dict[str, int] = {}
    reused = anonymizer.redact(note, again)
    assert reused.text.startswith("Pasient: [PERSON_1], tlf [PHONE]. [PERSON_1] ringte i dag.")
    assert reused.counts == {"person": 2, "phone": 1}
    assert again == first  # the table is grown as the first time
    assert len(anonymizer.results._results) == 1
    # Another person came first in this example: the same note numbers Kari 2, not 1.
    other = {"ola hansen": 1, "ola": 1, "hansen": 1}
    assert anonymizer.redact(note, other).text.startswith("Pasient: [PERSON_2], tlf [PHONE]")
    assert other["kari nordmann"] == 2
    assert len(anonymizer.results._results) == 2
    assert Plain().redact(note, {"ola hansen": 1, "ola": 1, "hansen": 1}).text == (
        anonymizer.redact(note, {"ola hansen": 1, "ola": 1, "hansen": 1}).text
    )


def test_the_result_cache_keeps_at_most_its_size_in_bytes() -> None:
    entry = _kept_cost(_pack(("x" * 9, (), ())))
    cache = ResultCache(entry * 100)
    for n in range(100):
        cache.put(bytes([n]), ("x" * 9, (), ()))
    assert cache.bytes == entry * 100 and len(cache._results) == 100
    for n in range(100, 200):
        cache.put(bytes([n]), ("y" * 9, (), ()))
    assert cache.bytes <= entry * 100 and cache.get(bytes([0])) is None  # the oldest went first
    assert cache.get(bytes([199])) == ("y" * 9, (), ())
    cache.put(b"long", ("z" * 10, (), ()))  # over a hundredth of the size: not kept
    assert cache.get(b"long") is None


def _patients(anonymizer: Anonymizer, count: int) -> str:
    lexicon = anonymizer.lexicon
    given = sorted(n for n in lexicon.given if n.isalpha() and n not in lexicon.common_words)
    family = sorted(
        n for n in lexicon.family if n.isalpha() and n not in lexicon.family_common_words
    )
    return "\n".join(
        f"Pasient: {given[n]} {family[n]}, rom {n}. Smerter \u2013 «verre»." for n in range(count)
    )


# Each of every kind the built-in rules find, three times over.
EVERY_KIND = (
    "Pasient: Kari Nordmann, kari@x.no, tlf 912 34 567, Storgata 1, 0155 Oslo, født 01.02.1980, "
    "konto NO93 8601 1117 947, kort 4111 1111 1111 1111, fnr 01028012345, IP 10.0.0.1. "
) * 3


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(lambda anonymizer: _patients(anonymizer, 20), id="kept as it is"),
        pytest.param(lambda anonymizer: _patients(anonymizer, 100), id="kept as UTF-8"),
        pytest.param(lambda anonymizer: EVERY_KIND, id="many kinds"),
    ],
)
def test_the_result_cache_holds_no_more_memory_than_its_size(
    text: Callable[[Anonymizer], str],
) -> None:
    """What the cache counts is what it holds, as tracemalloc measures it: a list of patients
    adds a pseudonym per name and part, a text beyond Latin-1 takes more than a byte a
    character, and each kind found adds a count (counted by the redacted text's length alone,
    such results took ten times the cache's size)."""
    anonymizer = Anonymizer(cache_size=100)
    people: dict[str, int] = {}
    result = anonymizer.redact(text(anonymizer), people)
    added = tuple(people.items())
    assert added and result.counts
    kept = (result.text, tuple(result.counts.items()), added)
    cache = ResultCache(_kept_cost(_pack(kept)) * 100)
    gc.collect()
    tracemalloc.start()
    try:
        for n in range(200):
            # Each its own copy, as each redaction makes one, written as an export writes it
            # (orjson leaves a UTF-8 copy on a string it writes).
            redacted = result.text.encode().decode()
            counts = tuple((kind, count) for kind, count in result.counts.items())
            cache.put(n.to_bytes(16, "big"), (redacted, counts, added))
            orjson.dumps(redacted)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cache._results) == 100 and held <= cache.size * 1.05


def test_a_kept_result_comes_back_as_it_went_in() -> None:
    anonymizer = Anonymizer(cache_size=100)
    people: dict[str, int] = {}
    # A lone surrogate, a check mark beyond Latin-1, a Fraktur U beyond the BMP.
    text = _patients(anonymizer, 5) + " \ud800 \u2713 \U0001d518"
    result = anonymizer.redact(text, people)
    kept = (result.text, tuple(result.counts.items()), tuple(people.items()))
    assert _unpack(_pack(kept)) == kept
    assert _unpack(_pack(("no one", (), ()))) == ("no one", (), ())
    long = (kept[0] * 100, kept[1], kept[2])  # kept as UTF-8
    assert isinstance(_pack(long)[0], bytes) and _unpack(_pack(long)) == long


def test_a_long_text_given_back_from_utf8_is_redacted_as_by_the_plain_path() -> None:
    anonymizer = Anonymizer(cache_size=100)
    note = _patients(anonymizer, 100) + " Kari ringte."
    first = anonymizer.redact(note, {})
    [(kept, _)] = anonymizer.results._results.values()
    assert isinstance(kept[0], bytes)  # long and beyond ASCII: kept as UTF-8
    people: dict[str, int] = {}
    assert anonymizer.redact(note, people) == first == Plain().redact(note, {})
    assert len(people) >= 200


def test_a_result_naming_someone_with_nul_is_redacted_each_time() -> None:
    """Names are kept joined by NUL: one that holds NUL (only an operator's rule of kind
    `person` can find one) is not kept, and still redacted the same."""
    rule = Rule("person", re.compile(r"Agent\x00\d+"))
    anonymizer = Anonymizer(extra_rules=[rule], cache_size=100)
    text = "Ticket handled by Agent\x0042 and Agent\x0043. " * 20
    first = anonymizer.redact(text, {})
    assert first.text.startswith("Ticket handled by [PERSON_1] and [PERSON_2].")
    assert not anonymizer.results._results
    assert anonymizer.redact(text, {}) == first
