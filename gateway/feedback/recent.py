"""Interaction ids this process issued lately, with their upstream response ids and models.

The recorder writes rows in the background (queue, then batches, or the spool while the database
is away), so feedback can arrive before its interaction's row exists. An id found here was issued
by this very process: the row is on its way, and the feedback is accepted.

Bounded: the oldest entries go first (`OrderedDict.popitem(last=False)` is O(1), unlike popping
the head of a plain dict, which degrades as deleted slots pile up at its front). Per process:
another worker's ids are unknown here, which is what the feedback token is for.

Each id also keeps the name of the API key that made it, once known, so feedback from a key can
be held to that key's own interactions without a database read.

Memory: ~190 bytes an id, ~380 with its response id (the texts and their places in the dicts;
the (labels, key) values are shared between ids, as a few models and keys make all the traffic):
~7.3 MB at the default capacity of 20,000. At 50,000 ids with a tuple each it took ~22 MB of
every worker's RSS once full.
"""

from __future__ import annotations

from collections import OrderedDict

from gateway.records.interaction import Interaction

Labels = tuple[str | None, str | None]  # (requested model, variant), for feedback metrics
_Entry = tuple[Labels | None, str | None]  # labels once answered, the API key's name
# Distinct (labels, key) values kept for sharing; past this (clients naming models at random),
# the table starts again rather than growing.
_SHARED_VALUES = 1_000


class RecentInteractions:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._ids: OrderedDict[str, _Entry] = OrderedDict()
        self._by_response: OrderedDict[str, str] = OrderedDict()
        self._values: dict[_Entry, _Entry] = {}

    def add(self, interaction_id: str, key_name: str | None = None) -> None:
        """As the id is issued, on the hot path of every request: a dict insert, and at most
        one eviction."""
        if not self.capacity:
            return
        self._ids[interaction_id] = self._shared((None, key_name))
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def completed(self, interaction: Interaction) -> None:
        """Once answered: its response id and model become known (the id keeps its place)."""
        if interaction.id in self._ids:
            labels = (interaction.requested_model, interaction.variant)
            self._ids[interaction.id] = self._shared((labels, interaction.api_key_name))
        if interaction.response_id and self.capacity:
            self._by_response[interaction.response_id] = interaction.id
            if len(self._by_response) > self.capacity:
                self._by_response.popitem(last=False)

    def _shared(self, value: _Entry) -> _Entry:
        shared = self._values.get(value)
        if shared is None:
            if len(self._values) >= _SHARED_VALUES:
                self._values.clear()
            shared = self._values[value] = value
        return shared

    def __contains__(self, interaction_id: object) -> bool:
        return interaction_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def interaction_for(self, response_id: str) -> str | None:
        return self._by_response.get(response_id)

    def labels(self, interaction_id: str) -> Labels | None:
        entry = self._ids.get(interaction_id)
        return None if entry is None else entry[0]

    def issued(self, interaction_id: str | None, key_name: str | None = None) -> bool:
        """Issued by this process lately; with `key_name`, to that API key (False while the
        key is not known: not passed to `add`, and not answered yet)."""
        entry = self._ids.get(interaction_id) if interaction_id is not None else None
        return entry is not None and (key_name is None or entry[1] == key_name)
