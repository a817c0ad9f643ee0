"""`pattern.finditer(text)` at a fraction of the cost, with the same matches.

Python's `re` searches fast only for a pattern that opens on a literal or a character class: it
then skips in C to the characters that can begin a match. A pattern that opens on a lookbehind,
`\\b` or a case-insensitive alternation (most of the anonymizer's rules and name patterns) is
instead tried at every position of the text, and that was most of what redaction cost (issue 21:
the phone rule 65 µs and the date rule 97 µs per 370-character row, mostly spent where no digit
was near).

`Scanner` reads from the pattern's own parse which characters a match can begin with, and
searches for `[those](?<=(?=PATTERN(?P<end>))[\\s\\S])`: `re` skips to a candidate character in C
and tries PATTERN there only, inside a lookahead whose captures (the pattern's groups, numbered
as before, and the end) are kept. The matches are the same as `finditer`'s by construction: a
match of PATTERN can begin only at a candidate, the lookahead takes the first match at a
position as `match` does, and the next search starts where the last match ended. A pattern whose
first characters cannot be read (one that may match the empty string and a longer one, a
negated class, a backreference inside the lookbehind...) is searched the plain way, and so is
one that most letters can begin, where there is little to skip.

The first characters are a superset, never a guess: under IGNORECASE a cased letter stands
for both ASCII cases and for every non-ASCII character (the Kelvin sign is a `k`, the long s
an `s`).
"""

from __future__ import annotations

import importlib
import re
import string
from collections.abc import Callable, Iterable, Iterator
from functools import cache, partial
from typing import Any

# The parser `re` itself uses (private, hence looked up: typeshed does not list it). Should a
# later Python change its shape, `_fast` answers None and patterns are searched the plain way.
_c: Any = importlib.import_module("re._constants")
_p: Any = importlib.import_module("re._parser")

_END = "flywheel_scan_end"
_NON_ASCII = "\\U00000080-\\U0010ffff"
# A category's escape in a class, and the repeat opcodes: prefilter.py reads parses too.
CATEGORY_ESCAPES = {
    _c.CATEGORY_DIGIT: "\\d",
    _c.CATEGORY_NOT_DIGIT: "\\D",
    _c.CATEGORY_WORD: "\\w",
    _c.CATEGORY_NOT_WORD: "\\W",
    _c.CATEGORY_SPACE: "\\s",
    _c.CATEGORY_NOT_SPACE: "\\S",
}
REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT))
_ZERO_WIDTH = (_c.AT, _c.ASSERT_NOT)


class _Unknown(Exception):
    """The first characters cannot be read from this construct."""


class Scanner:
    """Finds what `pattern.finditer` finds, as (start, end, match) where `match` holds the
    pattern's groups under their numbers (but not the whole match: use start and end)."""

    def __init__(self, pattern: re.Pattern[str]):
        self.pattern = pattern
        self.fast = _fast(pattern)

    def holds(self, text: str) -> bool:
        """Whether `pattern.search(text)` finds anything."""
        return (self.fast or self.pattern).search(text) is not None

    def finditer(self, text: str) -> Iterable[tuple[int, int, re.Match[str]]]:
        fast = self.fast
        if fast is None:
            return ((m.start(), m.end(), m) for m in self.pattern.finditer(text))
        first = fast.search(text)
        if first is None:
            return ()  # most patterns in most texts: no generator to make
        return self._from(text, first, fast)

    def finditer_within(
        self, text: str, spans: list[tuple[int, int]]
    ) -> Iterator[tuple[int, int, re.Match[str]]]:
        """What `finditer` finds, given `spans` that hold the start of every match (each
        match begins at or after a span's start and before its end: prefilter.Candidates):
        the pattern is tried at those places alone, in order, as `finditer` would try them,
        and a search resumes where the last match ended. For a pattern that cannot match the
        empty string (prefilter runs no other)."""
        match = self.pattern.match
        resume = tried = 0  # where the last match ended; up to where every place was tried
        for start, end in sorted(spans):
            at = max(start, resume, tried)
            while at < end:
                found = match(text, at)
                if found is None:
                    at += 1
                    continue
                yield at, found.end(), found
                at = resume = found.end()
            tried = max(tried, end)

    @staticmethod
    def _from(
        text: str, found: re.Match[str] | None, fast: re.Pattern[str]
    ) -> Iterator[tuple[int, int, re.Match[str]]]:
        while found is not None:
            start, end = found.start(), found.end(_END)
            yield start, end, found
            # A pattern searched this way never matches both empty and not (see _fast).
            found = fast.search(text, end if end > start else start + 1)


@cache
def scanner(pattern: re.Pattern[str]) -> Scanner:
    """The Scanner of `pattern`, made on first use (reading a pattern costs ~1 ms) and kept
    for the process, as `re` keeps its compiled patterns."""
    return Scanner(pattern)


# What `fewest` counts: `\d`, under this name, and marks that identifiers are written with.
DIGITS = "digits"
MARKS = ("@", ":", ".", "-", "/")


@cache
def fewest(pattern: re.Pattern[str]) -> tuple[tuple[str, int], ...]:
    """For `DIGITS` and each of `MARKS`, the fewest of them a match of `pattern` consumes,
    where that is above 0: a text that holds fewer holds no match (an IPv4 address three
    dots, a full IPv6 one seven colons, a card 13 digits). Empty when the pattern cannot be
    read, which skips nothing. A lower bound by construction: lookarounds, backreferences
    and every construct not read below count none, a branch counts its fewest, a repeat its
    minimum times its body."""
    try:
        items = _p.parse(pattern.pattern, pattern.flags).data
    except (re.error, RecursionError):
        return ()
    counts = [(DIGITS, _count(items, _is_digit))]
    counts += [(mark, _count(items, partial(_is_mark, ord(mark)))) for mark in MARKS]
    return tuple((name, least) for name, least in counts if least)


def _count(items: list[tuple[Any, Any]], only: Callable[[Any, Any], bool]) -> int:
    """The fewest characters `items` consume that match an item `only` accepts."""
    total = 0
    for op, av in items:
        if op in (_c.LITERAL, _c.IN):
            total += only(op, av)
        elif op == _c.SUBPATTERN:
            total += _count(av[3].data, only)
        elif op == getattr(_c, "ATOMIC_GROUP", None):
            total += _count(av.data, only)
        elif op == _c.BRANCH:
            total += min(_count(branch.data, only) for branch in av[1])
        elif op in REPEATS:
            total += av[0] * _count(av[2].data, only)
    return total


def _is_digit(op: Any, av: Any) -> bool:
    """A literal digit, or a class of nothing but digits (`\\d`, `[0-9]`, `[2-9]`)."""
    if op == _c.LITERAL:
        return 0x30 <= av <= 0x39
    for item, value in av:
        if item == _c.LITERAL and 0x30 <= value <= 0x39:
            continue
        if item == _c.RANGE and 0x30 <= value[0] <= value[1] <= 0x39:
            continue
        if item == _c.CATEGORY and value == _c.CATEGORY_DIGIT:
            continue
        return False
    return bool(av)


def _is_mark(mark: int, op: Any, av: Any) -> bool:
    """The literal `mark`, or a class of it alone (`[.]`)."""
    if op == _c.LITERAL:
        return bool(av == mark)
    return bool(av) and all(item == _c.LITERAL and value == mark for item, value in av)


def _fast(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    try:
        parsed = _p.parse(pattern.pattern, pattern.flags)
        low, high = parsed.getwidth()
        # An empty match lets the next one begin at the same place in `finditer`; a pattern
        # that is always empty or never is searched the same way in both.
        if low == 0 and high != 0:
            return None
        first = _first(list(parsed.data), bool(pattern.flags & re.IGNORECASE))
        if first is None:
            return None
        flags = pattern.flags & ~re.IGNORECASE
        # Where most letters can begin a match (an e-mail, a key of any letters), there is
        # little to skip and the lookaround costs more than it saves.
        candidates = re.compile(f"[{first}]", flags)
        if sum(candidates.match(c) is not None for c in string.ascii_letters) > 26:
            return None
        body = f"(?i:{pattern.pattern})" if pattern.flags & re.IGNORECASE else pattern.pattern
        return re.compile(f"[{first}](?<=(?=(?:{body})(?P<{_END}>))[\\s\\S])", flags)
    except (_Unknown, re.error, RecursionError):
        return None


def _first(items: list[tuple[Any, Any]], ignorecase: bool) -> str | None:
    """A class body holding every character a match of `items` can begin with; None when
    `items` can match without consuming a character."""
    parts: list[str] = []
    for op, av in items:
        found = _first_of(op, av, ignorecase)
        if found is None:
            continue  # zero width, or may be skipped: what follows can begin the match too
        chars, optional = found
        parts.append(chars)
        if not optional:
            return "".join(parts)
    return None


def _first_of(op: Any, av: Any, ignorecase: bool) -> tuple[str, bool] | None:
    """(characters it can begin with, whether it can also match empty); None if zero-width."""
    if op in _ZERO_WIDTH or (op == _c.ASSERT and av[0] == -1):
        return None
    if op == _c.ASSERT:  # a lookahead: the match begins with what it begins with
        inner = _first(list(av[1].data), ignorecase)
        return None if inner is None else (inner, False)
    if op == _c.LITERAL:
        return _chars([(av, av)], ignorecase), False
    if op == _c.IN:
        return _class(av, ignorecase), False
    if op == _c.SUBPATTERN:
        _, add, remove, sub = av
        case = (ignorecase or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE
        return _sequence(sub, case)
    if op == getattr(_c, "ATOMIC_GROUP", None):
        return _sequence(av, ignorecase)
    if op == _c.BRANCH:
        parts, optional = [], False
        for branch in av[1]:
            found = _sequence(branch, ignorecase)
            if found is None:
                raise _Unknown(op)
            parts.append(found[0])
            optional = optional or found[1]
        return "".join(parts), optional
    if op in REPEATS:
        low, _, sub = av
        found = _sequence(sub, ignorecase)
        if found is None:
            raise _Unknown(op)
        return found[0], found[1] or low == 0
    raise _Unknown(op)  # ANY, NOT_LITERAL, GROUPREF and anything newer


def _sequence(sub: Any, ignorecase: bool) -> tuple[str, bool] | None:
    parts: list[str] = []
    for op, av in sub.data:
        found = _first_of(op, av, ignorecase)
        if found is None:
            continue
        parts.append(found[0])
        if not found[1]:
            return "".join(parts), False
    if not parts:
        raise _Unknown("zero width")  # a group that consumes nothing: not worth reasoning on
    return "".join(parts), True


def _class(items: list[tuple[Any, Any]], ignorecase: bool) -> str:
    ranges: list[tuple[int, int]] = []
    out = []
    for op, av in items:
        if op == _c.NEGATE:
            raise _Unknown(op)
        if op == _c.LITERAL:
            ranges.append((av, av))
        elif op == _c.RANGE:
            ranges.append(av)
        elif op == _c.CATEGORY and av in CATEGORY_ESCAPES:
            out.append(CATEGORY_ESCAPES[av])
        else:
            raise _Unknown(op)
    return "".join(out) + _chars(ranges, ignorecase)


def _chars(ranges: list[tuple[int, int]], ignorecase: bool) -> str:
    out = []
    cased = False
    for low, high in ranges:
        out.append(_range(low, high))
        if ignorecase:
            for code in range(low, min(high, 0x7F) + 1):
                char = chr(code)
                if char.isalpha():
                    cased = True
                    out.append(_range(ord(char.swapcase()), ord(char.swapcase())))
            cased = cased or high > 0x7F
    if cased:
        out.append(_NON_ASCII)
    return "".join(out)


def _range(low: int, high: int) -> str:
    if low == high:
        return f"\\U{low:08x}"
    return f"\\U{low:08x}-\\U{high:08x}"
