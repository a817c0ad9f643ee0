"""Storage engines behind one `Store` protocol: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from urllib.parse import urlparse

from gateway.store.base import Store


async def open_store(url: str, *, pool_size: int = 10, connect: bool = True) -> Store:
    """Open the database named by `url` (sqlite:///path or postgresql://...). With
    `connect=False` nothing is attempted until the first call, so a gateway can start and
    spool while the database is down."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from gateway.store.sqlite import SQLiteStore

        return await SQLiteStore.open(url, connect=connect)
    from gateway.store.postgres import PostgresStore

    return await PostgresStore.open(url, pool_size=pool_size, connect=connect)


__all__ = ["Store", "open_store"]
