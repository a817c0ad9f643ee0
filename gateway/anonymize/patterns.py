"""The pattern rules: personal data with a fixed shape, and the checksums that tell it from
look-alikes.

Each rule is a regex plus, where a format has one, a checksum (Luhn for cards, mod 97 for IBANs,
the two check digits of a Norwegian fødselsnummer), so that order numbers and measurements are
not mistaken for identifiers. Clinical and technical content must survive them: vertebra levels
(L4-L5), diagnosis codes (ICPC-2 L03, ICD-10 M54.5), doses, times, versions, percentages.
Person names are not here: they need word lists and context (see names.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_PLACEHOLDERS = {
    "secret": "[SECRET]",
    "url_credentials": "[URL]",
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "bank_account": "[BANK_ACCOUNT]",
    "address": "[ADDRESS]",
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
    "bank_account": "[KONTONUMMER]",
    "address": "[ADRESSE]",
    "date": "[DATO]",
    "person": "[PERSON_{n}]",
}

_NO_STREET = (
    "gata|gaten|gate|veien|vei|vegen|veg|allé|alle|plassen|plass|stien|bakken|torget|torg"
    "|brygga|brygge|ringen|terrassen|terrasse"
)
_EN_STREET = (
    r"Street|St\.?|Road|Rd\.?|Lane|Avenue|Ave\.?|Drive|Close|Way|Court|Place|Crescent|Terrace"
    r"|Gardens|Boulevard|Blvd\.?|Square|Row|Mews"
)
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


def kontonummer_ok(text: str) -> bool:
    """A Norwegian bank account number: 11 digits, the last a mod 11 check digit."""
    digits = [int(c) for c in text if c.isdigit()]
    if len(digits) != 11:
        return False
    weights = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    check = 11 - sum(w * d for w, d in zip(weights, digits, strict=False)) % 11
    return check != 10 and (0 if check == 11 else check) == digits[10]


def _ipv6_ok(text: str) -> bool:
    # `::` shortens an address, but a few hex words around `::` are C++ or a log format
    # (std::vector is not hex; dead::beef is): ask for four groups, and a real address.
    if text.count(":") < 4:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _secret_ok(text: str) -> bool:
    # The value after `password=` must look like one: not a placeholder or an env reference.
    return len(text) >= 6 and not re.fullmatch(r"\*+|<[^>]*>|\$\{?\w+\}?|x+|changeme", text)


def _ssn_ok(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ipv4_ok(text: str) -> bool:
    # Loopback and the unspecified address name no one: they stay readable in technical text.
    if text.startswith("127.") or text == "0.0.0.0":
        return False
    return all(0 <= int(part) <= 255 for part in text.split("."))


# Pre-checks: what a text must hold for a rule to have any chance. One C-speed scan answers for
# every rule that shares it, where the rule itself would try its pattern at every position (the
# date and phone rules cost more than all the others on prose without a digit). `\d`, not
# `[0-9]`: the rules' `\d` matches every Unicode digit, and a pre-check must never skip a match.
DIGIT = re.compile(r"\d")
TWO_DIGITS = re.compile(r"\d\d")  # phone, national ids, account numbers, IBAN
# Every date form has digits around a separator (2024-08-06, 14.03.85, 3/4/2024) or a year
# after a space ("3 June 2023", "June 3rd, 2023"): "case 100000" and "p12345@x.no" hold neither.
DATE_SHAPE = re.compile(r"\d[-./]\d| \d{4}\b")
AT_SIGN = re.compile("@")
COLON = re.compile(":")
# Every alternative of the first secret rule holds one of these literals; the AWS key must
# hold a `/` or a `+`.
SECRET_MARKS = re.compile(r"sk[-_]|rk_|AKIA|gh[pousr]_|xox|hf_|AIza|eyJ|Bearer |[/+]")
# What each phone form holds: `+4`, digits around `-` or `.`, `00` (0047) or `07`/`020` at the
# start of a number, or a number that starts 2-9 (Norwegian). "Case 100000" holds none.
PHONE_SHAPE = re.compile(r"\+\d|\d[-.]\d|(?<![\w+])00|\b0[27]|\b[2-9]\d")
# A street word before a house number, or a house number before a capitalised street name.
ADDRESS_SHAPE = re.compile(rf"(?:{_NO_STREET})[ \t]+\d|\d[A-Z]?[ \t]+[A-Z]")
# The setting names of the password rule, as it spells them.
_SECRET_SETTINGS = (
    r"[Pp]ass(?:word|wd|ord)|PASS(?:WORD|WD|ORD)|[Ss]ecret|SECRET|[Aa]pi_?[Kk]ey"
    r"|API_?KEY|[Aa]ccess_?[Kk]ey|ACCESS_?KEY|[Tt]oken|TOKEN"
)
SECRET_SETTING = re.compile(_SECRET_SETTINGS)


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    group: int = 0  # the part of the match that is personal; -1: whichever group matched
    # A cheap pattern that every match of `pattern` contains (see DIGIT); None: always run.
    needs: re.Pattern[str] | None = None


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
            # An AWS secret access key: 40 characters of base64 with a `/` or `+` in them
            # (a 40-character git hash is hex and has neither).
            r"|(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]{0,39}[/+])(?=[A-Za-z0-9/+]{0,39}[a-z])"
            r"(?=[A-Za-z0-9/+]{0,39}[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
        needs=SECRET_MARKS,
    ),
    # The value of a password or secret setting: `password=Tr0ub4dor&3`, `PGPASSWORD=...`.
    Rule(
        "secret",
        re.compile(
            # Spelled out case by case, not (?i): a pattern that opens on a few letters is
            # skipped through quickly, a case-insensitive alternation is tried everywhere.
            rf"(?:{_SECRET_SETTINGS})"
            r"[\"']?[ \t]*[=:][ \t]*[\"']?([^\s\"',;]+)"
        ),
        _secret_ok,
        group=1,
        needs=SECRET_SETTING,
    ),
    # A URL with a password in it, the user name may be empty (redis://:pw@host).
    Rule(
        "url_credentials",
        re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]*:[^\s/@]+@[^\s]+"),
        needs=AT_SIGN,
    ),
    Rule("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), needs=AT_SIGN),
    Rule(
        "iban",
        # Pasted from a form in lowercase too (nl91abna0417164300); the checksum decides.
        re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?\b"),
        iban_ok,
        needs=TWO_DIGITS,
    ),
    Rule("card", re.compile(r"\b\d(?:[ .-]?\d){12,18}\b"), luhn_ok, needs=DIGIT),
    Rule("national_id", re.compile(r"\b\d{6} ?\d{5}\b"), fodselsnummer_ok, needs=TWO_DIGITS),
    Rule("national_id", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), _ssn_ok, needs=TWO_DIGITS),
    # Norwegian account numbers: the 4.2.5 form with its check digit; 11 plain digits only
    # after a word that says it is an account (an order number passes mod 11 one time in 11).
    Rule(
        "bank_account",
        re.compile(r"\b\d{4}([. ])\d{2}\1\d{5}\b"),
        kontonummer_ok,
        needs=TWO_DIGITS,
    ),
    Rule(
        "bank_account",
        re.compile(
            r"(?:[Kk]ontonummer|[Kk]ontonr|[Bb]ankkonto|[Kk]onto|[Aa]ccount(?: number| no)?)\.?:?"
            r"[ \t]+(?:til[ \t]+)?(\d{11})\b"
        ),
        kontonummer_ok,
        group=1,
        needs=TWO_DIGITS,
    ),
    Rule("ip", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), _ipv4_ok, needs=DIGIT),
    Rule("ip", re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"), needs=COLON),
    Rule(
        "ip",
        re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){1,6}:?(?::?[0-9a-fA-F]{1,4}){1,6}(?![\w:])"),
        _ipv6_ok,
        needs=COLON,
    ),
    # Street addresses: "Storgata 12, 0155 Oslo", "Bygdøy allé 23", "221B Baker Street, London
    # NW1 6XE". A street word and a house number, with the postcode and town when they follow.
    Rule(
        "address",
        re.compile(
            rf"\b(?:[A-ZÆØÅ][a-zæøåé]+(?:{_NO_STREET})"
            rf"|(?:[A-ZÆØÅ][a-zæøåé]+[ \t]){{1,2}}(?:{_NO_STREET}))"
            r"[ \t]+\d{1,4}[ \t]?[A-Za-z]?\b(?:,?[ \t]*\d{4}[ \t]+[A-ZÆØÅ][a-zæøå]+)?"
            rf"|\b\d{{1,4}}[A-Z]?[ \t]+(?:[A-Z][a-z]+[ \t]+){{1,3}}(?:{_EN_STREET})(?![\w])"
            r"(?:,[ \t]*[A-Z][a-z]+(?:[ \t]+[A-Z]{1,2}\d[A-Z\d]?[ \t]*\d[A-Z]{2}\b)?)?"
        ),
        needs=ADDRESS_SHAPE,
    ),
    Rule(
        "phone",
        re.compile(
            r"(?<![\w+])\+\d{1,3}[ -]?(?:\(\d{1,4}\)[ -]?)?\d{2,4}(?:[ -]?\d{2,4}){1,4}\b"
            r"|\(\d{3}\) ?\d{3}-\d{4}\b|\b\d{3}[-.]\d{3}[-.]\d{4}\b"
            # `00` for `+` before the country codes our users call (0047 95 12 34 56), and UK
            # mobiles and London numbers written nationally (07700 900123, 020 7946 0958).
            r"|(?<![\w+])00(?:47|46|45|44|49|33|1)[ -]?\d{2,4}(?:[ -]?\d{2,4}){1,4}\b"
            r"|\b07\d{3} ?\d{6}\b|\b020 ?\d{4} ?\d{4}\b"
            # Norwegian national numbers: 8 digits starting 2-9, as `22 33 44 55`, `912 34 567`
            # or `91234567`; not the date in a model name (claude-3-opus-20240229) or a build
            # number (20240517.3).
            r"|(?<!-)\b[2-9]\d(?:(?: ?\d\d){3}|\d \d\d \d{3})\b(?!\.\d)"
        ),
        needs=PHONE_SHAPE,
    ),
    Rule(
        "date",
        re.compile(
            # Not inside a model name or version: gpt-4o-2024-08-06 stays whole.
            r"(?<![\w.-])\d{4}-\d{2}-\d{2}\b|\b\d{1,2}[./]\d{1,2}[./]\d{4}\b"
            # A two-digit year with dots only zero-padded (14.03.85): 3.12.11 is a version.
            r"|\b\d{1,2}/\d{1,2}/\d{2}\b|\b\d\d\.\d\d\.\d\d\b"
            rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\.? (?:{_MONTHS})\.? \d{{4}}\b"
            rf"|\b(?:{_MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b",
            re.IGNORECASE,
        ),
        needs=DATE_SHAPE,
    ),
)
