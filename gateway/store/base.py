"""The storage contract every engine implements, and the migration files they share a layout of.

Engines are small: they translate `Interaction` rows to their database and back. Nothing here
is called on the request path; the recorder batches writes in the background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from gateway.interaction import Interaction


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


class Store(Protocol):
    engine: str

    async def migrate(self) -> list[str]:
        """Apply pending migrations in order; return the names applied now."""
        ...

    async def insert_interactions(self, rows: Sequence[Interaction]) -> None:
        """Insert rows in one batch; ids already stored are skipped (replays are safe)."""
        ...

    async def get_interaction(self, interaction_id: str) -> dict[str, Any] | None:
        """One interaction as a plain dict (JSON columns decoded), or None."""
        ...

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...

    async def close(self) -> None: ...


def load_migrations(engine: str) -> list[Migration]:
    """The numbered `NNNN_name.sql` files of one engine, in order. Append-only: never edit one."""
    folder = resources.files("gateway.store") / "migrations" / engine
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    return found
