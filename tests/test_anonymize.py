"""The anonymizer: personal data found (with checksums where formats have them), and clinical
and technical content left alone."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from gateway.anonymize import (
    NORWEGIAN_PLACEHOLDERS,
    Anonymizer,
    fodselsnummer_ok,
    iban_ok,
    luhn_ok,
)

REDACTED = [
    ("Mail me at kari.nordmann@example.no please", "Mail me at [EMAIL] please", "email"),
    ("Ring +47 912 34 567 i morgen", "Ring [PHONE] i morgen", "phone"),
    ("Ring 22 33 44 55 i morgen", "Ring [PHONE] i morgen", "phone"),
    ("Ring 912 34 567 i morgen", "Ring [PHONE] i morgen", "phone"),
    ("Call (415) 555-2671 now", "Call [PHONE] now", "phone"),
    ("fnr 01010150074 er registrert", "fnr [NATIONAL_ID] er registrert", "national_id"),
    ("SSN 123-45-6789 on file", "SSN [NATIONAL_ID] on file", "national_id"),
    ("card 4111 1111 1111 1111 expires", "card [CARD] expires", "card"),
    ("IBAN NO93 8601 1117 947 to pay", "IBAN [IBAN] to pay", "iban"),
    ("from 192.168.10.24 today", "from [IP] today", "ip"),
    ("born 1985-03-14 in Oslo", "born [DATE] in Oslo", "date"),
    ("seen 14.03.2024 again", "seen [DATE] again", "date"),
    ("født 14.03.85 i Bergen", "født [DATE] i Bergen", "date"),
    ("on 3 March 2024 we met", "on [DATE] we met", "date"),
    ("key sk-proj-abcdefghijklmnopqrstuvwx leaked", "key [SECRET] leaked", "secret"),
    # Short OpenAI-style keys (issue 13): a test key, a project key cut short in a paste.
    ("key sk-abc123XYZ leaked", "key [SECRET] leaked", "secret"),
    ("OPENAI_API_KEY=sk-Tq7wE2rY9u ok", "OPENAI_API_KEY=[SECRET] ok", "secret"),
    ("use sk-proj-abc123 now", "use [SECRET] now", "secret"),
    ("use sk-svcacct-Zx81Qp now", "use [SECRET] now", "secret"),
    ("AKIAIOSFODNN7EXAMPLE is an AWS key", "[SECRET] is an AWS key", "secret"),
    ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [SECRET]", "secret"),
    ("STRIPE_KEY=sk_test_4eC39HqLyjWDarjtT1zdp7dc ok", "STRIPE_KEY=[SECRET] ok", "secret"),
    ("token hf_abcdefghijklmnopqrstuvwxyz0123456 set", "token [SECRET] set", "secret"),
    ("key=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "key=[SECRET]", "secret"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92 in log",
        "jwt [SECRET] in log",
        "secret",
    ),
    ("db at postgres://admin:hunter2@db.local/x", "db at [URL]", "url_credentials"),
    ("REDIS_URL=redis://:hunter2hunter2@cache:6379/0", "REDIS_URL=[URL]", "url_credentials"),
    ("password=Tr0ub4dor&3 in config", "password=[SECRET] in config", "secret"),
    ("AWS wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY set", "AWS [SECRET] set", "secret"),
    ("IPv6 2001:db8:85a3::8a2e:370:7334 hit", "IPv6 [IP] hit", "ip"),
    ("IBAN nl91abna0417164300 copied", "IBAN [IBAN] copied", "iban"),
    ("Card 4111.1111.1111.1111 charged", "Card [CARD] charged", "card"),
    ("Kontonummer 1503.12.34562 i DNB", "Kontonummer [BANK_ACCOUNT] i DNB", "bank_account"),
    ("Betal til konto 97100500128 nå", "Betal til konto [BANK_ACCOUNT] nå", "bank_account"),
    ("Adresse Storgata 12, 0155 Oslo.", "Adresse [ADDRESS].", "address"),
    ("to 221B Baker Street, London NW1 6XE.", "to [ADDRESS].", "address"),
    ("call 07700 900123 now", "call [PHONE] now", "phone"),
    ("ring 0047 95 12 34 56 nå", "ring [PHONE] nå", "phone"),
    ("injured June 3rd, 2023 on ice", "injured [DATE] on ice", "date"),
    ("Dr. Hansen examined him", "Dr. [PERSON_1] examined him", "person"),
    ("Pasient: Ola Nordmann, 45 år", "Pasient: [PERSON_1], 45 år", "person"),
    ("Hi, my name is Sarah Connor.", "Hi, my name is [PERSON_1].", "person"),
    ("Hei, jeg heter Kari", "Hei, jeg heter [PERSON_1]", "person"),
]

KEPT = [
    "Smerter ved L4-L5 og L5-S1, utstråling til venstre ben",
    "ICPC-2 L03, ICD-10 M54.5, ICD-10 S13.4",
    "Ibuprofen 400 mg x 3, paracet 500 mg",
    "Kontroll kl 14:30, varighet 45 min",
    "Upgrade to Python 3.11.7 and aiohttp 3.14.5",
    "Python 3.12.11, Django 4.2.16, urllib3 1.26.20",  # not dates: dotted dates pad (14.03.85)
    "Use claude-3-opus-20240229 here; build 20240517.3 failed",  # not Norwegian phone numbers
    "Recovery improved by 35% in 6 weeks",
    "Use gpt-4o-mini or claude-3-5-haiku for this",
    "Order 1234567890123 shipped",  # 13 digits, fails Luhn: not a card
    "Invoice 12345678901",  # 11 digits, wrong check digits: not a fødselsnummer
    'JSON {"a": 1} and {"b": [2, 3]}',
    # `sk-` words, not keys: no digit or capital, or too short to be one.
    "Try sk-learn or sk-estimators; the sk-SK locale; sk-Ab3 and sk-proj-x.",
    "Use a task-Abc12345 runner",  # `sk-` inside a word
    "std::vector<int> and a::b::c",  # `::` in code, not IPv6
    "password: ******** and token: ${GITHUB_TOKEN}",  # no secret shown
    "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",  # a git hash is not an AWS key
    "Order 12345678901 and konto 12345678901",  # 11 digits failing mod 11
    "max_tokens: 512, pwd: /home/app",
]


@pytest.mark.parametrize(("text", "expected", "kind"), REDACTED)
def test_personal_data_is_redacted(text: str, expected: str, kind: str) -> None:
    result = Anonymizer().redact(text)
    assert result.text == expected
    assert result.counts[kind] == 1


@pytest.mark.parametrize("text", KEPT)
def test_clinical_and_technical_content_is_kept(text: str) -> None:
    result = Anonymizer().redact(text)
    assert result.text == text
    assert not result.counts


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("NO9386011117947") and not iban_ok("NO9386011117948")
    assert fodselsnummer_ok("01010150074") and not fodselsnummer_ok("01010150075")


def test_the_same_person_keeps_one_pseudonym() -> None:
    text = "Pasient: Ola Nordmann. Dr. Hansen ringte. Pasient: Ola Nordmann igjen."
    assert Anonymizer().redact(text).text == (
        "Pasient: [PERSON_1]. Dr. [PERSON_2] ringte. Pasient: [PERSON_1] igjen."
    )


def test_norwegian_placeholders_words_and_custom_rules() -> None:
    import re

    from gateway.anonymize import Rule

    anonymizer = Anonymizer(
        NORWEGIAN_PLACEHOLDERS,
        extra_rules=[Rule("journal", re.compile(r"\bJ-\d{6}\b"))],
        words={"clinic": ["Majorstua Klinikk"]},
    )
    result = anonymizer.redact("Epost ola@firma.no, tlf 91234567, J-123456 ved Majorstua Klinikk")
    assert result.text == "Epost [EPOST], tlf [TELEFON], [JOURNAL] ved [CLINIC]"


def test_flywheel_redact_reads_stdin_line_by_line() -> None:
    lines = ["plain: call +47 912 34 567", '{"msg": "mail a@b.no", "n": 3, "list": ["Dr. Lie"]}']
    plain = subprocess.run(
        [sys.executable, "-m", "gateway", "redact"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert plain[0] == "plain: call [PHONE]"
    as_json = subprocess.run(
        [sys.executable, "-m", "gateway", "redact", "--jsonl"],
        input=lines[1] + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert orjson.loads(as_json) == {"msg": "mail [EMAIL]", "n": 3, "list": ["Dr. [PERSON_1]"]}


def test_config_presets_rules_and_errors() -> None:
    from gateway.config import parse_config
    from gateway.errors import ConfigError

    config = parse_config(
        {
            "anonymize": {
                "placeholders": "norwegian",
                "rules": [{"name": "journal", "pattern": r"\bJ-\d{6}\b"}],
                "words": {"clinic": ["Majorstua Klinikk"]},
            }
        }
    )
    text = Anonymizer.from_config(config.anonymize).redact("ola@x.no J-123456 Majorstua Klinikk")
    assert text.text == "[EPOST] [JOURNAL] [CLINIC]"
    with pytest.raises(ConfigError, match=r"anonymize.rules\[0\].pattern is not a valid regex"):
        parse_config({"anonymize": {"rules": [{"name": "x", "pattern": "("}]}})
    with pytest.raises(ConfigError, match=r"anonymize\.placeholders must be"):
        parse_config({"anonymize": {"placeholders": "klingon"}})
