"""Preference pairs that need several examples: A/B arms and one user's regenerations.

Every judged answer without a correction is held (`offer`), keyed by what the *client* sent:
the requested model and the prompt's non-system turns. A variant with a `system_prompt`
override replaced the client's system prompt before the request was recorded (see
`Route.apply`), so its own system prompt cannot be compared with the other arm's: for such an arm
the system prompt matches anything; for the others (and for traffic without A/B) it must be the
same. Which arms override comes from the config (`FormatOptions.system_prompt_variants`); when
it is not known (None), every arm is treated as overriding, and only the other turns are matched.

Two kinds of pair come out of `pairs()`:

- **ab_test**: two arms answered the same prompt and were judged differently: arm v's best
  answer over arm w's worst, for every two arms whose answer v's is strictly better.
- **regeneration**: one user (else session) had the same prompt answered twice by the same arm
  and judged the answers differently: their best over their worst.

A pair's prompt is the chosen answer's own, as recorded (with its arm's system prompt): the
prompt that answer was written for. Memory grows with the distinct (prompt, arm, user) that got
feedback: for each, the best and the worst answer and how many were held.

Held answers that end up in no pair are counted by reason (`unpaired`):
`answered_once` (no other judged answer to match), `judged_alike` (others, all judged the same),
`not_best_or_worst` (only each arm's best and worst answer pair up; this one was in between).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from exporters.chat import prompt_key

SYSTEM_ROLES = ("system", "developer")
# A system prompt that matches any: the arm replaced the client's, so it cannot be compared.
ANY_SYSTEM = None


@dataclass(frozen=True, slots=True)
class Held:
    """An answer held for pairing: only what a pair built from it needs."""

    goodness: float
    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    text: str
    group: str
    interaction_id: str
    model: str | None
    variant: str | None
    # Already its own pair (the user's correction): never counted as waiting for one.
    corrected: bool = False


@dataclass(frozen=True, slots=True)
class Pair:
    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    chosen: str
    rejected: str
    group: str
    metadata: dict[str, Any]


@dataclass(slots=True)
class _Answers:
    """One user's answers to one prompt from one arm: the best, the worst, how many."""

    best: Held
    worst: Held
    count: int = 1
    waiting: int = 0  # answers without a correction, which only this pairing can pair

    def add(self, held: Held) -> None:
        # The first of equally good answers is kept, so reruns give the same pairs.
        if held.goodness > self.best.goodness:
            self.best = held
        if held.goodness < self.worst.goodness:
            self.worst = held
        self.count += 1
        self.waiting += not held.corrected


# An arm's place among the answers to one prompt: (variant, the client's system prompt key, or
# ANY_SYSTEM when the arm replaced it).
_Slot = tuple[str | None, str | None]


@dataclass
class _Prompt:
    """Every held answer to one prompt, by slot and by user."""

    slots: dict[_Slot, dict[str, _Answers]] = field(default_factory=dict)

    def extremes(self, slot: _Slot) -> tuple[Held, Held]:
        answers = self.slots[slot].values()
        best = max(answers, key=lambda a: a.best.goodness).best
        worst = min(answers, key=lambda a: a.worst.goodness).worst
        return best, worst

    def rivals(self, slot: _Slot) -> list[_Slot]:
        """Other arms' slots whose answers may pair with this one's."""
        variant, system = slot
        return [
            other
            for other in self.slots
            if variant is not None
            and other[0] is not None
            and other[0] != variant
            and (system is ANY_SYSTEM or other[1] is ANY_SYSTEM or system == other[1])
        ]


class Pairing:
    def __init__(self, system_prompt_variants: frozenset[tuple[str, str]] | None = None):
        self.system_prompt_variants = system_prompt_variants
        self._prompts: dict[tuple[str | None, str], _Prompt] = {}
        self.held = 0

    def offer(self, held: Held) -> None:
        system = [m for m in held.prompt if m.get("role") in SYSTEM_ROLES]
        turns = [m for m in held.prompt if m.get("role") not in SYSTEM_ROLES]
        slot = (held.variant, self._system_key(held, system))
        prompt = self._prompts.setdefault((held.model, prompt_key(turns)), _Prompt())
        users = prompt.slots.setdefault(slot, {})
        if held.group in users:
            users[held.group].add(held)
        else:
            users[held.group] = _Answers(held, held, waiting=int(not held.corrected))
        self.held += not held.corrected

    def _system_key(self, held: Held, system: list[dict[str, Any]]) -> str | None:
        if held.variant is not None and (
            self.system_prompt_variants is None
            or (str(held.model), held.variant) in self.system_prompt_variants
        ):
            return ANY_SYSTEM
        return prompt_key(system)

    def pairs(self) -> list[Pair]:
        pairs = []
        for prompt in self._prompts.values():
            for slot, users in prompt.slots.items():
                best, _ = prompt.extremes(slot)
                for rival in prompt.rivals(slot):
                    _, worst = prompt.extremes(rival)
                    if best.goodness > worst.goodness:
                        pairs.append(pair(best, worst, "ab_test"))
                for answers in users.values():
                    if answers.best.goodness > answers.worst.goodness:
                        pairs.append(pair(answers.best, answers.worst, "regeneration"))
        return pairs

    def unpaired(self, pairs: list[Pair]) -> Counter[str]:
        """Held answers in no pair, by reason."""
        paired = {p.metadata["interaction_id"] for p in pairs}
        paired |= {p.metadata["rejected_interaction_id"] for p in pairs}
        reasons: Counter[str] = Counter()
        for prompt in self._prompts.values():
            for slot, users in prompt.slots.items():
                rivals = [prompt.extremes(rival) for rival in prompt.rivals(slot)]
                for answers in users.values():
                    ends = {
                        held.interaction_id
                        for held in (answers.best, answers.worst)
                        if not held.corrected
                    }
                    left = answers.waiting - len(ends & paired)
                    if left > 0:
                        reasons[_reason(answers, rivals)] += left
        return reasons


def _reason(answers: _Answers, rivals: list[tuple[Held, Held]]) -> str:
    if answers.count == 1 and not rivals:
        return "answered_once"
    judged = {answers.best.goodness, answers.worst.goodness}
    judged |= {held.goodness for ends in rivals for held in ends}
    if len(judged) == 1:
        return "judged_alike"
    return "not_best_or_worst"


def pair(chosen: Held, rejected: Held, source: str) -> Pair:
    return Pair(
        prompt=chosen.prompt,
        tools=chosen.tools,
        chosen=chosen.text,
        rejected=rejected.text,
        group=chosen.group,
        metadata={
            "source": source,
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
