"""KTO: TRL's unpaired conversational preference format, one judged answer per line.

`{"prompt": [messages], "completion": [{"role": "assistant", ...}], "label": bool, "metadata"}`.
KTO needs no pairs, only whether each answer was good, so every answer with a clear signal counts.

The label, first rule that applies wins:

1. A correction that differs from the answer (`was_corrected`): two records, the answer
   labelled false and the correction labelled true. The user showed what they wanted.
2. The outcome: accepted -> true, rejected -> false. What the user did with the answer says more
   than what they clicked. `modified` without a correction does not decide (the edit may have
   been a comma); the next rules do.
3. The thumbs: up -> true, down -> false.
4. The rating: 4 or 5 -> true, 1 or 2 -> false; 3 does not decide.

Otherwise the example is left out as `no_label`. The score is not used: its scale is the
application's, so no threshold here would mean the same thing everywhere. A fixed order rather
than "the latest signal wins": the signals answer different questions (did they use it, did they
like it), and a fixed order labels an example the same however its events were sent.
Answers with tool calls are left out (`tool_calls_unsupported`); KTO learns from text answers.
"""

from __future__ import annotations

from typing import Any

from exporters.chat import Unusable, prompt_messages, was_corrected
from exporters.formats import Built, Format
from exporters.formats.preference import answer_text, assistant, check_output, check_prompt
from exporters.schema import MESSAGE, TEXT_MESSAGE
from exporters.selection import Example
from gateway.tokens import count_prompt

_KEYS = {"prompt", "completion", "label"}
_OUTCOME_LABELS = {"accepted": True, "rejected": False}
_THUMB_LABELS = {"up": True, "down": False}


def label(feedback: dict[str, Any]) -> tuple[bool, str] | None:
    """The label of the model's own answer and the signal it came from, or None."""
    outcome = feedback.get("outcome")
    if outcome in _OUTCOME_LABELS:
        return _OUTCOME_LABELS[outcome], "outcome"
    thumbs = feedback.get("thumbs")
    if thumbs in _THUMB_LABELS:
        return _THUMB_LABELS[thumbs], "thumbs"
    rating = feedback.get("rating")
    if isinstance(rating, int | float) and not isinstance(rating, bool) and rating != 3:
        return rating >= 4, "rating"
    return None


class KTO(Format):
    builds_anywhere = True
    name = "kto"
    schema = {
        "prompt": [MESSAGE],
        "completion": [TEXT_MESSAGE],
        "label": "bool",
        "metadata": {
            "interaction_id": "string",
            "model": "string",
            "variant": "string",
            "label_from": "string",
            "completion_from": "string",
            "correction_type": "string",
        },
    }

    def build(self, example: Example) -> list[Built]:
        prompt = prompt_messages(example)
        if was_corrected(example):
            correction = example.feedback["correction"]
            built = [self._record(example, prompt, correction, True, "correction")]
            try:
                answer = answer_text(example)
            except Unusable:
                # A tool call the user rewrote as text: the correction still teaches.
                return built
            return [self._record(example, prompt, answer, False, "correction"), *built]
        judged = label(example.feedback)
        if judged is None:
            raise Unusable("no_label")
        value, signal = judged
        return [self._record(example, prompt, answer_text(example), value, signal)]

    @staticmethod
    def _record(
        example: Example, prompt: list[dict[str, Any]], text: str, value: bool, signal: str
    ) -> Built:
        record = example.record
        corrected = signal == "correction" and value
        metadata = {
            "interaction_id": example.id,
            "model": record.get("requested_model"),
            "variant": record.get("variant"),
            "label_from": signal,
            "completion_from": "correction" if corrected else "answer",
            "correction_type": example.feedback.get("correction_type"),
        }
        built = {
            "prompt": prompt,
            "completion": assistant(text),
            "label": value,
            "metadata": metadata,
        }
        return built, example.group

    def check(self, record: dict[str, Any]) -> list[str]:
        if not isinstance(record, dict):
            return ["data_type: a line must be a JSON object"]
        problems = [f"missing_field: no `{key}`" for key in sorted(_KEYS - set(record))]
        unknown = set(record) - _KEYS - {"metadata"}
        if unknown:
            problems.append(f"unrecognized_key: {sorted(unknown)}")
        if problems:
            return problems
        problems += check_prompt(record["prompt"], "prompt")
        problems += check_output(record["completion"], "completion")
        if not isinstance(record["label"], bool):
            problems.append(f"data_type: `label` must be true or false, not {record['label']!r}")
        return problems

    def tokens(self, record: dict[str, Any]) -> int:
        messages = [*record["prompt"], *record["completion"]]
        return count_prompt("chat/completions", {"messages": messages}, exact=True)


FORMATS = {"kto": KTO}
