"""Names that hide in structure: JSON fields whose key says the value is a person, and JSON
carried inside a string (tool-call arguments, tool results), which a text rule alone reads as
prose. `{"name": "Ola Hansen", "phone": ...}` becomes `{"name": "[PERSON_1]", ...}` whether or
not the name is on any list; `{"name": "get_weather"}` and `{"name": "Oslo"}` stay.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from gateway.anonymize.lexicon import Lexicon, words_of

# Keys whose string value is a person's name, whatever it looks like.
PERSON_KEYS = words_of(
    """full_name fullname first_name firstname last_name lastname given_name family_name
    surname middle_name display_name patient patient_name pasient pasientnavn customer
    customer_name kunde kundenavn client_name klient contact_name contact_person kontaktperson
    fornavn etternavn navn_pasient signed_by signert_av author sender_name recipient_name
    doctor doctor_name lege behandler therapist next_of_kin parorende pårørende"""
)
# `name`/`navn` hold a person only in a record about one, or when the value reads as a name.
_AMBIGUOUS_KEYS = frozenset(("name", "navn"))
_PERSONAL_SIBLINGS = words_of(
    """phone telephone tlf telefon mobile mobil email epost e_mail birth_date birthdate
    date_of_birth dob fodselsdato født fnr fodselsnummer ssn national_id age alder address
    adresse patient_id pasient_id gender kjønn"""
)
_NAME_SHAPED = re.compile(r"[A-ZÀ-ÖØ-Þ][\w'\u2019-]+(?: [A-ZÀ-ÖØ-Þ][\w'\u2019.-]*){0,3}")

Redact = Callable[[str], str]


# Keys up to this long are normalised once (`_normalised`), longer ones every time.
CACHED_KEY_CHARS = 64


def normalise_key(key: str) -> str:
    if len(key) > CACHED_KEY_CHARS:
        return _normalise(key)
    return _normalised(key)


def _normalise(key: str) -> str:
    return re.sub(r"[\s-]+", "_", key.strip()).lower()


# Cached: every string in every body is looked up by its key, and a store holds few keys
# ("role", "content", "name" ...); a regex per lookup cost ~5% of an export. Only short keys:
# the keys of JSON in tool arguments and results are the caller's data, of any length, and a
# cache bounded in entries alone kept 4,096 of them twice (key and result), however long. Short
# ones take at most ~3 MB: 8,192 strings of 64 characters at up to four bytes a character.
_normalised = functools.lru_cache(maxsize=4096)(_normalise)


def is_person_field(key: str, value: str, record: dict[str, Any], lexicon: Lexicon) -> bool:
    key = normalise_key(key)
    if key in PERSON_KEYS:
        return bool(value.strip())
    if key not in _AMBIGUOUS_KEYS or not _NAME_SHAPED.fullmatch(value.strip()):
        return False
    if any(normalise_key(k) in _PERSONAL_SIBLINGS for k in record):
        return True
    words = value.split()
    listed = lexicon.is_given(words[0]) or any(lexicon.is_family(w) for w in words[1:])
    return listed and words[0] not in lexicon.not_names


def walk(
    value: Any, text: Redact, name: Redact, lexicon: Lexicon, skip: tuple[str, ...] = ()
) -> Any:
    """`value` with every string redacted: person fields by `name`, JSON inside a string
    parsed and walked the same way, everything else by `text`. Keys in `skip` at the top level
    are left as they are."""
    if isinstance(value, str):
        return embedded_json(value, text, name, lexicon)
    if isinstance(value, list):
        return [walk(item, text, name, lexicon) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in skip:
                out[key] = item
            elif isinstance(item, str) and is_person_field(str(key), item, value, lexicon):
                out[key] = name(item)
            else:
                out[key] = walk(item, text, name, lexicon)
        return out
    return value


def embedded_json(value: str, text: Redact, name: Redact, lexicon: Lexicon) -> str:
    """A string that holds a JSON object or array is redacted as JSON (written back as it was
    when nothing in it is personal); any other string as text."""
    first = value[:1]
    if first not in ("{", "[") and not first.isspace():
        return text(value)  # most strings: no copy of a long prompt made to strip it
    stripped = value.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return text(value)
        if isinstance(parsed, dict | list):
            redacted = walk(parsed, text, name, lexicon)
            if redacted == parsed:
                return value  # nothing personal: the original bytes, spacing and all
            return json.dumps(redacted, ensure_ascii=False, indent=2 if "\n" in stripped else None)
    return text(value)
