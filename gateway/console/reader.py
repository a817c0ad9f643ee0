"""The store the console reads through, kept apart from the recorder's writes.

The SQLite engine runs every call on one thread with one connection, so a long page query on
the shared store would sit in front of the recorder's next batch. The console therefore opens
a second SQLite store, its own connections on its own threads: in WAL mode it reads while the
recorder writes, and its slow queries wait only for each other. PostgreSQL's pool already
serves each query on its own connection, so there the app's store is used as is.
Feedback a reviewer saves is written through the app's store, like every other write.

The text-search index (gateway/store/search.py) is kept up to date from here too, through the
same store: on SQLite its batches then run on the console's thread, never on the recorder's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.appkeys import CONFIG, IN_FLIGHT, MIGRATIONS, STORE
from gateway.store import Store
from gateway.store.indexer import SearchIndexer, Traffic
from gateway.store.sqlite import SQLiteStore

READER = web.AppKey("console_reader", Store)
# A page's queries run side by side (the overview's four aggregates: ~40% less time). Two, not
# more: the gateway's machine serves traffic too, and a person reads one page at a time.
READER_THREADS = 2


async def reader_context(app: web.Application) -> AsyncIterator[None]:
    url = app[CONFIG].storage.url
    if not url.startswith("sqlite"):
        app[READER] = app[STORE]
        yield
        return
    # Not connected yet: like the app's store, a missing database must not stop the start.
    # Plain reads, not memory-mapped ones: every page of the file that a page query or the
    # search indexer had mapped counted in the worker's RSS (800 MB after indexing a
    # 520k-row backlog in the issue 20 benchmark), which is what operators watch and what
    # container limits see.
    store = await SQLiteStore.open(url, connect=False, threads=READER_THREADS)
    app[READER] = store
    yield
    await store.close()


async def search_index_context(app: web.Application) -> AsyncIterator[None]:
    if not app[CONFIG].console.search_index:
        yield
        return
    migrations = app.get(MIGRATIONS)
    indexer = SearchIndexer(
        app[READER],
        ready=lambda: migrations is None or not migrations.pending,
        traffic=Traffic(app[IN_FLIGHT]).seen,
    )
    indexer.start()
    yield
    await indexer.stop()


def reader(request: web.Request) -> Store:
    return request.app[READER]
