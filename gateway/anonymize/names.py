"""Person names in free text, found the way a careful reader finds them.

Three kinds of evidence, strongest first:
1. A cue: a title (Dr., Mr, Fru, Herr), a labelled field (`Pasient:`, `Name:`, `From:`), an
   introduction (`my name is`, `jeg heter`), `signed by` / `signert av`, a role or relation word
   (`the patient`, `kunden`, `his wife`), an address word (`Hi`, `Kjære`, `Mvh`), or the line
   after an e-mail closing (`Best regards,` / `Med vennlig hilsen`). The capitalised words that
   follow on the same line are the name.
2. The name lists (lexicon.py): a given name, with the capitalised words after it.
   A given name that is also an ordinary word ("Per", "Will", "Dag") needs more: a family name
   after it, a verb after it at the start of a sentence ("Per ringte"), or a place
   mid-sentence where only a name is capitalised.
3. A name once found stands for its person in the rest of the example: `later_mentions` finds
   "Kari" after "Pasient: Kari Nordmann".

Nothing here crosses a line break: a name is on one line, so the next line's label survives.
Words that look like names but name a disease, a test, a drug, a place or a product
(not-names.txt, "Bell's palsy", "Thomas test", "Claude 3") are left alone, and those are
the mistakes that cost clinical and technical datasets their meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from gateway.anonymize import cues
from gateway.anonymize.lexicon import Lexicon
from gateway.anonymize.prefilter import Candidates
from gateway.anonymize.scan import scanner


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    text: str


class NameFinder:
    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon
        # Both are tried at every position by `re` itself (see scan.py).
        self._display = scanner(cues.DISPLAY_NAME_RE)
        self._sequences = scanner(cues.SEQUENCE_RE)

    def find(
        self, text: str, taken: bytearray, cue_words: Sequence[int] | None = None
    ) -> list[Found]:
        """Names in `text` that overlap no span already `taken` (which this marks as well).
        `cue_words`: where the words of `text` that may begin a cue begin, in order (every
        one of them; `cue_words_at`); None: every word is looked up."""
        found: list[Found] = []
        for name in (*self._cued(text, cue_words), *self._listed(text)):
            if not any(taken[name.start : name.end]):
                taken[name.start : name.end] = b"\x01" * (name.end - name.start)
                found.append(name)
        return found

    def _cued(self, text: str, cue_words: Sequence[int] | None) -> Iterator[Found]:
        found: list[tuple[int, str]] = []  # where each cue ends, and what it proves
        by_word = cues.CUES_BY_WORD
        words = cues.WORD_RE.finditer(text) if cue_words is None else _words_at(text, cue_words)
        for word in words:
            entries = by_word.get(word.group().lower())
            if entries is None:
                continue  # most words: no cue begins with them
            for pattern, strength in entries:
                match = pattern.match(text, word.start())
                if match is not None:
                    found.append((match.end(), strength))
        if "\n" in text:
            found += [(m.end(), cues.SIGNATURE) for m in cues.SIGNATURE_RE.finditer(text)]
        if "@" in text and "<" in text:
            display = self._display.finditer(text)
            found += [(end, cues.SIGNATURE) for _, end, _ in display]
        for end, strength in found:
            if strength == cues.LOWERCASE:
                yield from self._lowercase_name(text, end)
                continue
            name = self._after_cue(text, end, strength)
            if name is not None:
                yield name

    def _after_cue(self, text: str, start: int, strength: str) -> Found | None:
        match = cues.SEQUENCE_RE.match(text, start)
        if match is None:
            return None
        words = list(cues.TOKEN_RE.finditer(match.group()))
        kept: list[re.Match[str]] = []
        for word in words:
            value = word.group()
            if value in cues.SENTENCE_WORDS or (value in self.lexicon.not_names and kept):
                break
            kept.append(word)
        if strength == cues.SIGNATURE:
            strength = cues.STRONG if len(kept) > 1 else cues.LISTED
        if not kept or (strength != cues.STRONG and kept[0].group() in self.lexicon.not_names):
            return None
        values = [w.group() for w in kept]
        if strength == cues.LISTED and not self._listed_somewhere(values):
            return None
        if any(v in cues.INSTITUTIONS for v in values):
            return None  # "Acme Clinic <post@acme.no>", "Kunden Oslo Sykehus"
        if kept[-1].group().endswith("."):  # an initial cannot end a name
            kept.pop()
        if not kept:
            return None
        end = start + kept[-1].end()
        if cues.EPONYM_AFTER.match(text, end) or _house_number_or_saint_before(text, start):
            return None
        if strength != cues.STRONG and cues.PRODUCT_AFTER.match(text, end):
            return None
        return Found(start, end, text[start:end])

    def _lowercase_name(self, text: str, start: int) -> Iterator[Found]:
        """`pasient per hansen`, `patient kari ringte`: lowercase after a cue, when the lists
        know the given name (any, with a family name after it; else one that is no word)."""
        match = cues.LOWER_PAIR_RE.match(text, start)
        if match is None:
            return
        given, family = (w.capitalize() for w in match.group().split())
        if not self.lexicon.is_given(given) or given in self.lexicon.not_names:
            return
        if self.lexicon.is_family(family):
            yield Found(start, match.end(), match.group())
        elif self.lexicon.is_plain_given(given):
            yield Found(start, start + len(given), text[start : start + len(given)])

    def _listed_somewhere(self, words: list[str]) -> bool:
        return self.lexicon.is_given(words[0]) or any(self.lexicon.is_family(w) for w in words)

    def _listed(self, text: str) -> Iterator[Found]:
        for start, end, _ in self._sequences.finditer(text):
            words = list(cues.TOKEN_RE.finditer(text[start:end]))
            for index, word in enumerate(words):
                if self._could_start_name(word.group()):
                    name = self._from_given(text, start, words, index)
                    if name is not None:
                        yield name
                    break
            else:
                if len(words) < 2:
                    continue  # both need two words or more; most runs are one ("Case", "The")
                name = self._before_family(text, start, words) or self._before_speech(
                    text, start, words
                )
                if name is not None:
                    yield name

    def _before_speech(self, text: str, offset: int, words: list[re.Match[str]]) -> Found | None:
        """Two or three capitalised words on no list that say something: "Oluwaseun Adeyemi
        said", "Nkechi Eze ringte"."""
        values = [w.group() for w in words]
        if not 2 <= len(values) <= 3 or any(not self._unknown_word(v) for v in values):
            return None
        start, end = offset + words[0].start(), offset + words[-1].end()
        after = text[end:].split(None, 1)
        if not after or after[0].lower() not in cues.SPEECH_VERBS:
            return None
        if _house_number_or_saint_before(text, start):
            return None
        return Found(start, end, text[start:end])

    def _unknown_word(self, word: str) -> bool:
        """A capitalised word that is no sentence word, non-name, institution or initial."""
        return not (
            word in cues.SENTENCE_WORDS
            or word in self.lexicon.not_names
            or word in cues.INSTITUTIONS
            or word.endswith(".")
        )

    def _before_family(self, text: str, offset: int, words: list[re.Match[str]]) -> Found | None:
        """A given name on no list before a family name that is no word: "Thanh Nguyen"."""
        values = [w.group() for w in words]
        if len(values) != 2 or not self.lexicon.is_plain_family(values[1]):
            return None
        first = values[0]
        if not self._unknown_word(first):
            return None
        if self.lexicon.is_family(first):
            return None  # two family names: "Hansen Olsen" is a firm more often than a person
        start, end = offset + words[0].start(), offset + words[1].end()
        if cues.EPONYM_AFTER.match(text, end) or cues.PRODUCT_AFTER.match(text, end):
            return None
        if _house_number_or_saint_before(text, start):
            return None
        return Found(start, end, text[start:end])

    def _could_start_name(self, word: str) -> bool:
        return (
            self.lexicon.is_given(word)
            and word not in self.lexicon.not_names
            and word not in cues.SENTENCE_WORDS
        )

    def _from_given(
        self, text: str, offset: int, words: list[re.Match[str]], index: int
    ) -> Found | None:
        first = words[index]
        rest = []
        for word in words[index + 1 : index + 3]:
            value = word.group()
            if value in cues.INSTITUTIONS:
                return None
            if value in self.lexicon.not_names or value in cues.SENTENCE_WORDS:
                break
            rest.append(word)
        plain = self.lexicon.is_plain_given(first.group())
        if rest and (plain or any(self._family_like(w.group()) for w in rest)):
            start, end = offset + first.start(), offset + rest[-1].end()
        elif self._alone_is_a_name(text, offset, words, index, plain):
            start, end = offset + first.start(), offset + first.end()
        else:
            return None
        if cues.EPONYM_AFTER.match(text, end) or cues.PRODUCT_AFTER.match(text, end):
            return None
        if _house_number_or_saint_before(text, start):
            return None
        return Found(start, end, text[start:end])

    def _family_like(self, word: str) -> bool:
        return self.lexicon.is_family(word) or word.lower().endswith(cues.FAMILY_ENDINGS)

    def _alone_is_a_name(
        self, text: str, offset: int, words: list[re.Match[str]], index: int, plain: bool
    ) -> bool:
        if index + 1 < len(words):
            return False  # part of a longer capitalised run: "How It Will Work"
        start = offset + words[index].start()
        after = text[offset + words[index].end() :].split(None, 1)
        if after and len(after[0]) > 1 and after[0].isupper():
            return False  # a product line or an acronym follows: "Travis CI", "Jetson Xavier NX"
        if plain:
            return True
        before = [w.group() for w in words[:index]]
        if all(w in cues.SENTENCE_WORDS for w in before) and (
            before or not _sentence_start(text, start)
        ):
            return True  # where only a name is capitalised: "ring Per i morgen", "Ring Per"
        return bool(after) and after[0].lower() in cues.VERBS


def _words_at(text: str, starts: Sequence[int]) -> Iterator[re.Match[str]]:
    """The words (`cues.WORD_RE`'s runs of letters) that begin at `starts`, as
    `WORD_RE.finditer` gives them: whole runs, not the tail of one."""
    for start in starts:
        word = cues.WORD_RE.match(text, start)
        if word is not None and (start == 0 or cues.WORD_RE.match(text, start - 1) is None):
            yield word


@cache
def cue_word_patterns() -> tuple[re.Pattern[str], ...]:
    """Each word a cue can begin with, standing alone: a character that is no letter on each
    side, in any case. Where prefilter.py's pass finds them is where `NameFinder._cued` looks
    (`cue_words_at`): a word whose `lower()` is one of them matches it under IGNORECASE,
    letter for letter, and prefilter.py pads the text so that a word at either end has a
    character on each side. Looking up every word instead was a fifth of what finding names
    cost in new text (issue 21). Compiled on first use, not at import."""
    return tuple(
        re.compile(rf"[\W\d_](?i:{re.escape(word)})[\W\d_]") for word in sorted(cues.CUES_BY_WORD)
    )


def cue_words_at(candidates: Candidates | None, first: int) -> list[int] | None:
    """Where the words that may begin a cue begin, in order, from the pre-filter's
    `candidates` of a text, in which `cue_word_patterns()` are numbered from `first`; None
    when it cannot tell."""
    if candidates is None:
        return None
    starts: set[int] = set()
    for index, spans in candidates.items():
        if index < first:
            continue  # a rule's
        if spans is None:
            return None  # too many places to keep: every word is looked up
        starts.update(start + 1 for start, _ in spans)  # a span begins at the character before
    return sorted(starts)


def _house_number_or_saint_before(text: str, start: int) -> bool:
    # A short window, not the whole text before the name: a long note has many names.
    return cues.NOT_A_PERSON_BEFORE.search(text, max(0, start - 12), start) is not None


def _sentence_start(text: str, position: int) -> bool:
    before = text[max(0, position - 40) : position].rstrip(" \t\"'«(*-•")
    return not before or before[-1] in ".!?:;\n"


def later_mentions(
    text: str, people: dict[str, int], taken: bytearray, lexicon: Lexicon
) -> list[Found]:
    """Mentions of names already found in this example, in full or by one part ("Kari").
    A part that is also a word ("Rose", "Per") counts where only a name would be capitalised,
    or before a verb: "Rose will return", not "Per dag"."""
    if not people:
        return []
    # Looked up word by word rather than as one regex of every name: compiling a pattern per
    # example cost more than all the rules together.
    by_first: dict[str, list[str]] = {}
    for key in sorted(people, key=len, reverse=True):
        by_first.setdefault(key.split()[0], []).append(key)
    found = []
    for word in cues.MENTION_WORD_RE.finditer(text):
        start = word.start()
        for key in by_first.get(word.group().rstrip(".'\u2019-").casefold(), ()):
            end = start + len(key)
            if text[start:end].casefold() != key or not _name_ends(text, end):
                continue
            if not any(taken[start:end]) and _mentions_person(text, start, end, lexicon):
                taken[start:end] = b"\x01" * (end - start)
                found.append(Found(start, end, text[start:end]))
            break
    return found


def _name_ends(text: str, end: int) -> bool:
    """The name ends here, or a genitive s does: "Kari", "Karis", not "Karin" or "Kari-Anne"."""
    if end < len(text) and text[end] == "s":
        end += 1
    return end >= len(text) or not (text[end].isalnum() or text[end] in "_-")


def _mentions_person(text: str, start: int, end: int, lexicon: Lexicon) -> bool:
    if cues.EPONYM_AFTER.match(text, end) or cues.PRODUCT_AFTER.match(text, end):
        return False
    if text[start:end].capitalize() in lexicon.common_words and _sentence_start(text, start):
        after = text[end:].split(None, 1)
        return bool(after) and after[0].lower() in cues.AFTER_A_PERSON
    return True
