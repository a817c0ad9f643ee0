"""Preference pairs for DPO: `dpo` (TRL's conversational preference format) and
`openai-preference` (OpenAI's preference fine-tuning file).

A pair is one prompt, a chosen answer and a rejected one. Pairs come from two places:

- **Corrections**: the user rewrote the answer (`was_corrected`); the correction is chosen and
  the model's original answer rejected. Each corrected example gives its pair at once.
- **A/B traffic**: the same prompt (`prompt_key`, within one requested model) answered by two
  different variants whose answers were judged differently. The better answer is chosen. These
  pairs need several examples, so they are formed in `finish()`; until then only the best and
  the worst answer per prompt and variant are held, so memory grows with the distinct prompts
  that got feedback, not with the traffic.

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

from dataclasses import dataclass
from typing import Any, TypeGuard

from exporters.chat import (
    ROLES,
    Unusable,
    answer_message,
    prompt_key,
    prompt_messages,
    text_of,
    tools,
    was_corrected,
)
from exporters.formats import Built, Format, FormatOptions
from exporters.selection import Example
from gateway.tokens import count_prompt

_THUMBS = {"up": 1.0, "down": -1.0}
_OUTCOMES = {"accepted": 1.0, "modified": 0.0, "rejected": -1.0}
_OPENAI_KEYS = {"input", "preferred_output", "non_preferred_output"}
_OPENAI_INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
_DPO_KEYS = {"prompt", "chosen", "rejected"}


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


@dataclass(frozen=True, slots=True)
class _Held:
    """An answer held for A/B pairing: only what a pair built from it needs."""

    goodness: float
    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    text: str
    group: str
    interaction_id: str
    model: str | None
    variant: str


@dataclass(frozen=True, slots=True)
class Pair:
    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    chosen: str
    rejected: str
    group: str
    metadata: dict[str, Any]


class _ABAnswers:
    """Per (requested model, prompt), per variant, the best and the worst answer seen.

    Within a variant the first of equally good answers is kept, so reruns give the same pairs.
    """

    def __init__(self) -> None:
        self._by_prompt: dict[tuple[str | None, str], dict[str, tuple[_Held, _Held]]] = {}

    def offer(self, key: tuple[str | None, str], held: _Held) -> None:
        variants = self._by_prompt.setdefault(key, {})
        kept = variants.get(held.variant)
        if kept is None:
            variants[held.variant] = (held, held)
            return
        best, worst = kept
        if held.goodness > best.goodness:
            best = held
        if held.goodness < worst.goodness:
            worst = held
        variants[held.variant] = (best, worst)

    def pairs(self) -> list[Pair]:
        """For every two variants of a prompt, variant v's best over w's worst when better."""
        pairs = []
        for variants in self._by_prompt.values():
            for v, (best, _) in variants.items():
                for w, (_, worst) in variants.items():
                    if v != w and best.goodness > worst.goodness:
                        pairs.append(_ab_pair(best, worst))
        return pairs


def _ab_pair(chosen: _Held, rejected: _Held) -> Pair:
    return Pair(
        prompt=chosen.prompt,
        tools=chosen.tools,
        chosen=chosen.text,
        rejected=rejected.text,
        group=chosen.group,
        metadata={
            "source": "ab_test",
            "interaction_id": chosen.interaction_id,
            "model": chosen.model,
            "variant": chosen.variant,
            "correction_type": None,
            "rejected_interaction_id": rejected.interaction_id,
            "rejected_variant": rejected.variant,
            "chosen_goodness": chosen.goodness,
            "rejected_goodness": rejected.goodness,
        },
    )


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
        self._ab = _ABAnswers()

    def build(self, example: Example) -> list[Built]:
        prompt = prompt_messages(example)
        corrected = was_corrected(example)
        judged = goodness(example.feedback)
        variant = example.record.get("variant")
        if not corrected and (judged is None or not variant):
            raise Unusable("no_preference")
        answer = answer_text(example)
        if judged is not None and variant:
            model = example.record.get("requested_model")
            held = _Held(
                judged, prompt, tools(example), answer, example.group, example.id, model, variant
            )
            self._ab.offer((model, prompt_key(prompt)), held)
        if not corrected:
            return []  # held: it becomes part of a pair in `finish()`, or of none
        pair = _correction_pair(example, prompt, answer)
        return [(self.render(pair), pair.group)]

    def finish(self) -> list[Built]:
        return [(self.render(pair), pair.group) for pair in self._ab.pairs()]

    def render(self, pair: Pair) -> dict[str, Any]:
        raise NotImplementedError


class DPO(_Preference):
    """TRL's conversational preference columns: prompt, chosen, rejected (+ metadata)."""

    name = "dpo"

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
        if "tools" in given and not isinstance(given["tools"], list):
            problems.append("data_type: `input.tools` must be a list")
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
