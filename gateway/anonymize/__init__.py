"""Personal data out of text: one engine for exports, `flywheel redact`, and capture.

- patterns.py: identifiers with a fixed shape (e-mail, phone, national id, card, IBAN, IP, date,
  keys), checked by checksum where the format has one.
- names.py: person names, from cues (titles, labels, role and address words, signatures), from
  the given- and family-name lists in lexicon.py (data/), and from later mentions.
- structure.py: names in JSON fields (`full_name`, a person record's `name`) and in JSON carried
  inside strings (tool-call arguments, tool results).
- engine.py: the Anonymizer that runs them in that order with one pseudonym table per example.

Clinical and technical content is left alone: vertebra levels (L4-L5), diagnosis codes (ICPC-2
L03), doses, versions, eponyms (Bell's palsy), drug, product and model names (Claude 3).
"""

from __future__ import annotations

from gateway.anonymize.engine import Anonymizer, Redaction
from gateway.anonymize.patterns import (
    BUILTIN_RULES,
    DEFAULT_PLACEHOLDERS,
    NORWEGIAN_PLACEHOLDERS,
    Rule,
    fodselsnummer_ok,
    iban_ok,
    luhn_ok,
)

__all__ = [
    "BUILTIN_RULES",
    "DEFAULT_PLACEHOLDERS",
    "NORWEGIAN_PLACEHOLDERS",
    "Anonymizer",
    "Redaction",
    "Rule",
    "age_range",
    "fodselsnummer_ok",
    "iban_ok",
    "luhn_ok",
    "redact_json",
]


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
    """One JSON document with every string value redacted (keys and numbers kept), person
    fields whole, and one pseudonym table for the document."""
    import orjson

    from gateway.anonymize.structure import walk

    people: dict[str, int] = {}
    redacted = walk(
        orjson.loads(line),
        lambda text: anonymizer.redact(text, people).text,
        lambda name: anonymizer.redact_name(name, people).text,
        anonymizer.lexicon,
    )
    return orjson.dumps(redacted).decode()
