"""Personal data out of an example before any format sees it.

Every text a dataset can carry is redacted with one pseudonym table per example, so `[PERSON_1]`
in the prompt is `[PERSON_1]` in the answer and in the correction. User and session ids become
salted hashes (still grouping one user's examples for the split) or are dropped; ages in tags
become decade ranges; the API key's name never leaves. Names in structure are found too: a
message's `name` (`kari_nordmann` becomes `PERSON_1`, the same person as `[PERSON_1]` in the
text), person fields of JSON, and JSON inside tool-call arguments and tool results.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from exporters.selection import Example
from gateway.anonymize import Anonymizer, age_range
from gateway.anonymize.structure import walk
from gateway.config import AnonymizeConfig

# Distinct texts whose spans one export keeps (gateway.anonymize.engine.SpanCache). An entry is
# a 16-byte key and its spans, ~250 bytes for a text with one: the cache's byte bound (20 MB)
# holds ~80,000 of them, every system prompt, few-shot block and tool schema a store repeats.
CACHE_TEXTS = 80_000


class Privacy:
    def __init__(self, config: AnonymizeConfig, cache_size: int = CACHE_TEXTS):
        self.anonymizer = Anonymizer.from_config(config, cache_size)
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
            return self.anonymizer.redact_text(text, people, self.redactions)

        def redact_name(name: str, identifier: bool = False) -> str:
            result = self.anonymizer.redact_name(name, people, identifier=identifier)
            self.redactions.update(result.counts)
            return result.text

        def redact_body(body: Any, skip: tuple[str, ...]) -> Any:
            return walk(body, redact, redact_name, self.anonymizer.lexicon, skip=skip)

        request = record.get("request")
        if isinstance(request, dict) and "user" in request:
            request["user"] = self.pseudonym(request["user"])  # OpenAI's end-user id field
        for message in _messages(request, record.get("response")):
            # OpenAI's participant name takes only [A-Za-z0-9_-]: `PERSON_1`, not `[PERSON_1]`.
            if isinstance(message.get("name"), str) and message["name"]:
                message["name"] = redact_name(message["name"], identifier=True)
        # Every string in the bodies, not only message contents: embeddings inputs, reasoning,
        # refusals and tool arguments can all carry personal data into the raw formats.
        record["request"] = redact_body(request, skip=("user", "model"))
        record["response"] = redact_body(record.get("response"), skip=("id", "model"))
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


def _messages(request: Any, response: Any) -> list[dict[str, Any]]:
    """The chat messages of a record: the prompt's, and each choice's answer."""
    found = []
    if isinstance(request, dict) and isinstance(request.get("messages"), list):
        found += [m for m in request["messages"] if isinstance(m, dict)]
    if isinstance(response, dict) and isinstance(response.get("choices"), list):
        for choice in response["choices"]:
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                found.append(message)
    return found
