"""Storage engines behind one `Store` protocol: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from urllib.parse import urlparse

from gateway.store.base import Store


async def open_store(url: str, *, pool_size: int = 10) -> Store:
    """Connect to the database named by `url` (sqlite:///path or postgresql://...)."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from gateway.store.sqlite import SQLiteStore

        return await SQLiteStore.open(url)
    from gateway.store.postgres import PostgresStore

    return await PostgresStore.open(url, pool_size=pool_size)


__all__ = ["Store", "open_store"]
