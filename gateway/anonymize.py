"""Personal data out of text: one engine for exports, `flywheel redact`, and capture.

Each rule is a regex plus, where a format has one, a checksum (Luhn for cards, mod 97 for IBANs,
the two check digits of a Norwegian fødselsnummer), so that order numbers and measurements are
not mistaken for identifiers. Rules run in priority order and a span taken by one is not
touched by the next. Names are only recognised after a title or a label ("Dr.", "Pasient:",
"my name is", "jeg heter"...), and become consistent pseudonyms within one text: the same name
is `[PERSON_1]` every time. Clinical and technical content is left alone: vertebra levels
(L4-L5), diagnosis codes (ICPC-2 L03, ICD-10 M54.5), doses, times, versions, percentages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import AnonymizeConfig

DEFAULT_PLACEHOLDERS = {
    "secret": "[SECRET]",
    "url_credentials": "[URL]",
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "card": "[CARD]",
    "national_id": "[NATIONAL_ID]",
    "ip": "[IP]",
    "phone": "[PHONE]",
    "date": "[DATE]",
    "person": "[PERSON_{n}]",
}
# Seed 001's placeholders, for Norwegian datasets: `anonymize.placeholders: norwegian`.
NORWEGIAN_PLACEHOLDERS = {
    **DEFAULT_PLACEHOLDERS,
    "email": "[EPOST]",
    "phone": "[TELEFON]",
    "national_id": "[FNUMMER]",
    "date": "[DATO]",
    "person": "[PERSON_{n}]",
}

_NAME = r"[A-ZÆØÅÉ][a-zæøåéöüäA-ZÆØÅ'-]+(?:\s+[A-ZÆØÅÉ][a-zæøåéöüäA-ZÆØÅ'-]+){0,2}"
_MONTHS = (
    "jan(?:uary|uar)?|feb(?:ruary|ruar)?|mar(?:ch|s)?|apr(?:il)?|ma[iy]|june?|juni|july?|juli|"
    "aug(?:ust)?|sep(?:tember)?|o[ck]t(?:ober)?|nov(?:ember)?|de[cs](?:ember)?"
)


def luhn_ok(digits: str) -> bool:
    numbers = [int(c) for c in digits if c.isdigit()]
    if not 13 <= len(numbers) <= 19:
        return False
    total = 0
    for i, n in enumerate(reversed(numbers)):
        if i % 2:
            n *= 2
            n -= 9 if n > 9 else 0
        total += n
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def fodselsnummer_ok(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    if len(digits) != 11:
        return False
    w1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
    w2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    k1 = 11 - sum(w * d for w, d in zip(w1, digits, strict=False)) % 11
    k1 = 0 if k1 == 11 else k1
    k2 = 11 - sum(w * d for w, d in zip(w2, digits, strict=False)) % 11
    k2 = 0 if k2 == 11 else k2
    return k1 == digits[9] and k2 == digits[10] and k1 != 10 and k2 != 10


def _ssn_ok(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ipv4_ok(text: str) -> bool:
    # Loopback and the unspecified address name no one: they stay readable in technical text.
    if text.startswith("127.") or text == "0.0.0.0":
        return False
    return all(0 <= int(part) <= 255 for part in text.split("."))


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    group: int = 0  # the part of the match that is personal (names follow a title)


BUILTIN_RULES = (
    Rule(
        "secret",
        re.compile(
            r"\b(?:sk-[A-Za-z0-9_-]{16,}"
            # Short OpenAI-style keys too (test keys, a key cut short in a paste: sk-abc123XYZ).
            # A bare `sk-` run must mix in a digit or a capital, as random keys do and
            # hyphenated words (sk-learn, sk-estimators) do not; after `sk-proj-` and the other
            # OpenAI prefixes, the prefix itself says it is a key.
            r"|sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{6,}|sk-(?=[a-z]*[A-Z0-9])[A-Za-z0-9]{8,}"
            r"|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,}|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"
            r"|hf_[A-Za-z0-9]{30,}|AIza[0-9A-Za-z_-]{35}"
            # A JSON Web Token: header and payload are base64 of a JSON object, `{"`.
            r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
            r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{16,}"
        ),
    ),
    Rule("url_credentials", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@[^\s]+")),
    Rule("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    Rule(
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        iban_ok,
    ),
    Rule("card", re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), luhn_ok),
    Rule("national_id", re.compile(r"\b\d{6} ?\d{5}\b"), fodselsnummer_ok),
    Rule("national_id", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), _ssn_ok),
    Rule("ip", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), _ipv4_ok),
    Rule("ip", re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b")),
    Rule(
        "phone",
        re.compile(
            r"(?<![\w+])\+\d{1,3}[ -]?(?:\(\d{1,4}\)[ -]?)?\d{2,4}(?:[ -]?\d{2,4}){1,4}\b"
            r"|\(\d{3}\) ?\d{3}-\d{4}\b|\b\d{3}[-.]\d{3}[-.]\d{4}\b"
            # Norwegian national numbers: 8 digits starting 2-9, as `22 33 44 55`, `912 34 567`
            # or `91234567`; not the date in a model name (claude-3-opus-20240229) or a build
            # number (20240517.3).
            r"|(?<!-)\b[2-9]\d(?:(?: ?\d\d){3}|\d \d\d \d{3})\b(?!\.\d)"
        ),
    ),
    Rule(
        "date",
        re.compile(
            # Not inside a model name or version: gpt-4o-2024-08-06 stays whole.
            r"(?<![\w.-])\d{4}-\d{2}-\d{2}\b|\b\d{1,2}[./]\d{1,2}[./]\d{4}\b"
            # A two-digit year with dots only zero-padded (14.03.85): 3.12.11 is a version.
            r"|\b\d{1,2}/\d{1,2}/\d{2}\b|\b\d\d\.\d\d\.\d\d\b"
            rf"|\b\d{{1,2}}\.? (?:{_MONTHS})\.? \d{{4}}\b|\b(?:{_MONTHS})\.? \d{{1,2}},? \d{{4}}\b",
            re.IGNORECASE,
        ),
    ),
    Rule(
        "person",
        re.compile(
            rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Prof|Fru|Herr)\.? ({_NAME})"
            rf"|\b(?:[Pp]asient|[Pp]atient|[Nn]avn|[Nn]ame|[Bb]ehandler)\s*:\s*({_NAME})"
            rf"|\b(?:[Mm]y name is|[Jj]eg heter|[Mm]itt navn er|I am|I'm)\s+({_NAME})"
        ),
        group=-1,  # whichever alternative matched
    ),
)


@dataclass(frozen=True)
class Redaction:
    text: str
    counts: Counter[str]


class Anonymizer:
    @classmethod
    def from_config(cls, config: AnonymizeConfig) -> Anonymizer:
        return cls(
            config.placeholders,
            extra_rules=[Rule(kind, re.compile(pattern)) for kind, pattern in config.rules],
            words=config.words,
        )

    def __init__(
        self,
        placeholders: Mapping[str, str] = DEFAULT_PLACEHOLDERS,
        extra_rules: Iterable[Rule] = (),
        words: Mapping[str, Iterable[str]] | None = None,
    ):
        self.placeholders = {**DEFAULT_PLACEHOLDERS, **placeholders}
        rules = list(extra_rules)
        for kind, listed in (words or {}).items():
            alternatives = "|".join(re.escape(w) for w in sorted(listed, key=len, reverse=True))
            if alternatives:
                rules.append(Rule(kind, re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)))
        # Configured rules and word lists come first: they are the operator's own knowledge.
        self.rules = (*rules, *BUILTIN_RULES)

    def redact(self, text: str, people: dict[str, int] | None = None) -> Redaction:
        """`text` with personal data replaced. Pass one `people` dict for all the texts of
        one example, so a name is the same `[PERSON_n]` in the prompt and the answer."""
        spans: list[tuple[int, int, str, str]] = []
        taken = bytearray(len(text))
        for rule in self.rules:
            for match in rule.pattern.finditer(text):
                start, end, value = _part(match, rule.group)
                if start == end or any(taken[start:end]):
                    continue
                if rule.valid is not None and not rule.valid(value):
                    continue
                taken[start:end] = b"\x01" * (end - start)
                spans.append((start, end, rule.kind, value))
        people = {} if people is None else people
        for _, _, kind, value in sorted(spans):
            if kind == "person":
                _remember(people, value)
        if people:
            # A name once recognised (after a title or a label) is personal wherever it
            # appears in the example, in full or as one of its parts ("Kari").
            for match in _mentions(people).finditer(text):
                start, end = match.span()
                if match.group()[0].isupper() and not any(taken[start:end]):
                    taken[start:end] = b"\x01" * (end - start)
                    spans.append((start, end, "person", match.group()))
        spans.sort()
        counts: Counter[str] = Counter()
        out, last = [], 0
        for start, end, kind, value in spans:
            out.append(text[last:start])
            template = self.placeholders.get(kind, f"[{kind.upper()}]")
            if "{n}" in template:
                number = people.get(value.casefold()) or _remember(people, value)
                template = template.replace("{n}", str(number))
            out.append(template)
            counts[kind] += 1
            last = end
        out.append(text[last:])
        return Redaction("".join(out), counts)


def _remember(people: dict[str, int], name: str) -> int:
    """The pseudonym number of `name`, given a new one (with its parts) if it has none."""
    key = name.casefold()
    if key not in people:
        number = max(people.values(), default=0) + 1
        people[key] = number
        for part in key.split():
            if len(part) >= 3:
                people.setdefault(part, number)
    return people[key]


def _mentions(people: dict[str, int]) -> re.Pattern[str]:
    names = sorted(people, key=len, reverse=True)
    return re.compile(rf"\b(?:{'|'.join(re.escape(n) for n in names)})\b", re.IGNORECASE)


def _part(match: re.Match[str], group: int) -> tuple[int, int, str]:
    if group == -1:
        for index in range(1, (match.lastindex or 0) + 1):
            if match.group(index) is not None:
                return match.start(index), match.end(index), match.group(index)
        return match.start(), match.start(), ""
    return match.start(group), match.end(group), match.group(group)


def age_range(age: object) -> str | None:
    """An age as its decade (47 -> "40-49"), as seed 001 exports it; None if not an age."""
    try:
        years = int(str(age).strip())
    except ValueError:
        return None
    if not 0 <= years < 130:
        return None
    decade = years // 10 * 10
    return f"{decade}-{decade + 9}"


def redact_json(anonymizer: Anonymizer, line: str) -> str:
    """One JSON document with every string value redacted (keys and numbers kept)."""
    import orjson

    def walk(value: object) -> object:
        if isinstance(value, str):
            return anonymizer.redact(value).text
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return orjson.dumps(walk(orjson.loads(line))).decode()
