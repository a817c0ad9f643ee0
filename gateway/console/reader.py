"""The store the console reads through, kept apart from the recorder's writes.

The SQLite engine runs every call on one thread with one connection, so a long page query on
the shared store would sit in front of the recorder's next batch. The console therefore opens
a second SQLite store, its own connection on its own thread: in WAL mode it reads while the
recorder writes, and its slow queries wait only for each other. PostgreSQL's pool already
serves each query on its own connection, so there the app's store is used as is.
Feedback a reviewer saves is written through the app's store, like every other write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.appkeys import CONFIG, STORE
from gateway.store import Store, open_store

READER = web.AppKey("console_reader", Store)


async def reader_context(app: web.Application) -> AsyncIterator[None]:
    url = app[CONFIG].storage.url
    if not url.startswith("sqlite"):
        app[READER] = app[STORE]
        yield
        return
    # Not connected yet: like the app's store, a missing database must not stop the start.
    store = await open_store(url, connect=False)
    app[READER] = store
    yield
    await store.close()


def reader(request: web.Request) -> Store:
    return request.app[READER]
