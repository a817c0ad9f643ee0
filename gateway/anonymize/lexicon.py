"""The word lists the name finder consults, read once from the package's data folder.

The given- and family-name lists come from Faker (MIT; see data/SOURCE.md): English from US,
British, Irish and New Zealand statistics, Norwegian with Swedish and Danish, since the three
share most of their names; `*.no-extra.txt` adds common Norwegian names past Faker's top 100.
`given-common-words.txt` and `family-common-words.txt` mark the names that are also everyday
words ("Per", "Will", "Dag", "Berg", "Strand"), which need more evidence than the word alone;
`not-names.txt` lists words that look like names but name a disease, a drug, a place or a product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Lexicon:
    given: frozenset[str]
    family: frozenset[str]
    common_words: frozenset[str]  # given names that are also ordinary words
    family_common_words: frozenset[str]  # family names that are also ordinary words
    not_names: frozenset[str]

    def is_given(self, word: str) -> bool:
        """A given name, hyphenated ones too (Anne-Lise: every part is one)."""
        if word in self.given:
            return True
        return "-" in word and all(part in self.given for part in word.split("-"))

    def is_family(self, word: str) -> bool:
        return any(part in self.family for part in word.split("-"))

    def is_plain_family(self, word: str) -> bool:
        """A family name that is no ordinary word: "Nguyen", "Johansen"; not "Berg", "Strand"."""
        return word in self.family and word not in self.family_common_words

    def is_plain_given(self, word: str) -> bool:
        """A given name that is no ordinary word: on its own, it is a person."""
        return self.is_given(word) and word not in self.common_words


def words_of(text: str) -> frozenset[str]:
    """The words of a whitespace-separated list written out in code."""
    return frozenset(text.split())


def _read(name: str) -> frozenset[str]:
    text = resources.files("gateway.anonymize").joinpath("data", name).read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


@cache
def load_lexicon() -> Lexicon:
    """The shipped lists; read on first use (not at import) and shared by every Anonymizer."""
    return Lexicon(
        given=_read("given.en.txt") | _read("given.no.txt") | _read("given.no-extra.txt"),
        family=_read("family.en.txt") | _read("family.no.txt") | _read("family.no-extra.txt"),
        common_words=_read("given-common-words.txt"),
        family_common_words=_read("family-common-words.txt"),
        not_names=_read("not-names.txt"),
    )
