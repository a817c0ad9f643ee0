"""Personal data out of an example before any format sees it.

Every text a dataset can carry is redacted with one pseudonym table per example, so `[PERSON_1]`
in the prompt is `[PERSON_1]` in the answer and in the correction. User and session ids become
salted hashes (still grouping one user's examples for the split) or are dropped; ages in tags
become decade ranges; the API key's name never leaves.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from exporters.selection import Example
from gateway.anonymize import Anonymizer, age_range
from gateway.config import AnonymizeConfig


class Privacy:
    def __init__(self, config: AnonymizeConfig):
        self.anonymizer = Anonymizer.from_config(config)
        self.drop_ids = config.ids == "drop"
        self.salt = config.salt
        self.redactions: Counter[str] = Counter()

    def apply(self, example: Example) -> None:
        """Redact `example` in place and count what was removed."""
        people: dict[str, int] = {}
        record = example.record

        def redact(text: Any) -> Any:
            if not isinstance(text, str) or not text:
                return text
            result = self.anonymizer.redact(text, people)
            self.redactions.update(result.counts)
            return result.text

        request = record.get("request")
        if isinstance(request, dict) and "user" in request:
            request["user"] = self.pseudonym(request["user"])  # OpenAI's end-user id field
        # Every string in the bodies, not only message contents: embeddings inputs, reasoning,
        # refusals and tool arguments can all carry personal data into the raw formats.
        record["request"] = _walk(request, redact, skip=("user", "model"))
        record["response"] = _walk(record.get("response"), redact, skip=("id", "model"))
        record["error_message"] = redact(record.get("error_message"))
        for key in ("correction", "comment"):
            if key in example.feedback:
                example.feedback[key] = redact(example.feedback[key])
        for event in record.get("feedback") or ():
            for key in ("correction", "comment"):
                event[key] = redact(event.get(key))
            event.pop("api_key_name", None)
        for key in ("user", "session"):
            record[key] = self.pseudonym(record.get(key))
        record.pop("api_key_name", None)
        record["tags"] = {
            key: self.tag_value(key, value, redact)
            for key, value in (record.get("tags") or {}).items()
        }

    def pseudonym(self, value: Any) -> str | None:
        if value is None or self.drop_ids:
            return None
        digest = hashlib.sha256(f"{self.salt}\x00{value}".encode()).hexdigest()
        return digest[:16]

    @staticmethod
    def tag_value(key: str, value: Any, redact: Any) -> Any:
        if "age" in key.lower().split("_"):
            return age_range(value)
        return redact(value)


def _walk(value: Any, redact: Any, skip: tuple[str, ...] = ()) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_walk(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: v if k in skip else _walk(v, redact) for k, v in value.items()}
    return value
