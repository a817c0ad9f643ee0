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
        if isinstance(request, dict):
            for message in request.get("messages") or ():
                _redact_message(message, redact)
            prompt = request.get("prompt")
            if isinstance(prompt, list):
                request["prompt"] = [redact(p) for p in prompt]
            elif isinstance(prompt, str):
                request["prompt"] = redact(prompt)
        response = record.get("response")
        if isinstance(response, dict):
            for choice in response.get("choices") or ():
                if isinstance(choice, dict):
                    _redact_message(choice.get("message"), redact)
                    if "text" in choice:
                        choice["text"] = redact(choice["text"])
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


def _redact_message(message: Any, redact: Any) -> None:
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = redact(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = redact(part["text"])
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            function["arguments"] = redact(function["arguments"])
