"""Which rules can match a text, and where, from one pass of Hyperscan over it (issue 21).

Most rules find nothing in most texts, yet each searches the text on its own: on clinical
notes of novel text, three quarters of what the rules cost was spent by rules that then found
nothing (110 of 131 µs per 370-character row), after pre-checks that passed. Hyperscan runs
every rule's pattern over a text at once, in C with SIMD, and says which can match, and where
a match may begin: each place its translation matches, from the leftmost start Hyperscan
reports for that end (HS_FLAG_SOM_LEFTMOST) to the end. Every match of the rule begins in one
of these spans, so `re` is tried there alone (`Scanner.finditer_within`). Told only which
rules, a rule that could match still tried every place a match could begin (the date rule every
digit): the rules and the pass took 214-275 µs a 1 KB note of new text that way, 73-114 this way.
The same pass finds the words a name's cue begins with ("Pasient", "Dr"), for the name finder
(`names.cue_word_patterns`).

Hyperscan is another regex engine: no lookarounds, no backreferences, bytes rather than
characters, and its own idea of `\\w` and of case. So it does not run the rules' patterns: it
runs a translation of each that matches wherever the pattern can (a superset), and the rules
it names then run in `re` as before, so redaction is byte for byte what it was. A match of a
pattern is a match of its translation on the same characters, so the spans hold it too. A text is
scanned as one byte a character: a Latin-1 character as itself, any other as `?` (curly
quotes, dashes, emoji, other scripts; `str.encode("latin-1", "replace")`), and

- every character class, literal and `.` becomes the bytes of the Latin-1 characters `re`
  itself matches with it, under the flags in force there (combined as `re` combines them),
  read by trying all 256 (so `\\w`, `\\d`, IGNORECASE on `æ`/`Æ` are `re`'s own, not
  Hyperscan's), and `?` too if it matches any character beyond Latin-1 (read by searching
  them all, once per class: ~5 ms);
- assertions (`\\b`, `^`, lookarounds) are left out, which only lets more through;
- a backreference becomes its group's pattern: whatever the group matched, that matches;
- lazy, possessive and atomic repeats become plain ones, which match at least as much.

A machine without Hyperscan (it has wheels for x86-64 Linux, macOS and Windows) or any error
from it: every rule is checked on its own, as before. A pattern that is not translated runs on
every text: a conditional group, a backreference under IGNORECASE (it matches its group's text
in any case), repeats nested deeper than `MAX_NESTED_REPEATS`. A long top-level alternation
(an `anonymize.words` list) goes in as one expression per alternative, under its rule's number,
since Hyperscan takes no expression of 16,000 characters or more. Two second readers'
differential fuzz (~470,000 checks against `re`) found the IGNORECASE backreference and nested
type flags (`(?a:(?u:\\w))`) wrong at first; tests/test_anonymize_prefilter.py keeps them.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
from array import array
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from gateway.anonymize.scan import CATEGORY_ESCAPES, REPEATS

log = logging.getLogger(__name__)

_c: Any = importlib.import_module("re._constants")
_p: Any = importlib.import_module("re._parser")

_LATIN1 = [chr(code) for code in range(256)]
_ASSERTIONS = (_c.AT, _c.ASSERT, _c.ASSERT_NOT)
_TYPE_FLAGS = re.ASCII | re.UNICODE | getattr(_p, "TYPE_FLAGS", 0)
# Hyperscan's compile time grows exponentially with unbounded repeats nested in each other
# (25 deep took 0.8 s, 100 deep minutes; `re` compiles them at once). The rules nest two.
MAX_NESTED_REPEATS = 6
_ATOMIC = getattr(_c, "ATOMIC_GROUP", None)
# A build that takes longer than this (a pattern past what MAX_NESTED_REPEATS keeps out) is
# given up, and every rule searches alone.
CHILD_TIMEOUT_S = 60
# One scanner is built at a time: threads redacting their first text at once wait for it.
_BUILDING = threading.Lock()


class _Untranslatable(Exception):
    pass


# Where each pattern that may match a text may begin a match, by its index: the (start, end)
# spans of its translation's matches (a match begins at or after a span's start and before its
# end), or None for a pattern Hyperscan does not run, which may match anywhere. A pattern not
# in it has no match in the text. The text is scanned with a space added on each side, so a
# pattern can ask for a character before and after a word even at the ends of the text
# (names.cue_word_patterns); offsets are the text's own, so a span may begin at -1 or end one
# past the text where its match took in an added space.
Candidates = dict[int, list[tuple[int, int]] | None]
# Spans kept for one pattern in one text; past them it may match anywhere. A text of digits
# can give a digit rule a span at every character (its translation matches at every end), and
# each costs ~80 bytes: a 1 MB one would have taken hundreds of MB.
MAX_SPANS = 512


class Prefilter:
    """`candidates(text)`: the patterns that may match `text` and where (`Candidates`), or
    None when it cannot tell (no Hyperscan)."""

    def __init__(self, patterns: Sequence[re.Pattern[str]]):
        # Compiled on first use: a process that never redacts never loads Hyperscan.
        self._patterns = tuple((p.pattern, p.flags) for p in patterns)
        self._scan: Callable[[bytes], Candidates] | None = None
        self._ready = False

    def candidates(self, text: str) -> Candidates | None:
        if not self._ready:
            with _BUILDING:
                self._scan, self._ready = _scanner_of(self._patterns), True
        if self._scan is None:
            return None
        try:
            return self._scan(f" {text} ".encode("latin-1", "replace"))
        except Exception:  # whatever Hyperscan raises, the rules can still run one by one
            log.exception("anonymizer pre-filter: scan failed; each rule searches alone now")
            self._scan = None  # said once, not for every text
            return None

    def __getstate__(self) -> dict[str, Any]:
        # The scanner holds Hyperscan's database, which does not pickle: built again.
        return {"_patterns": self._patterns, "_scan": None, "_ready": False}


@cache
def _scanner_of(
    patterns: tuple[tuple[str, int], ...],
) -> Callable[[bytes], Candidates] | None:
    """One scanner per set of rules, kept for the process: building it takes ~0.4 s, and an
    export or a test suite makes many Anonymizers of the same rules."""
    try:
        import hyperscan
    except ImportError:
        # Said once a process: an operator wondering why redaction is slower here can tell.
        log.info("anonymizer pre-filter: hyperscan is not installed; each rule searches alone")
        return None
    try:
        return _scanner(hyperscan, patterns)
    except Exception as exc:  # an optimisation: never a reason to fail redaction
        # A CPU Hyperscan cannot run on, a build past CHILD_TIMEOUT_S or killed, or a bug.
        log.warning("anonymizer pre-filter: not used, each rule searches alone (%r)", exc)
        return None


def _scanner(
    hyperscan: Any, patterns: tuple[tuple[str, int], ...]
) -> Callable[[bytes], Candidates] | None:
    try:
        built = _build_in_child(patterns)
    except _NoChild as exc:
        log.info("anonymizer pre-filter: built in this process (%s)", exc)
        built = _build(patterns)
    always, scanned, compiled = built
    log.info(
        "anonymizer pre-filter: %d of %d rules in Hyperscan, %d on every text",
        len(scanned),
        len(patterns),
        len(always),
    )
    anywhere: Candidates = dict.fromkeys(always)
    if compiled is None:
        return lambda data: dict(anywhere)  # nothing for Hyperscan to look for
    database = hyperscan.loadb(compiled, hyperscan.HS_MODE_BLOCK)
    local = threading.local()  # a scratch space serves one scan at a time

    def scan(data: bytes) -> Candidates:
        scratch = getattr(local, "scratch", None)
        if scratch is None:
            scratch = local.scratch = hyperscan.Scratch(database)
        candidates = dict(anywhere)
        database.scan(data, match_event_handler=_collect, context=candidates, scratch=scratch)
        return candidates

    return scan


def _collect(index: int, start: int, end: int, flags: int, candidates: Candidates) -> None:
    spans = candidates.setdefault(index, [])
    if spans is None:
        return  # past MAX_SPANS: anywhere
    if len(spans) >= MAX_SPANS:
        candidates[index] = None
        return
    spans.append((start - 1, end - 1))  # the text's offsets, not the padded text's


Built = tuple[list[int], list[int], bytes | None]


def _build(patterns: tuple[tuple[str, int], ...]) -> Built:
    """The patterns to run on every text (not translated, matching the empty string, or
    refused by Hyperscan: too large, say), those in the database, and the database,
    serialized (~0.4 MB for the built-in rules; None if it holds none). A pattern in neither
    list can match no text. Raises hyperscan.ArchitectureError on a CPU it cannot run on.

    Run in a child process (`_build_in_child`): compiling left ~10 MiB resident in the process
    that did it (the compiler's code and its freed working memory), and a one-process export
    of a million rows peaked 7.6 MiB higher for it, 145 MB of the 150 a process may take
    (issue 21); reading what each class matches beyond Latin-1 passes a 4 MB string."""
    import hyperscan

    always: list[int] = []
    usable: dict[int, list[bytes]] = {}
    for index, (source, flags) in enumerate(patterns):
        try:
            alternatives = translate(source, flags)
        except Exception:  # whatever cannot be read runs on every text, which is safe
            always.append(index)
            continue
        if not alternatives:
            continue  # no text holds a match: never possible
        # The translation is Python syntax too ((?:), [\xHH], {m,n}, |), so `re` can say
        # whether it matches the empty string, which Hyperscan would report on every text.
        if any(re.fullmatch(body, "") for body in alternatives):
            always.append(index)
        else:
            usable[index] = [body.encode("ascii") for body in alternatives]
    # Every match, each with the leftmost start that ends there: where `re` must look.
    flags = hyperscan.HS_FLAG_SOM_LEFTMOST

    def compiled(chosen: dict[int, list[bytes]]) -> Any:
        expressions = [body for bodies in chosen.values() for body in bodies]
        ids = [index for index, bodies in chosen.items() for _ in bodies]
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(expressions=expressions, ids=ids, elements=len(ids), flags=flags)
        return database

    if not usable:
        return always, [], None
    try:
        return always, list(usable), hyperscan.dumpb(compiled(usable))
    except hyperscan.ArchitectureError:
        raise
    except hyperscan.error:
        pass
    for index, bodies in list(usable.items()):  # one refusal must not lose them all
        try:
            compiled({index: bodies})
        except hyperscan.error:
            del usable[index]
            always.append(index)
    if not usable:
        return always, [], None
    return always, list(usable), hyperscan.dumpb(compiled(usable))


class _NoChild(Exception):
    """No child could build the scanner; this process builds it instead."""


# The child: the patterns as JSON on stdin; `_build`'s answer on stdout, after a marker, since
# a site customisation may print first.
_MARK = "flywheel-prefilter:"
_CHILD = f"""
import base64, json, sys
from gateway.anonymize.prefilter import _build
always, scanned, compiled = _build(tuple(map(tuple, json.load(sys.stdin))))
compiled = compiled and base64.b64encode(compiled).decode()
print("{_MARK}" + json.dumps([always, scanned, compiled]))
"""


def _build_in_child(patterns: tuple[tuple[str, int], ...]) -> Built:
    # A frozen application's executable is the application, not Python.
    if getattr(sys, "frozen", False) or not sys.executable:
        raise _NoChild("no Python interpreter to start")
    try:
        done = subprocess.run(
            # -P: not the working directory first on the path, where a `gateway/` or `json.py`
            # would stand in for the real one.
            [sys.executable, "-P", "-c", _CHILD],
            input=json.dumps(patterns),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    except OSError as exc:
        raise _NoChild(f"cannot start {sys.executable}: {exc}") from exc
    if done.returncode < 0:
        # Killed (out of memory, say): building here would meet the same end.
        raise RuntimeError(f"the build was killed by signal {-done.returncode}")
    _, marked, answer = done.stdout.rpartition(_MARK)
    if done.returncode != 0 or not marked:
        raise _NoChild(f"it failed: {done.stderr.strip()[-500:]}")
    always, scanned, compiled = json.loads(answer)
    return always, scanned, None if compiled is None else base64.b64decode(compiled)


def translate(source: str, flags: int = 0) -> list[str]:
    """Hyperscan expressions over the bytes a text is scanned as that together match wherever
    `source` can (see the module's docstring); none if no text can match it. A pattern with an
    alternation among its top-level parts (`\\b(?:kari|ola)\\b`, as
    `anonymize.words` lists are) gives one per branch, so a long list fits Hyperscan's limit on
    an expression's length."""
    parsed = _p.parse(source, flags)
    flags = parsed.state.flags
    items = list(parsed.data)
    split = next((i for i, (op, _) in enumerate(items) if op == _c.BRANCH), None)
    if split is None:
        body = _sequence(items, flags, {})
        return [] if body is None else [body]
    # X(?:a|b)Y matches where XaY or XbY does. (`re` itself factors a shared prefix out of the
    # branches: kunde0001|kunde0002 parses as kunde, then the branch.)
    groups: dict[int, str] = {}
    before = _sequence(items[:split], flags, groups)
    branches = [_sequence(list(branch.data), flags, groups) for branch in items[split][1][1]]
    after = _sequence(items[split + 1 :], flags, groups)
    if before is None or after is None:
        return []
    return [before + branch + after for branch in branches if branch is not None]


def _sequence(
    items: list[tuple[Any, Any]], flags: int, groups: dict[int, str], depth: int = 0
) -> str | None:
    parts = []
    for op, av in items:
        part = _node(op, av, flags, groups, depth)
        if part is None:
            return None  # a part no text can match: neither can the sequence
        parts.append(part)
    return "".join(parts)


def _node(op: Any, av: Any, flags: int, groups: dict[int, str], depth: int) -> str | None:
    if op in _ASSERTIONS:
        return ""
    if op == _c.LITERAL:
        return _bytes(f"\\U{av:08x}", flags, _within_latin1([(op, av)], flags))
    if op == _c.NOT_LITERAL:
        return _bytes(f"[^\\U{av:08x}]", flags)
    if op == _c.ANY:
        return _bytes(".", flags)
    if op == _c.IN:
        return _bytes(_in_source(av), flags, _within_latin1(av, flags))
    if op == _c.SUBPATTERN:
        group, add, remove, sub = av
        body = _sequence(list(sub.data), _combined(flags, add, remove), groups, depth)
        if body is None:
            return None
        if group is not None:
            groups[group] = body
        return f"(?:{body})"
    if op == _ATOMIC:
        body = _sequence(list(av.data), flags, groups, depth)
        return None if body is None else f"(?:{body})"
    if op == _c.BRANCH:
        branches = [_sequence(list(branch.data), flags, groups, depth) for branch in av[1]]
        kept = [branch for branch in branches if branch is not None]
        return f"(?:{'|'.join(kept)})" if kept else None
    if op in REPEATS:
        low, high, sub = av
        if depth >= MAX_NESTED_REPEATS:
            raise _Untranslatable("repeats nested too deep for Hyperscan to compile quickly")
        body = _sequence(list(sub.data), flags, groups, depth + 1)
        if body is None:
            return "" if low == 0 else None
        upper = "" if high == _c.MAXREPEAT else str(high)
        return f"(?:{body}){{{low},{upper}}}"
    if op == _c.GROUPREF:
        if av not in groups or flags & re.IGNORECASE:
            # Under IGNORECASE a reference matches its group's text in any case, which the
            # group's own translation (made under the group's flags) need not hold.
            raise _Untranslatable("a reference that is not its group's text as it stands")
        return f"(?:{groups[av]})"
    raise _Untranslatable(op)  # GROUPREF_EXISTS and anything newer


def _combined(flags: int, add: int, remove: int) -> int:
    """A group's flags as `re` combines them: a group that sets ASCII or UNICODE drops the
    other, as (?u:...) inside (?a:...) reads `\\w` the Unicode way."""
    if add & _TYPE_FLAGS:
        flags &= ~_TYPE_FLAGS
    return (flags | add) & ~remove


def _in_source(items: list[tuple[Any, Any]]) -> str:
    out: list[str] = []
    for op, av in items:
        if op == _c.NEGATE:
            out.insert(0, "^")
        elif op == _c.LITERAL:
            out.append(f"\\U{av:08x}")
        elif op == _c.RANGE:
            out.append(f"\\U{av[0]:08x}-\\U{av[1]:08x}")
        elif op == _c.CATEGORY and av in CATEGORY_ESCAPES:
            out.append(CATEGORY_ESCAPES[av])
        else:
            raise _Untranslatable(op)
    return "[" + "".join(out) + "]"


def _within_latin1(items: list[tuple[Any, Any]], flags: int) -> bool:
    """Whether a class of these items plainly matches nothing beyond Latin-1: literals and
    ranges below U+0100, no category, no negation, and under IGNORECASE no letter with a case
    (which `re` then matches as it stands, as its compiler does). Anything else is asked of
    `re` itself, which for a class that matches nothing beyond reads all 1.1 million
    characters (~5 ms); most classes of the rules are this plain kind."""
    ignorecase = bool(flags & re.IGNORECASE)
    for op, av in items:
        if op == _c.LITERAL:
            low, high = av, av
        elif op == _c.RANGE:
            low, high = av
        else:
            return False
        if high > 0xFF or (ignorecase and any(map(_cased, range(low, high + 1)))):
            return False
    return True


# Whether `re` folds a character's case under IGNORECASE (private, hence looked up; without it
# every character counts as cased, which only asks `re` more often).
_cased: Callable[[int], bool] = getattr(
    importlib.import_module("_sre"), "unicode_iscased", lambda code: True
)


@cache
def _beyond_latin1() -> str:
    """Every character beyond Latin-1, lone surrogates included (a stored body can hold
    them), built once a process that translates (in ~40 ms; 4.4 MB)."""
    return array("I", range(0x100, 0x110000)).tobytes().decode("utf-32-le", "surrogatepass")


@cache
def _bytes(source: str, flags: int, within_latin1: bool = False) -> str | None:
    """What the one-character pattern `source` matches under `flags`, as a Hyperscan class of
    bytes: the Latin-1 characters it matches, and `?` if it matches any character beyond
    (which texts are scanned with); None if it matches no character at all. `within_latin1`:
    it is known to match none beyond."""
    pattern = re.compile(source, flags & (re.IGNORECASE | re.ASCII | re.DOTALL))
    codes = [code for code, char in enumerate(_LATIN1) if pattern.fullmatch(char)]
    beyond = not within_latin1 and pattern.search(_beyond_latin1()) is not None
    if beyond and ord("?") not in codes:
        codes = sorted([*codes, ord("?")])
    if not codes:
        return None
    if len(codes) == 1:
        return _byte(codes[0])
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    body = "".join(
        _byte(low) if low == high else f"{_byte(low)}-{_byte(high)}" for low, high in ranges
    )
    return f"[{body}]"


def _byte(code: int) -> str:
    """A byte as Hyperscan reads it in or out of a class: a letter or digit as itself, any
    other escaped (short, since a word list is one rule and an expression has a length limit)."""
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\x{code:02x}"
