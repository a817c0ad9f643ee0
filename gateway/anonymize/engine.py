"""The Anonymizer: pattern rules first, then names, then later mentions of those names, with
one pseudonym table per example so `[PERSON_1]` is the same person in prompt and answer.

Finding spans is the cost. The rules' and names' spans depend on the text alone; later mentions
on the text and the names the example holds so far; only the numbering depends on the rest of
the pseudonym table. With `cache_size`, each distinct text's spans are found once and kept
under the text's hash, and its later mentions under the hash of the text and those names (an
export's system prompts, few-shot blocks and tool schemas repeat across most rows); numbering
runs every time, so a cached result is the uncached one byte for byte.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sys
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.anonymize import cues
from gateway.anonymize.lexicon import Lexicon, load_lexicon
from gateway.anonymize.names import NameFinder, cue_word_patterns, cue_words_at, later_mentions
from gateway.anonymize.patterns import BUILTIN_RULES, DEFAULT_PLACEHOLDERS, Rule
from gateway.anonymize.prefilter import Prefilter
from gateway.anonymize.scan import DIGITS, Scanner, fewest, scanner

if TYPE_CHECKING:
    from gateway.config import AnonymizeConfig

_IDENTIFIER_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_DIGIT = re.compile(r"\d")  # what `\d` in a rule matches, so counted as the rule counts it
# (start, end, kind, value) of one piece of personal data in a text.
Span = tuple[int, int, str, str]


@dataclass(frozen=True)
class Redaction:
    text: str
    counts: Counter[str]


class Anonymizer:
    @classmethod
    def from_config(cls, config: AnonymizeConfig, cache_size: int = 0) -> Anonymizer:
        return cls(
            config.placeholders,
            extra_rules=[Rule(kind, re.compile(pattern)) for kind, pattern in config.rules],
            words=config.words,
            cache_size=cache_size,
        )

    def __init__(
        self,
        placeholders: Mapping[str, str] = DEFAULT_PLACEHOLDERS,
        extra_rules: Iterable[Rule] = (),
        words: Mapping[str, Iterable[str]] | None = None,
        lexicon: Lexicon | None = None,
        cache_size: int = 0,
    ):
        self.placeholders = {**DEFAULT_PLACEHOLDERS, **placeholders}
        rules = list(extra_rules)
        for kind, listed in (words or {}).items():
            alternatives = "|".join(re.escape(w) for w in sorted(listed, key=len, reverse=True))
            if alternatives:
                rules.append(Rule(kind, re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)))
        # Configured rules and word lists come first: they are the operator's own knowledge.
        self.rules = (*rules, *BUILTIN_RULES)
        self.lexicon = lexicon or load_lexicon()
        self.names = NameFinder(self.lexicon)
        self.spans = SpanCache(cache_size)
        self.results = ResultCache(RESULT_BYTES if cache_size else 0)
        self._scanned: tuple[Rule, ...] | None = None
        self._scan_table: tuple[ScanTable, Prefilter] | None = None
        # Short texts with nothing to find and no capital letter, so no later mention either:
        # their redaction is the text itself whoever the example holds. A body's roles and
        # finish reasons ("assistant", "stop") are half the strings an export redacts, and a
        # set lookup skips the digest, the span cache and the Counter (issue 21).
        self._clean: set[str] = set()
        self._clean_size = CLEAN_TEXTS if cache_size else 0

    def redact(self, text: str, people: dict[str, int] | None = None) -> Redaction:
        """`text` with personal data replaced. Pass one `people` dict, empty at first, for
        all the texts of one example, so a name is the same `[PERSON_n]` in the prompt and
        the answer."""
        result = self._redacted(text, people)
        return Redaction(text, Counter()) if result is None else result

    def redact_text(self, text: str, people: dict[str, int], counts: Counter[str]) -> str:
        """`redact(text, people).text` (`people` empty at first, as for `redact`), what it
        removed added to `counts`: an export's way, for every string of every body. A text
        that comes back as it is (a role, a system prompt, a turn with nothing in it: seven of
        the ten strings of a row of bench.export_scale) makes no Redaction and no Counter,
        ~2 µs each (issue 21)."""
        result = self._redacted(text, people)
        if result is None:
            return text
        if result.counts:
            counts.update(result.counts)
        return result.text

    def _redacted(self, text: str, people: dict[str, int] | None) -> Redaction | None:
        """`redact`'s work; None when `text` comes back as it is, with nothing counted."""
        if text in self._clean:
            return None
        key = self.spans.key(text)
        found = self.spans.get(key, text)
        if found is None:
            found = self._find(text)
            self.spans.put(key, found)
            if not found and len(text) <= CLEAN_CHARS and cues.CAPITAL_RE.search(text) is None:
                if len(self._clean) >= self._clean_size:
                    self._clean.clear()  # bounded; refilled by the texts that recur
                if self._clean_size:
                    self._clean.add(text)
        if not found and not people:
            return None  # nothing here, and no one to mention later
        people = {} if people is None else people
        if found and self.results.size and len(text) >= REMEMBERED_FROM_CHARS:
            return self._remembered(key, text, people, found)
        return self._redact(key, text, people, found)

    def _remembered(
        self, key: bytes, text: str, people: dict[str, int], found: tuple[Span, ...]
    ) -> Redaction:
        """`_redact`, remembered: its result depends on the text and the pseudonym table it
        meets, and a repeated prompt meets the same table (most often an empty one) row
        after row."""
        state = "\x00".join(f"{name}\x01{number}" for name, number in sorted(people.items()))
        memo = hashlib.blake2b(key + state.encode("utf-8", "surrogatepass"), digest_size=16)
        digest = memo.digest()
        kept = self.results.get(digest)
        if kept is not None:
            redacted, counts, added = kept
            people.update(added)
            return Redaction(redacted, Counter(dict(counts)))
        before = len(people)
        # `found` is not empty: there is something to replace.
        result = self._redact(key, text, people, found) or Redaction(text, Counter())
        # The table only grows, in order: what this text added is its last entries.
        added = tuple(itertools.islice(people.items(), before, None))
        self.results.put(digest, (result.text, tuple(result.counts.items()), added))
        return result

    def _redact(
        self, key: bytes, text: str, people: dict[str, int], found: tuple[Span, ...]
    ) -> Redaction | None:
        """`text` with `found` and the later mentions replaced; None when it holds neither."""
        for _, _, kind, value in found:  # in order: people are numbered as they appear
            if kind == "person":
                self._remember(people, value)
        # A name once recognised is personal wherever it appears in the example, in full or
        # as one of its parts ("Kari").
        mentions = self._mentions(key, text, people, found)
        if not mentions:
            return self._replace(text, found, people) if found else None
        return self._replace(text, sorted((*found, *mentions)), people)

    def _mentions(
        self, key: bytes, text: str, people: dict[str, int], found: tuple[Span, ...]
    ) -> tuple[Span, ...]:
        """Later mentions of `people` in `text`, outside the spans `found` in it. They depend
        on the text and on which names the example holds, not on their numbers: a repeated
        prompt meets the same names (most often its own) row after row, so they are kept
        under both."""
        if not people or cues.CAPITAL_RE.search(text) is None:
            return ()  # a mention begins with a capital (cues.MENTION_WORD_RE)
        # A mention is a name (or part) whose casefold is in the text's casefold: most texts
        # (a system prompt, a case number) hold none, which this tells cheaper than a lookup.
        folded = text.casefold()
        if not any(name in folded for name in people):
            return ()
        if self.spans.size:
            names = "\x00".join(sorted(people)).encode("utf-8", "surrogatepass")
            key = hashlib.blake2b(key + names, digest_size=16).digest()
        mentions = self.spans.get(key, text)
        if mentions is None:
            taken = bytearray(len(text))
            for start, end, _, _ in found:
                taken[start:end] = b"\x01" * (end - start)
            mentions = tuple(
                (n.start, n.end, "person", n.text)
                for n in later_mentions(text, people, taken, self.lexicon)
            )
            self.spans.put(key, mentions)
        return mentions

    def _find(self, text: str) -> tuple[Span, ...]:
        """The spans of `text` that depend on nothing else, rules' then names', in the order
        they stand in the text. `taken` marks exactly these spans, so it can be rebuilt from
        them."""
        spans: list[Span] = []
        taken = bytearray(len(text))
        present: dict[Scanner, bool] = {}
        counted: dict[str, int] = {}  # each count made when a rule first asks for it
        rules, prefilter = self._scanners()
        # Which rules can match, and where, from one pass over the text (prefilter.py); None
        # when it cannot tell, and each rule's own pre-checks decide.
        candidates = prefilter.candidates(text)
        for index, (rule, scan, needs, least) in enumerate(rules):
            if candidates is None:
                if not _may_match(text, needs, least, counted, present):
                    continue
                matches = scan.finditer(text)
            elif index not in candidates:
                continue
            else:
                where = candidates[index]  # None: anywhere
                matches = scan.finditer_within(text, where) if where else scan.finditer(text)
            for found, found_end, match in matches:
                start, end, value = _part(text, found, found_end, match, rule.group)
                if start == end or any(taken[start:end]):
                    continue
                if rule.valid is not None and not rule.valid(value):
                    continue
                taken[start:end] = b"\x01" * (end - start)
                spans.append((start, end, rule.kind, value))
        cue_words = cue_words_at(candidates, len(rules))
        names = self.names.find(text, taken, cue_words)
        spans += [(n.start, n.end, "person", n.text) for n in names]
        return tuple(sorted(spans))

    def _scanners(self) -> tuple[ScanTable, Prefilter]:
        """Each rule with the Scanners of its pattern and pre-check and the fewest digits and
        marks a match holds (scan.fewest), looked up once: a pattern's hash covers its
        compiled code, too slow to take per rule and text. And the pre-filter of the rules, which
        numbers them as this table does, and after them of the words cues begin with.

        Counts are the cheapest pre-check of all: one count per text answers for every rule,
        and a short text with a case or order number holds too few digits for a card (13), a
        national id (11) or an account (11), too few dots for an IPv4 address (3), too few
        colons for a URL with a password (2) (issue 21: on an export's short unique turns,
        "Case 12345: please reply to p12345@x.no", the rules take 18% fewer instructions,
        172k -> 141k a text under valgrind)."""
        if self._scan_table is None or self._scanned is not self.rules:
            # Made on first use, again if rules are replaced.
            table = tuple(
                (
                    rule,
                    scanner(rule.pattern),
                    None if rule.needs is None else scanner(rule.needs),
                    fewest(rule.pattern),
                )
                for rule in self.rules
            )
            # The rules, then the words cues begin with (names.cue_word_patterns): one pass.
            patterns = [*(rule.pattern for rule in self.rules), *cue_word_patterns()]
            self._scan_table = table, Prefilter(patterns)
            self._scanned = self.rules
        return self._scan_table

    def redact_name(
        self, value: str, people: dict[str, int], identifier: bool = False
    ) -> Redaction:
        """A value known to be a person's name (a message's `name`, a `full_name` field), whole.
        `identifier` gives the placeholder without brackets (`PERSON_1`), for fields that only
        take [A-Za-z0-9_-], as OpenAI's message `name` does."""
        key = " ".join(re.split(r"[\s_.]+", value.strip()))
        if not key:
            return Redaction(value, Counter())
        template = self.placeholders["person"]
        text = template.replace("{n}", str(self._remember(people, key)))
        if identifier:
            text = _IDENTIFIER_UNSAFE.sub("", text)
        return Redaction(text, Counter(person=1))

    def _replace(self, text: str, spans: Iterable[Span], people: dict[str, int]) -> Redaction:
        """`text` with `spans` (in the order they stand, none overlapping) replaced."""
        counts: Counter[str] = Counter()
        out, last = [], 0
        for start, end, kind, value in spans:
            out.append(text[last:start])
            template = self.placeholders.get(kind)
            if template is None:  # a configured rule's kind with no placeholder of its own
                template = f"[{kind.upper()}]"
            if "{n}" in template:
                template = template.replace("{n}", str(self._remember(people, value)))
            out.append(template)
            counts[kind] += 1
            last = end
        out.append(text[last:])
        return Redaction("".join(out), counts)

    def _remember(self, people: dict[str, int], name: str) -> int:
        """The pseudonym number of `name`, given a new one (with its parts) if it has none.
        A part that is also a word ("Per") is remembered too; `later_mentions` decides where
        it stands for the person ("Per ringte") and where it does not ("Per dag"). `people` is
        a table this class filled from empty, so its numbers rise in insertion order."""
        key = name.casefold()
        number = people.get(key)
        if number is None:
            # Numbers are given in order, so the newest entry holds the highest: a 10 KB
            # prompt naming 60 people took the highest of the whole table for each (issue 21).
            number = people[key] = next(reversed(people.values()), 0) + 1
            for part in name.split():
                if len(part) >= 3 and part.capitalize() not in self.lexicon.not_names:
                    people.setdefault(part.casefold(), number)
        return number


class SpanCache:
    """The spans found in each distinct text, least recently used first out, at most `size`
    texts and `SPAN_CACHE_BYTES` as `_cost` counts them. Keyed by a 128-bit BLAKE2b digest of
    the text rather than the text itself: an entry costs its spans (most often none), not a copy
    of a 10 KB prompt, and two texts share a digest with odds far below those of a flipped bit
    in memory. `size` 0 keeps nothing.

    An entry keeps each span as three numbers in an array (start, end, kind), 12 bytes, and
    `get` cuts the values from the text again: a span's value is always the text between its
    offsets. As tuples of their values, the 130 spans of a 10 KB prompt took ~41 KB, so the
    budget held 585 of the export bench's 2,000 such prompts, used in turn: none was ever found
    again, and every row paid ~12.7 ms to scan its prompt anew (issue 21).

    The byte bound keeps an export's memory flat when every text is distinct and holds personal
    data: by count alone, 100,000 texts of ~3 spans took ~1.6 KB each, 150 MB by 20,000 rows."""

    def __init__(self, size: int, budget: int = 0):
        self.size = size
        self.budget = budget or SPAN_CACHE_BYTES
        self.bytes = 0
        self.hits = self.misses = 0
        self._spans: OrderedDict[bytes, array[int]] = OrderedDict()
        self._kinds: list[str] = []  # a span's kind, by its number in an entry
        self._kind_numbers: dict[str, int] = {}

    def key(self, text: str) -> bytes:
        if not self.size:
            return b""
        # surrogatepass: a lone surrogate in a stored body must not stop the export.
        data = text.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, digest_size=16).digest()

    def get(self, key: bytes, text: str) -> tuple[Span, ...] | None:
        """The spans kept for `text` (whose key is `key`), or None."""
        if not self.size:
            return None
        packed = self._spans.get(key)
        if packed is None:
            self.misses += 1
            return None
        self.hits += 1
        self._spans.move_to_end(key)
        if not packed:
            return ()
        kinds, numbers = self._kinds, iter(packed)
        return tuple(
            (start, end, kinds[kind], text[start:end])
            for start, end, kind in zip(numbers, numbers, numbers, strict=True)
        )

    def put(self, key: bytes, spans: tuple[Span, ...]) -> None:
        if not self.size:
            return
        replaced = self._spans.get(key)
        if replaced is not None:
            self.bytes -= _cost(replaced)
        packed = array("I")
        for start, end, kind, _ in spans:
            packed.extend((start, end, self._kind_number(kind)))
        self._spans[key] = packed
        self.bytes += _cost(packed)
        while len(self._spans) > self.size or self.bytes > self.budget:
            _, dropped = self._spans.popitem(last=False)
            self.bytes -= _cost(dropped)

    def _kind_number(self, kind: str) -> int:
        number = self._kind_numbers.get(kind)
        if number is None:  # the rules' kinds and "person": a handful
            number = self._kind_numbers[kind] = len(self._kinds)
            self._kinds.append(kind)
        return number


def _cost(packed: array[int]) -> int:
    """Bytes an entry takes, about: the digest, its place and the array, then 12 a span."""
    return SPAN_ENTRY_BYTES + packed.itemsize * len(packed)


# SpanCache's bound in bytes, and what it counts per entry besides its spans' numbers (the
# digest, the ordered dict's slot and the array's header): tracemalloc measured 235 bytes for an
# entry without spans, 251 with one. (200 until 2026-12-01: 100,000 entries took ~25 MB.) The
# bound is what a one-process export of a million rows leaves for it under issue 21's 150 MB,
# beside the dedup keys (16 MB), the results and content_key's normal forms (stand-ins since
# 2026-12-01): at 24 MB it peaked at 143.5 MiB (150.5 MB). ~80,000 texts; the 2,000 10 KB
# prompts of the export bench take 4 MB.
SPAN_CACHE_BYTES = 20_000_000
SPAN_ENTRY_BYTES = 240
# Clean short texts kept as themselves (see `Anonymizer._clean`): at most this many, this long,
# so at most ~3 MB even if every one took four bytes a character.
CLEAN_TEXTS = 10_000
CLEAN_CHARS = 64
# What `ResultCache` may hold with a span cache, in bytes as `_kept_cost` counts them (what
# tracemalloc measures, within a few percent): room for ~5,000 prompts of 1 KB that carry
# personal data (~3 KB each once orjson has written them) or ~1,200 of 10 KB (~13 KB, as
# UTF-8). (Counted by length until 2026-12-01, 4 MB as counted took ~15 MB; kept unpacked
# until 2026-12-01, ~5 and ~44 KB.)
RESULT_BYTES = 15_000_000
# Shorter texts are redacted from their spans each time: remembering one costs about as much.
REMEMBERED_FROM_CHARS = 256
# Redacted texts this long and outside ASCII are kept as UTF-8: one copy, where a string keeps
# its characters (two bytes each for one beyond Latin-1) and the UTF-8 orjson leaves on it.
# Others are kept as they are, and a hit gives back the string itself, which orjson and
# content_key have met before: 4 µs a row less for a 1 KB prompt.
PACKED_FROM_CHARS = 4096
# What an entry costs besides its bytes (tracemalloc measured 310-330): the key, the tuple, the
# dict's slot.
ENTRY_BYTES = 320
# A redacted text, its counts, and what it added to the pseudonym table, in order.
Result = tuple[str, tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]


class ResultCache:
    """Redactions of texts that hold personal data, keyed by a digest of the text and the
    pseudonym table they met, least recently used first out, at most `size` bytes in all as
    `_kept_cost` counts them (it keeps the redacted text, unlike SpanCache, and the names the
    text added to the table). `size` 0 keeps nothing.

    An entry is kept packed (`Kept`): a long redacted text as UTF-8, and the names it added
    joined by NUL, their numbers in an array. As a `Result`, a 10 KB prompt naming 60 people
    took ~44 KB: the text, the UTF-8 copy orjson leaves on a string it has written, and 136
    pairs of a name and its number. Packed it takes ~13 KB, and each hit makes a new string
    that leaves with its record (issue 21: the budget held ~340 of the export bench's 2,000
    prompts of 10 KB, read in turn, so none was ever found again and every row redacted its
    prompt anew)."""

    def __init__(self, size: int):
        self.size = size
        self.bytes = 0
        # Each entry with what it was charged: the bound holds only if an entry gives back
        # what it took.
        self._results: OrderedDict[bytes, tuple[Kept, int]] = OrderedDict()

    def get(self, key: bytes) -> Result | None:
        found = self._results.get(key)
        if found is None:
            return None
        self._results.move_to_end(key)
        return _unpack(found[0])

    def put(self, key: bytes, result: Result) -> None:
        kept = _pack(result)
        if kept is None:
            return
        cost = _kept_cost(kept)
        if cost > self.size // 100:
            return  # a text this long would push out a hundred others
        replaced = self._results.get(key)
        if replaced is not None:
            self.bytes -= replaced[1]
        self._results[key] = (kept, cost)
        self.bytes += cost
        while self.bytes > self.size:
            _, (_, charged) = self._results.popitem(last=False)
            self.bytes -= charged


# A Result as ResultCache keeps it: the text (as UTF-8 when `_pack` says), its counts,
# the names joined by NUL and their numbers.
Kept = tuple[str | bytes, tuple[tuple[str, int], ...], str, "array[int]"]


def _pack(result: Result) -> Kept | None:
    """`result` packed; None when a name holds NUL (only an operator's rule of kind `person`
    could find one), which is then not kept."""
    text, counts, added = result
    names = "\x00".join(name for name, _ in added)
    if added and names.count("\x00") != len(added) - 1:
        return None
    numbers = array("I", [number for _, number in added])
    if len(text) >= PACKED_FROM_CHARS and not text.isascii():
        return text.encode("utf-8", "surrogatepass"), counts, names, numbers
    return text, counts, names, numbers


def _unpack(kept: Kept) -> Result:
    text, counts, names, numbers = kept
    added = tuple(zip(names.split("\x00"), numbers, strict=True)) if numbers else ()
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogatepass")
    return text, counts, added


def _kept_cost(kept: Kept) -> int:
    """Bytes an entry takes, about, as tracemalloc counts them: its text (with the UTF-8 copy
    orjson leaves on a string outside ASCII once it has written it), its names, their numbers,
    its counts (a pair a kind), and `ENTRY_BYTES` for the key, the tuple and the dict's slot."""
    text, counts, names, numbers = kept
    size = sys.getsizeof(text)
    if isinstance(text, str) and not text.isascii():
        size += len(text.encode("utf-8", "surrogatepass"))
    size += sys.getsizeof(counts) + sum(map(sys.getsizeof, counts))
    return size + sys.getsizeof(names) + sys.getsizeof(numbers) + ENTRY_BYTES


# (what, how many) a match of a rule holds at least: scan.DIGITS or a mark such as "@".
Fewest = tuple[tuple[str, int], ...]
# Each rule with the Scanners of its pattern and pre-check, and its Fewest.
ScanTable = tuple[tuple[Rule, Scanner, Scanner | None, Fewest], ...]


def _may_match(
    text: str,
    needs: Scanner | None,
    least: Fewest,
    counted: dict[str, int],
    present: dict[Scanner, bool],
) -> bool:
    """A rule's own pre-checks, where the pre-filter cannot tell: whether `text` holds the
    fewest digits and marks a match does, and what its pre-check `needs`. Counts and answers
    are kept for the text's next rule."""
    if least and not _holds_enough(text, least, counted):
        return False
    if needs is None:
        return True
    held = present.get(needs)
    if held is None:
        held = present[needs] = needs.holds(text)
    return held


def _holds_enough(text: str, least: Fewest, counted: dict[str, int]) -> bool:
    """Whether `text` holds at least `least` of each; counts kept in `counted` for the
    text's next rule."""
    for what, needed in least:
        held = counted.get(what)
        if held is None:
            held = len(_DIGIT.findall(text)) if what == DIGITS else text.count(what)
            counted[what] = held
        if held < needed:
            return False
    return True


def _part(
    text: str, start: int, end: int, match: re.Match[str], group: int
) -> tuple[int, int, str]:
    """The personal part of a match from `start` to `end`: all of it, its group `group`, or
    with -1 whichever of the pattern's groups matched."""
    if group == 0:
        return start, end, text[start:end]
    if group == -1:
        for index in range(1, match.re.groups + 1):
            if match.group(index) is not None:
                return match.start(index), match.end(index), match.group(index)
        return start, start, ""
    return match.start(group), match.end(group), match.group(group)
