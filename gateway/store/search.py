"""Text search over interactions (the review API's `q`, the console's search box), per engine.

What a search finds, on both engines: the interactions whose request or response holds the
searched text inside one of its string values (a message, the answer, a tool call's arguments,
also values such as the model name; never a JSON key), ignoring case (SQLite folds A-Z only,
as its LIKE does; PostgreSQL folds every letter). `%` and `_` are plain characters.

Why an index of our own. A LIKE over every row's JSON read the whole table (1.6 s on SQLite,
4.3 s on PostgreSQL at 1M rows). Substring search needs trigrams: SQLite has them built in
(FTS5's `trigram` tokenizer); PostgreSQL's are in the pg_trgm extension, which a server may
not have (pgserver has not), so PostgreSQL indexes each row's trigrams as a `text[]` under
GIN, both built-in. Word search (tsvector, FTS5 unicode61) was the other
choice; it would stop `order 86` from finding `order 861` and split words differently on
each engine, so both engines keep the substring semantics the API had.

Off the recorder's path. `interaction_search` is filled in the background by
`gateway/store/indexer.py`, a batch at a time, never in the recorder's insert:
- SQLite in rowid order (the order rows were written; VACUUM keeps rowids in the SQLite this
  runs on, and Flywheel never runs it): every row up to the index's highest rowid is indexed.
- PostgreSQL has no such order that commits respect, so a trigger puts each new id on
  `interaction_search_queue` (one small row, measured in the README) and the indexer drains it.
A search asks the index, plus the rows not indexed yet read directly (a few seconds' worth),
so it is complete at any moment. Deleting an interaction (forget, retention) deletes its
indexed text with it: a trigger on SQLite, a cascading foreign key on PostgreSQL.

Common and rare needles. Asking the index first is fast for a rare text and slow for a common
one (`has not arrived`, in every row: 30 s to list a million matches to show 50). So a listing
first checks the newest rows one by one (`*_probe`, over `RECENT` rows at most): a common text
fills the page there; only a page left short asks the index (`*_search`), which is then fast.
Needles of one or two characters never ask the index (see `SHORT_RECENT`).
"""

from __future__ import annotations

from typing import Protocol

from gateway.store.queries import contains_pattern

# How many of the newest rows (under the other filters) are checked one by one first.
RECENT = 2_000
# The column a listing's rows carry their key in, for the probe (SQLite's rowid is not a
# column of a subquery's rows).
KEY = "search_key"

# Three characters make one trigram: a shorter needle cannot use the index. Reading every
# indexed text instead took 0.4 s on SQLite and 1.6 s on PostgreSQL at 1M rows, so a short
# needle searches the newest `SHORT_RECENT` rows under the other filters only (the console's
# search box says so, and the README's *Text search*): what someone typing "ok" or "é" looks
# for is almost always recent, and a time range (until=) reaches further back.
MIN_INDEXED = 3
SHORT_RECENT = 5_000


def is_short(needle: str) -> bool:
    """Too short for the index: searched among the newest `SHORT_RECENT` rows only."""
    return len(needle) < MIN_INDEXED


class Bind(Protocol):
    def __call__(self, value: object) -> str: ...


# -- SQLite: FTS5 with the trigram tokenizer -----------------------------------------------------
# Every string value of a JSON column, one per line, in document order.
_SQLITE_STRINGS = (
    "coalesce((SELECT group_concat(value, char(10)) FROM json_tree({row}.{column})"
    " WHERE type = 'text'), '')"
)
SQLITE_TEXT = " || char(10) || ".join(
    _SQLITE_STRINGS.format(row="{row}", column=column) for column in ("request", "response")
)
# The last row indexed (ORDER BY ... LIMIT 1 reads one row of the FTS table; max() reads all).
SQLITE_INDEXED_UP_TO = (
    "coalesce((SELECT rowid FROM interaction_search ORDER BY rowid DESC LIMIT 1), 0)"
)


def sqlite_search(needle: str, p: Bind) -> str:
    pattern = p(contains_pattern(needle))
    indexed = f"SELECT s.rowid FROM interaction_search s WHERE s.body LIKE {pattern} ESCAPE '\\'"
    if len(needle) >= MIN_INDEXED:
        # The phrase of the needle's trigrams finds the candidates through the index (LIKE
        # with ESCAPE would not use it); LIKE then decides, with the same rule as below.
        phrase = '"' + needle.replace('"', '""') + '"'
        indexed += f" AND s.body MATCH {p(phrase)}"
    fresh = (
        f"SELECT j.rowid FROM interactions j WHERE j.rowid > {SQLITE_INDEXED_UP_TO}"
        f" AND ({SQLITE_TEXT.format(row='j')}) LIKE {pattern} ESCAPE '\\'"
    )
    return f"i.rowid IN ({indexed} UNION ALL {fresh})"


def sqlite_probe(needle: str, p: Bind) -> str:
    """The row `i` of a subquery (with `search_key`: its rowid) holds `needle`."""
    pattern = p(contains_pattern(needle))
    return (
        f"(({_PROBE_SQLITE.format(key=KEY)}) LIKE {pattern} ESCAPE '\\'"
        f" OR (i.{KEY} > {SQLITE_INDEXED_UP_TO}"
        f" AND ({SQLITE_TEXT.format(row='i')}) LIKE {pattern} ESCAPE '\\'))"
    )


# A row's indexed text, looked up by its key: a scalar subquery, which the planners run row by
# row. Written as EXISTS (... AND body LIKE ...) PostgreSQL hashed it instead, reading every
# indexed text first (1.9 s at 1M rows).
_PROBE_SQLITE = "SELECT s.body FROM interaction_search s WHERE s.rowid = i.{key}"
_PROBE_POSTGRES = "SELECT s.body FROM interaction_search s WHERE s.interaction_id = i.id"


def sqlite_index_batch(p: Bind, limit: int) -> str:
    """Index the next `limit` rows written after the last one indexed."""
    return (
        "INSERT INTO interaction_search (rowid, body)"
        f" SELECT i.rowid, {SQLITE_TEXT.format(row='i')} FROM interactions i"
        f" WHERE i.rowid > {SQLITE_INDEXED_UP_TO} ORDER BY i.rowid LIMIT {p(limit)}"
    )


def sqlite_backlog(p: Bind, up_to: int | None) -> str:
    """How many rows wait to be indexed, counted up to `up_to` (None: all of them)."""
    limit = p(-1 if up_to is None else up_to)  # SQLite's LIMIT -1 is none
    return (
        "SELECT count(*) AS n FROM (SELECT 1 FROM interactions"
        f" WHERE rowid > {SQLITE_INDEXED_UP_TO} LIMIT {limit}) waiting"
    )


# -- PostgreSQL: our own trigrams under GIN (functions in migration 0008) ---------------------
def postgres_search(needle: str, p: Bind) -> str:
    pattern = p(contains_pattern(needle))
    indexed = f"SELECT s.interaction_id FROM interaction_search s WHERE s.body ILIKE {pattern}"
    if len(needle) >= MIN_INDEXED:
        # The index's expression, and the needle's whole trigrams by the same function (so
        # both fold case alike), without the shorter end pieces rows need not have.
        pieces = (
            f"ARRAY(SELECT x FROM unnest(flywheel_trigrams(lower({p(needle)}::text))) AS x"
            " WHERE length(x) = 3)"
        )
        indexed += f" AND flywheel_trigrams(lower(s.body)) @> {pieces}"
    fresh = (
        "SELECT q.interaction_id FROM interaction_search_queue q"
        " JOIN interactions j ON j.id = q.interaction_id"
        f" WHERE flywheel_search_text(j.request, j.response) ILIKE {pattern}"
    )
    return f"i.id IN ({indexed} UNION ALL {fresh})"


def postgres_probe(needle: str, p: Bind) -> str:
    pattern = p(contains_pattern(needle))
    return (
        f"(({_PROBE_POSTGRES}) ILIKE {pattern} OR (i.id IN (SELECT q.interaction_id"
        " FROM interaction_search_queue q)"
        f" AND flywheel_search_text(i.request, i.response) ILIKE {pattern}))"
    )


def postgres_index_batch(p: Bind, limit: int) -> str:
    """Take up to `limit` ids off the queue and index their rows; how many were taken.
    SKIP LOCKED: two indexers (replicas) never take the same ids nor wait for each other."""
    return (
        "WITH taken AS (DELETE FROM interaction_search_queue WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM interaction_search_queue LIMIT {p(limit)} FOR UPDATE SKIP LOCKED))"
        " RETURNING interaction_id),"
        " added AS (INSERT INTO interaction_search (interaction_id, body)"
        " SELECT i.id, flywheel_search_text(i.request, i.response)"
        " FROM (SELECT DISTINCT interaction_id FROM taken) k"
        " JOIN interactions i ON i.id = k.interaction_id"
        " ON CONFLICT (interaction_id) DO NOTHING)"
        " SELECT count(*) AS n FROM taken"
    )


def postgres_backlog(p: Bind, up_to: int | None) -> str:
    """How many rows wait to be indexed, counted up to `up_to` (None, LIMIT NULL: all)."""
    return (
        "SELECT count(*) AS n FROM (SELECT 1 FROM interaction_search_queue"
        f" LIMIT {p(up_to)}) waiting"
    )
