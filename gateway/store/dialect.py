"""What differs between the engines' SQL, and only that: each query is written once (sql.py).

`Dialect` speaks portable SQL (`ON CONFLICT`, `count(*) FILTER`, window-function percentiles,
double-quoted names); an engine's dialect overrides what its database says otherwise:

| need                      | SQLite                               | PostgreSQL             |
|---------------------------|--------------------------------------|------------------------|
| placeholder               | `?1`, `?2`...                        | `$1`, `$2`...          |
| value in a list           | `IN (SELECT value FROM json_each(?))`| `= ANY($1::type[])`    |
| uuid parameter            | text, as stored                      | `$1::uuid`             |
| tags contain pairs        | `json_each`, per pair                | `@>` (GIN-indexed)     |
| JSON array has an element | `json_each`                          | `?`                    |
| a JSON array's items      | `json_each`                          | `jsonb_array_elements_text` |
| ... under a key           | `json_each(column, '$.key')`         | `-> 'key' ?`           |
| text search (search.py)   | FTS5 trigram index                   | trigrams under GIN     |
| a grouping term           | `+column`: never read from an index  | `column`               |
| count if                  | `sum(condition)`                     | `FILTER (WHERE ...)`   |
| percentiles               | `row_number()`, nearest rank         | `percentile_disc`      |
| time bucket (epoch s)     | `strftime('%s', ...)`                | `extract(epoch ...)`   |
| latency bucket (rollups)  | the expression                       | a function (0010)      |
| an id's slice (shards)    | `flywheel_slice`, Python's `slice_of`| `sha256()`, numeric    |

Both placeholder styles are numbered, so a value bound once can appear twice in a statement.
Values travel as Python objects; the engine converts them (SQLite: datetimes to ISO text, lists
and dicts to JSON text). A dialect builds text and never touches a connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.store.queries import PERCENTILES, percentile_rank_sql
from gateway.store.search import postgres_probe, postgres_search, sqlite_probe, sqlite_search


class Params:
    """The values bound to one statement: `p(value)` keeps the value and returns its
    placeholder, so SQL and values are built in one pass and cannot drift apart."""

    def __init__(self, dialect: Dialect) -> None:
        self.values: list[Any] = []
        self._dialect = dialect

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return self._dialect.placeholder(len(self.values))


class Dialect:
    """Portable SQL; engines override what their database spells differently."""

    name = "sql"

    def params(self) -> Params:
        return Params(self)

    def placeholder(self, number: int) -> str:
        raise NotImplementedError

    def quote(self, name: str) -> str:
        return f'"{name}"'  # "user" is a reserved word

    def uuid(self, placeholder: str) -> str:
        """A bound id compared with a uuid column."""
        return placeholder

    def in_array(self, column: str, placeholder: str, element: str) -> str:
        """`column` is one of the list bound at `placeholder` (of `element`: text or uuid)."""
        raise NotImplementedError

    def slice_of(self, column: str, count: str) -> str:
        """queries.slice_of of the id in `column`, among the number of slices at `count`."""
        raise NotImplementedError

    def has_pairs(self, column: str, pairs: Mapping[str, str], p: Params) -> str:
        """The JSON object in `column` holds every key with its value."""
        raise NotImplementedError

    def has_element(self, column: str, placeholder: str) -> str:
        """The JSON array of strings in `column` holds the bound string."""
        raise NotImplementedError

    def text_search(self, needle: str, p: Params) -> str:
        """The interaction `i` holds `needle` in its request or response, asked of the
        search index (search.py)."""
        raise NotImplementedError

    def text_probe(self, needle: str, p: Params) -> str:
        """The same, checked for the row `i` of a subquery that carries `search_key`."""
        raise NotImplementedError

    def search_key(self) -> str:
        """The column of `interactions` the search index is keyed by."""
        return "id"

    def group_key(self, column: str) -> str:
        """`column` as a GROUP BY or PARTITION BY term of a query over a time window."""
        return column

    def json_path_has(self, column: str, key: str, placeholder: str) -> str:
        """The JSON object in `column` has, under `key` (one of ours, never a client's), an
        array of strings holding the bound string."""
        raise NotImplementedError

    def count_if(self, condition: str) -> str:
        return f"count(*) FILTER (WHERE {condition})"

    def array_items(self, column: str, alias: str) -> str:
        """A FROM item: one row per string of the JSON array in `column`, as `alias.value`."""
        raise NotImplementedError

    def time_bucket(self, column: str, seconds: int) -> str:
        """The start of the `seconds`-long bucket holding the timestamp `column`, in whole
        seconds since the epoch (UTC): the console's charts over time."""
        n = int(seconds)
        return f"CAST(floor(extract(epoch FROM {column}) / {n}) AS BIGINT) * {n}"

    def latency_bucket(self, column: str) -> str:
        """The latency histogram's bucket of `column` (rollups.py), as the rollups'
        triggers compute it: k holds [1.1^k, 1.1^(k+1)) ms, -1000 when unknown."""
        raise NotImplementedError

    def percentile_cont(self, column: str, fraction: float) -> str | None:
        """The interpolated percentile of `column` as an aggregate, or None when the
        database has none (the engine then interpolates in Python)."""
        return None

    def insert(self, table: str, columns: Sequence[str], conflict: str) -> str:
        names = ", ".join(self.quote(c) for c in columns)
        values = ", ".join(self.placeholder(n) for n in range(1, len(columns) + 1))
        return f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT {conflict}"

    def insert_ignoring(self, table: str, columns: Sequence[str], key: str | None = None) -> str:
        """Rows that would break a unique key (`key`, or any) are skipped."""
        return self.insert(table, columns, f"({key}) DO NOTHING" if key else "DO NOTHING")

    def upsert(self, table: str, columns: Sequence[str], key: str) -> str:
        updates = ", ".join(
            f"{self.quote(c)} = excluded.{self.quote(c)}" for c in columns if c != key
        )
        return self.insert(table, columns, f"({key}) DO UPDATE SET {updates}")

    def percentiles(self, column: str, source: str, groups: Mapping[str, str]) -> str:
        """One row per group (`alias: expression`) with each `PERCENTILES` of `column` over
        `source` (a FROM ... WHERE ...), by nearest rank: the ceil(p * n)-th smallest value."""
        partition = f"PARTITION BY {', '.join(groups.values())}" if groups else ""
        keys = "".join(f"{expr} AS {alias}, " for alias, expr in groups.items())
        picks = ", ".join(
            f"max(CASE WHEN rn = {percentile_rank_sql('n', percent)} THEN {column} END) AS {name}"
            for name, percent in PERCENTILES.items()
        )
        ranked = (
            f"SELECT {keys}{column}, row_number() OVER ({partition} ORDER BY {column}) AS rn,"
            f" count(*) OVER ({partition}) AS n FROM {source}"
        )
        grouping = f" GROUP BY {', '.join(groups)}" if groups else ""
        return f"SELECT {', '.join([*groups, picks])} FROM ({ranked}) AS ranked{grouping}"


class SQLiteDialect(Dialect):
    """JSON is text searched with `json_each`; timestamps are UTC ISO text, whose string
    order is time order, so ranges and keyset paging compare text."""

    name = "sqlite"

    def placeholder(self, number: int) -> str:
        return f"?{number}"

    def in_array(self, column: str, placeholder: str, element: str) -> str:
        # One JSON array parameter instead of `IN (?, ?, ...)`: no limit on bound
        # parameters to chunk around, and the same shape as PostgreSQL's array.
        return f"{column} IN (SELECT value FROM json_each({placeholder}))"

    def slice_of(self, column: str, count: str) -> str:
        return f"flywheel_slice({column}, {count})"  # registered by SQLiteStore

    def has_pairs(self, column: str, pairs: Mapping[str, str], p: Params) -> str:
        return " AND ".join(
            f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = {p(key)}"
            f" AND value = {p(value)})"
            for key, value in pairs.items()
        )

    def has_element(self, column: str, placeholder: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = {placeholder})"

    def json_path_has(self, column: str, key: str, placeholder: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each({column}, '$.{key}') WHERE value = {placeholder})"

    def count_if(self, condition: str) -> str:
        return f"sum({condition})"  # FILTER needs SQLite 3.30

    def array_items(self, column: str, alias: str) -> str:
        return f"json_each({column}) AS {alias}"

    def latency_bucket(self, column: str) -> str:
        # ln() needs SQLite's math functions (built in by default since 3.35).
        return (
            f"CASE WHEN {column} IS NULL THEN -1000 ELSE CAST(floor(ln(min(max({column},"
            f" 0.001), 1e9)) / ln(1.1)) AS INTEGER) END"
        )

    def text_search(self, needle: str, p: Params) -> str:
        return sqlite_search(needle, p)

    def text_probe(self, needle: str, p: Params) -> str:
        return sqlite_probe(needle, p)

    def search_key(self) -> str:
        return "rowid"

    def group_key(self, column: str) -> str:
        # Unary plus keeps the value and hides the column from the planner: grouping by
        # (model, variant) otherwise makes SQLite walk the (model, variant, created_at) index
        # over every row, to skip a sort, instead of the created_at index over the window's
        # rows (349 vs 49 ms for a day at 1M rows). ANALYZE would need a periodic run and
        # still guesses a range's size (no STAT4 here); this cannot choose wrong.
        return f"+{column}"

    def time_bucket(self, column: str, seconds: int) -> str:
        # strftime reads the stored ISO text, offset included; integer division floors.
        n = int(seconds)
        return f"(CAST(strftime('%s', {column}) AS INTEGER) / {n}) * {n}"


class PostgresDialect(Dialect):
    """Idiomatic where it helps: arrays instead of long IN lists, `@>` on the GIN-indexed
    tags, and `percentile_disc`, the same nearest-rank percentile SQLite computes by hand."""

    name = "postgres"

    def placeholder(self, number: int) -> str:
        return f"${number}"

    def uuid(self, placeholder: str) -> str:
        return f"{placeholder}::uuid"

    def in_array(self, column: str, placeholder: str, element: str) -> str:
        return f"{column} = ANY({placeholder}::{element}[])"

    def has_pairs(self, column: str, pairs: Mapping[str, str], p: Params) -> str:
        return f"{column} @> {p(dict(pairs))}::jsonb"

    def slice_of(self, column: str, count: str) -> str:
        # The digest's first 8 bytes as bit(64) read as a signed bigint; adding 2^64 modulo
        # 2^64 in numeric makes it the unsigned number Python reads.
        head = f"substring(sha256(convert_to({column}::text, 'UTF8')) from 1 for 8)"
        signed = f"('x' || encode({head}, 'hex'))::bit(64)::bigint::numeric"
        return f"mod(mod({signed} + {2**64}, {2**64}), {count}::int)::int"

    def has_element(self, column: str, placeholder: str) -> str:
        return f"{column} ? {placeholder}"

    def array_items(self, column: str, alias: str) -> str:
        return f"jsonb_array_elements_text({column}) AS {alias}(value)"

    def latency_bucket(self, column: str) -> str:
        return f"flywheel_latency_bucket({column})"

    def percentile_cont(self, column: str, fraction: float) -> str | None:
        return f"percentile_cont({float(fraction)}) WITHIN GROUP (ORDER BY {column})"

    def text_search(self, needle: str, p: Params) -> str:
        return postgres_search(needle, p)

    def text_probe(self, needle: str, p: Params) -> str:
        return postgres_probe(needle, p)

    def json_path_has(self, column: str, key: str, placeholder: str) -> str:
        return f"{column} -> '{key}' ? {placeholder}"

    def percentiles(self, column: str, source: str, groups: Mapping[str, str]) -> str:
        keys = [f"{expr} AS {alias}" for alias, expr in groups.items()]
        picks = [
            f"percentile_disc({percent / 100}) WITHIN GROUP (ORDER BY {column}) AS {name}"
            for name, percent in PERCENTILES.items()
        ]
        grouping = f" GROUP BY {', '.join(groups.values())}" if groups else ""
        return f"SELECT {', '.join(keys + picks)} FROM {source}{grouping}"


SQLITE = SQLiteDialect()
POSTGRES = PostgresDialect()
