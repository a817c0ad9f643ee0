"""Preference pairs for DPO: `dpo` (TRL's conversational preference format) and
`openai-preference` (OpenAI's preference fine-tuning file).

A pair is one prompt, a chosen answer and a rejected one. Pairs come from two places:

- **Corrections**: the user rewrote the answer (`was_corrected`); the correction is chosen and
  the model's original answer rejected. Each corrected example gives its pair at once.
- **Several judged answers to one prompt** (`exporters.pairing`): two A/B arms answered the
  same prompt, as the client sent it, and were judged differently (`ab_test`), or one user had
  the same prompt answered twice and judged the answers differently (`regeneration`). These
  pairs need several examples, so they are formed in `finish()`; until then every judged answer
  without a correction is held, and the manifest counts those never paired, by reason.

The prompt history is the prompt: a trainer never learns from it, so an earlier turn the user
threw away stays there as context.

How good an answer is (`goodness`) is the mean of the feedback signals it has, each put on -1..1:
thumbs up 1 / down -1; outcome accepted 1, modified 0, rejected -1; rating 1..5 as -1..1; score
0..1 as -1..1. No signal means unknown. Two answers make a pair only when both are known and
one is strictly better. The comment and the correction do not count: a correction is already
its own pair.

Trainers take text answers only (OpenAI's DPO is text-only, and TRL's chosen/rejected are text),
so an answer with tool calls is left out (`tool_calls_unsupported`) rather than cut down to its
text. `openai-preference` lines carry no `metadata`: the file is exactly what the API accepts.
`dpo` lines carry non-personal metadata (ids, model, variant, why the pair exists), never the
user or the session.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeGuard

from exporters.chat import (
    ROLES,
    Unusable,
    answer_message,
    prompt_messages,
    text_of,
    tools,
    was_corrected,
)
from exporters.formats import Built, Format, FormatOptions
from exporters.formats.openai import check_tools
from exporters.pairing import Held, Pair, Pairing
from exporters.schema import MESSAGE, TEXT_MESSAGE
from exporters.selection import Example
from gateway.tokens import count_prompt

_THUMBS = {"up": 1.0, "down": -1.0}
_OUTCOMES = {"accepted": 1.0, "modified": 0.0, "rejected": -1.0}
_OPENAI_KEYS = {"input", "preferred_output", "non_preferred_output"}
_OPENAI_INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
_DPO_KEYS = {"prompt", "chosen", "rejected"}
# A pair's metadata, the same fields in every row whatever made the pair.
PAIR_METADATA = {
    "source": "string",  # correction, ab_test or regeneration
    "interaction_id": "string",
    "model": "string",
    "variant": "string",
    "correction_type": "string",
    "rejected_interaction_id": "string",
    "rejected_variant": "string",
    "chosen_goodness": "float64",
    "rejected_goodness": "float64",
}


def goodness(feedback: dict[str, Any]) -> float | None:
    """How good the answer was judged, -1..1, or None when no signal says."""
    signals = []
    if feedback.get("thumbs") in _THUMBS:
        signals.append(_THUMBS[feedback["thumbs"]])
    if feedback.get("outcome") in _OUTCOMES:
        signals.append(_OUTCOMES[feedback["outcome"]])
    rating = feedback.get("rating")
    if _is_number(rating):
        signals.append((rating - 3) / 2)
    score = feedback.get("score")
    if _is_number(score):
        signals.append(2 * score - 1)
    if not signals:
        return None
    # Rounded so that equal judgements compare equal whatever the float noise of the mean.
    return round(sum(signals) / len(signals), 6)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def answer_text(example: Example) -> str:
    """The model's answer as text, or Unusable: a tool call has no text to prefer."""
    message = answer_message(example)
    if message.get("tool_calls"):
        raise Unusable("tool_calls_unsupported")
    text = text_of(message.get("content"))
    if not text.strip():
        raise Unusable("empty_answer")
    return text


def assistant(text: str) -> list[dict[str, Any]]:
    """An output column: a list of the one assistant message, as both trainers want it."""
    return [{"role": "assistant", "content": text}]


def _correction_pair(example: Example, prompt: list[dict[str, Any]], answer: str) -> Pair:
    record, feedback = example.record, example.feedback
    return Pair(
        prompt=prompt,
        tools=tools(example),
        chosen=feedback["correction"],
        rejected=answer,
        group=example.group,
        # The same keys as an A/B pair's, so a dataset loader sees one metadata schema.
        metadata={
            "source": "correction",
            "interaction_id": example.id,
            "model": record.get("requested_model"),
            "variant": record.get("variant"),
            "correction_type": feedback.get("correction_type"),
            "rejected_interaction_id": example.id,
            "rejected_variant": record.get("variant"),
            "chosen_goodness": None,
            "rejected_goodness": goodness(feedback),
        },
    )


class _Preference(Format):
    """Finds the pairs; the subclasses only lay a pair out and check the layout."""

    def __init__(self, options: FormatOptions | None = None):
        super().__init__(options or FormatOptions())
        self._pairing = Pairing(self.options.system_prompt_variants)
        self._built: Counter[str] = Counter()
        self._unpaired: Counter[str] = Counter()

    def build(self, example: Example) -> list[Built]:
        prompt = prompt_messages(example)
        corrected = was_corrected(example)
        judged = goodness(example.feedback)
        if not corrected and judged is None:
            raise Unusable("no_preference")
        answer = answer_text(example)
        if judged is not None:
            record = example.record
            held = Held(
                judged,
                prompt,
                tools(example),
                answer,
                example.group,
                example.id,
                record.get("requested_model"),
                record.get("variant") or None,
                corrected,
            )
            self._pairing.offer(held)
        if not corrected:
            return []  # held: it becomes part of a pair in `finish()`, or of none
        pair = _correction_pair(example, prompt, answer)
        self._built["correction"] += 1
        return [(self.render(pair), pair.group)]

    def finish(self) -> list[Built]:
        pairs = self._pairing.pairs()
        self._built.update(p.metadata["source"] for p in pairs)
        self._unpaired = self._pairing.unpaired(pairs)
        return [(self.render(pair), pair.group) for pair in pairs]

    def report(self) -> dict[str, Any]:
        return {
            "pairs_built": {
                source: self._built[source] for source in ("correction", "ab_test", "regeneration")
            },
            "held_for_pairing": self._pairing.held,
            "held_never_paired": dict(sorted(self._unpaired.items())),
        }

    def render(self, pair: Pair) -> dict[str, Any]:
        raise NotImplementedError


class DPO(_Preference):
    """TRL's conversational preference columns: prompt, chosen, rejected (+ metadata)."""

    name = "dpo"
    schema = {
        "prompt": [MESSAGE],
        "chosen": [TEXT_MESSAGE],
        "rejected": [TEXT_MESSAGE],
        "metadata": PAIR_METADATA,
    }

    def render(self, pair: Pair) -> dict[str, Any]:
        return {
            "prompt": pair.prompt,
            "chosen": assistant(pair.chosen),
            "rejected": assistant(pair.rejected),
            "metadata": pair.metadata,
        }

    def check(self, record: dict[str, Any]) -> list[str]:
        if not isinstance(record, dict):
            return ["data_type: a line must be a JSON object"]
        problems = _missing_and_unknown(record, _DPO_KEYS, _DPO_KEYS | {"metadata"})
        if problems:
            return problems
        problems += check_prompt(record["prompt"], "prompt")
        problems += _check_outputs(record, "chosen", "rejected")
        return problems

    def tokens(self, record: dict[str, Any]) -> int:
        return max(_count(record["prompt"], record[side]) for side in ("chosen", "rejected"))


class OpenAIPreference(_Preference):
    """OpenAI's DPO file: input (messages, tools), preferred_output, non_preferred_output."""

    name = "openai-preference"
    schema = {
        "input": {"messages": [MESSAGE], "tools": ["json"], "parallel_tool_calls": "bool"},
        "preferred_output": [TEXT_MESSAGE],
        "non_preferred_output": [TEXT_MESSAGE],
    }

    def render(self, pair: Pair) -> dict[str, Any]:
        given: dict[str, Any] = {"messages": pair.prompt}
        if pair.tools:
            given["tools"] = pair.tools
        return {
            "input": given,
            "preferred_output": assistant(pair.chosen),
            "non_preferred_output": assistant(pair.rejected),
        }

    def check(self, record: dict[str, Any]) -> list[str]:
        if not isinstance(record, dict):
            return ["data_type: a line must be a JSON object"]
        problems = _missing_and_unknown(record, _OPENAI_KEYS, _OPENAI_KEYS)
        if problems:
            return problems
        given = record["input"]
        if not isinstance(given, dict) or "messages" not in given:
            return ["missing_field: `input` must be an object with `messages`"]
        unknown = set(given) - _OPENAI_INPUT_KEYS
        if unknown:
            problems.append(f"unrecognized_key: `input` has {sorted(unknown)}")
        if "tools" in given:
            problems += check_tools(given["tools"], "input.tools")
        problems += check_prompt(given["messages"], "input.messages")
        problems += _check_outputs(record, "preferred_output", "non_preferred_output")
        return problems

    def tokens(self, record: dict[str, Any]) -> int:
        given = record["input"]
        return max(
            _count(given["messages"], record[side], given.get("tools"))
            for side in ("preferred_output", "non_preferred_output")
        )


def _count(prompt: list[dict[str, Any]], output: list[dict[str, Any]], offered: Any = None) -> int:
    """A trainer sees prompt + one output at a time, so the longer side is what must fit."""
    body: dict[str, Any] = {"messages": [*prompt, *output]}
    if offered:
        body["tools"] = offered
    return count_prompt("chat/completions", body, exact=True)


def _missing_and_unknown(record: dict[str, Any], required: set[str], known: set[str]) -> list[str]:
    problems = [f"missing_field: no `{key}`" for key in sorted(required - set(record))]
    unknown = set(record) - known
    if unknown:
        problems.append(f"unrecognized_key: {sorted(unknown)}")
    return problems


def check_prompt(prompt: Any, field: str) -> list[str]:
    """A prompt is a non-empty list of chat messages ending with the user's turn."""
    if not isinstance(prompt, list) or not prompt:
        return [f"data_type: `{field}` must be a non-empty list of messages"]
    problems = []
    for i, message in enumerate(prompt):
        problems += _check_message(message, f"{field}[{i}]")
    last = prompt[-1]
    if isinstance(last, dict) and last.get("role") != "user":
        problems.append(f"prompt_not_from_user: `{field}` must end with the user's turn")
    return problems


def _check_message(message: Any, where: str) -> list[str]:
    if not isinstance(message, dict):
        return [f"data_type: {where} is not an object"]
    role = message.get("role")
    if role not in ROLES:
        return [f"unrecognized_role: {where} has role {role!r}"]
    content = message.get("content")
    if role == "assistant" and message.get("tool_calls") and not content:
        return []  # an earlier turn that called a tool has no text, and needs none
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        return []  # text and image parts
    if not isinstance(content, str) or not content.strip():
        return [f"missing_content: {where} ({role}) has no content"]
    return []


def check_output(output: Any, field: str) -> list[str]:
    """An output is a list of exactly one assistant message with text content and nothing else."""
    if not isinstance(output, list) or len(output) != 1 or not isinstance(output[0], dict):
        return [f"bad_output: `{field}` must be a list of one assistant message"]
    message = output[0]
    if message.get("role") != "assistant":
        return [f"bad_output: `{field}` has role {message.get('role')!r}, not assistant"]
    if set(message) - {"role", "content"}:
        return [f"bad_output: `{field}` may hold only role and content (text answers only)"]
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        return [f"missing_content: `{field}` has no text"]
    return []


def _check_outputs(record: dict[str, Any], chosen: str, rejected: str) -> list[str]:
    problems = check_output(record[chosen], chosen) + check_output(record[rejected], rejected)
    if not problems and _same(record[chosen][0]["content"], record[rejected][0]["content"]):
        problems.append(f"identical_outputs: `{chosen}` and `{rejected}` say the same")
    return problems


def _same(a: str, b: str) -> bool:
    # The dedup's normalization: a pair differing only in spacing or case teaches nothing.
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


FORMATS = {"dpo": DPO, "openai-preference": OpenAIPreference}
