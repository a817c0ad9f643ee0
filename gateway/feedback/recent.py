"""Interaction ids this process issued lately, with their upstream response ids and models.

The recorder writes rows in the background (queue, then batches, or the spool while the database
is away), so feedback can arrive before its interaction's row exists. An id found here was issued
by this very process: the row is on its way, and the feedback is accepted.

Bounded: the oldest entries go first (`OrderedDict.popitem(last=False)` is O(1), unlike popping
the head of a plain dict, which degrades as deleted slots pile up at its front). Per process:
another worker's ids are unknown here, which is what the feedback token is for.
"""

from __future__ import annotations

from collections import OrderedDict

from gateway.interaction import Interaction

Labels = tuple[str | None, str | None]  # (requested model, variant), for feedback metrics


class RecentInteractions:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._ids: OrderedDict[str, Labels | None] = OrderedDict()
        self._by_response: OrderedDict[str, str] = OrderedDict()

    def add(self, interaction_id: str) -> None:
        """As the id is issued, on the hot path of every request: a dict insert, and at most
        one eviction."""
        if not self.capacity:
            return
        self._ids[interaction_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def completed(self, interaction: Interaction) -> None:
        """Once answered: its response id and model become known (the id keeps its place)."""
        if interaction.id in self._ids:
            self._ids[interaction.id] = (interaction.requested_model, interaction.variant)
        if interaction.response_id and self.capacity:
            self._by_response[interaction.response_id] = interaction.id
            if len(self._by_response) > self.capacity:
                self._by_response.popitem(last=False)

    def __contains__(self, interaction_id: object) -> bool:
        return interaction_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def interaction_for(self, response_id: str) -> str | None:
        return self._by_response.get(response_id)

    def labels(self, interaction_id: str) -> Labels | None:
        return self._ids.get(interaction_id)
