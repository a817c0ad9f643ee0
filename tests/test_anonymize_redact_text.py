"""`Anonymizer.redact_text`, an export's way to redact (exporters/privacy.py), writes what
`redact` writes and counts what it counts, for texts that hold nothing as for the rest."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.anonymize_recall import DEFAULT_CORPUS, load_corpus
from gateway.anonymize import Anonymizer
from tests.test_anonymize_cache import examples


@pytest.mark.parametrize("cache_size", [0, 100_000])
def test_redact_text_writes_and_counts_what_redact_does(cache_size: int) -> None:
    texts = [example.text for example in load_corpus(DEFAULT_CORPUS)]
    roles = ["user", "assistant", "stop", "Done for case 12345.", "Case 7: mail p7@x.no"]
    rows = [[*row, *roles] for row in examples(texts, 600)]
    by_text, by_redaction = Anonymizer(cache_size=cache_size), Anonymizer(cache_size=cache_size)
    counted: Counter[str] = Counter()
    for _ in range(2):  # the second time from the caches
        for row in rows:
            people: dict[str, int] = {}
            expected_people: dict[str, int] = {}
            for text in row:
                expected = by_redaction.redact(text, expected_people)
                before = counted.copy()
                assert by_text.redact_text(text, people, counted) == expected.text
                assert counted - before == expected.counts
            assert people == expected_people
