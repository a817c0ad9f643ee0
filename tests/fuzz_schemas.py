"""Hypothesis strategies from the JSON Schemas of the gateway's OpenAPI document.

`Schemas(document).valid(schema)` draws values the schema accepts; `.invalid(schema)` draws
values it refuses in one place (a missing required field, a wrong type, a value out of range,
an unknown field), so a request fails deep inside an otherwise good body. Only the keywords
the document uses are understood; any other raises, so the document cannot grow a constraint
the fuzzer silently ignores. `overrides` replaces the values of named properties (the `model`
a body asks for should mostly be a configured one, ids mostly ones the gateway issued).

A string with a `contentMediaType` is a file of a multipart form: drawn as a `File`, which only
the multipart encoder (tests/fuzz_multipart.py) writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

# Keywords that only describe: they constrain nothing a generator must honour.
ANNOTATIONS = frozenset({"description", "title", "default", "examples", "summary"})
KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "maxProperties",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "contentMediaType",
        "oneOf",
        "anyOf",
        "allOf",
    }
)
MAX_DEPTH = 6  # nested objects and arrays drawn from a schema; deeper ones are the raw cases'

# Text with the characters clients really send: mostly ASCII, then any Unicode scalar (no
# lone surrogates: a JSON encoder escapes them, and the raw bodies cover those).
_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_UNICODE = st.characters(exclude_categories=("Cs",))


def text(low: int = 0, high: int | None = None) -> st.SearchStrategy[str]:
    high = max(low, 20) if high is None else min(high, max(low, 20))
    return st.text(_ASCII, min_size=low, max_size=high) | st.text(
        _UNICODE, min_size=low, max_size=high
    )


TEXT = text()
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.integers(),
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "string": TEXT,
    "array": st.lists(JSON_SCALARS, max_size=3),
    "object": st.dictionaries(TEXT, JSON_SCALARS, max_size=3),
}
_OFFSETS = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-13, minutes=-30))]
)


@dataclass(frozen=True)
class File:
    """A file part of a multipart form."""

    filename: str
    content_type: str
    data: bytes


# Names and bytes as clients send them, and as they should not: quotes, slashes, no extension,
# non-ASCII, an empty name; empty files, bytes that look like a boundary or a header.
FILES = st.builds(
    File,
    st.sampled_from(["speech.wav", "a.mp3", "image.png", "mask.png", "x", ""])
    | text(0, 24)
    | st.sampled_from(
        ['q"uote.wav', "../../etc/passwd", "caf\u00e9.m4a", "a\\b.png", "nul\x00.wav"]
    ),
    st.sampled_from(["audio/wav", "audio/mpeg", "image/png", "application/octet-stream", ""]),
    st.binary(max_size=256)
    | st.sampled_from([b"", b"--", b"\r\n--x--\r\n", b"Content-Type: text/plain\r\n\r\n"]),
)


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn in proportion to its weight. (`st.one_of` gives every
    distinct strategy the same chance, however often it is listed.)"""
    indexes = [i for i, (weight, _) in enumerate(options) for _ in range(weight)]
    return st.sampled_from(indexes).flatmap(lambda i: options[i][1])


class SchemaError(Exception):
    """The document uses a keyword or shape this generator does not understand."""


class Schemas:
    def __init__(
        self,
        document: Mapping[str, Any],
        overrides: Mapping[str, st.SearchStrategy[Any]] | None = None,
    ):
        self.document = document
        self.overrides = dict(overrides or {})

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            node: Any = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        unknown = set(schema) - KEYWORDS - ANNOTATIONS
        if unknown:
            raise SchemaError(f"keywords the fuzzer does not know: {sorted(unknown)}")
        return schema

    # -- values the schema accepts -----------------------------------------------------------
    def valid(self, schema: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        s = self.resolve(schema)
        if "const" in s:
            return st.just(s["const"])
        if "enum" in s:
            return st.sampled_from(s["enum"])
        for keyword in ("oneOf", "anyOf"):
            if keyword in s:
                return st.one_of([self.valid(option, depth) for option in s[keyword]])
        if "allOf" in s:
            raise SchemaError("allOf is only for answers; request schemas must not use it")
        types = s.get("type")
        if types is None:
            return ANY_JSON
        if isinstance(types, list):
            return st.one_of([self.valid({**s, "type": t}, depth) for t in types])
        if depth > MAX_DEPTH and types in ("object", "array"):
            return st.just({} if types == "object" else [])
        return self._valid_of_type(s, types, depth)

    def _valid_of_type(self, s: Mapping[str, Any], kind: str, depth: int) -> st.SearchStrategy:
        if kind == "object":
            return self._object(s, depth)
        if kind == "array":
            return st.lists(
                self.valid(s.get("items", {}), depth + 1),
                min_size=s.get("minItems", 0),
                max_size=min(s.get("maxItems", 4), 4),
            )
        if kind == "string":
            return self._string(s)
        if kind == "integer":
            high = s.get("maximum")
            return st.integers(min_value=s.get("minimum"), max_value=high)
        if kind == "number":
            high = s.get("maximum", s.get("exclusiveMaximum"))
            return st.floats(
                min_value=s.get("minimum"),
                max_value=high,
                exclude_max="exclusiveMaximum" in s,
                allow_nan=False,
                allow_infinity=False,
            ) | st.integers(
                min_value=_whole(s.get("minimum"), math.ceil),
                max_value=_whole(high, math.floor),
            ).filter(lambda n: "exclusiveMaximum" not in s or n < s["exclusiveMaximum"])
        if kind in ("null", "boolean"):
            return _BY_TYPE[kind]
        raise SchemaError(f"unknown type {kind!r}")

    def _string(self, s: Mapping[str, Any]) -> st.SearchStrategy[str]:
        if "contentMediaType" in s:
            return FILES
        fmt = s.get("format")
        if fmt == "uuid":
            return st.uuids().map(str)
        if fmt == "date-time":
            return st.builds(
                lambda moment, offset: moment.replace(tzinfo=offset).isoformat(),
                st.datetimes(),
                _OFFSETS,
            )
        if fmt is not None:
            raise SchemaError(f"unknown string format {fmt!r}")
        if "pattern" in s:
            return st.from_regex(s["pattern"], fullmatch=True)
        return text(s.get("minLength", 0), s.get("maxLength"))

    def _object(self, s: Mapping[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
        properties = s.get("properties", {})
        required = s.get("required", [])
        extra = s.get("additionalProperties", True)
        if not properties:
            values = ANY_JSON if extra is True else self.valid(extra or {}, depth + 1)
            size = min(s.get("maxProperties", 3), 3)
            return st.dictionaries(text(1, 64), values, max_size=size)
        fields = {name: self._property(name, sub, depth) for name, sub in properties.items()}
        body = st.fixed_dictionaries(
            {name: fields[name] for name in required},
            optional={name: fields[name] for name in properties if name not in required},
        )
        if extra is not True:
            return body
        # Open objects are forwarded as sent: now and then a field nobody described.
        unknown = TEXT.filter(lambda key: key not in properties)
        return st.builds(
            lambda known, more: {**more, **known},
            body,
            st.dictionaries(unknown, ANY_JSON, max_size=2) | st.just({}),
        )

    def _property(self, name: str, schema: Mapping[str, Any], depth: int) -> st.SearchStrategy:
        override = self.overrides.get(name)
        return override if override is not None else self.valid(schema, depth + 1)

    # -- values the schema refuses -----------------------------------------------------------
    def invalid(self, schema: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        """A value the schema refuses, broken in one place where the schema has structure."""
        s = self.resolve(schema)
        options: list[st.SearchStrategy[Any]] = [_other_type(s)]
        if s.get("type") == "object" and s.get("properties") and depth <= MAX_DEPTH:
            options += self._invalid_object(s, depth)
        if s.get("type") == "array" and "items" in s and depth <= MAX_DEPTH:
            good = self.valid(s["items"], depth + 1)
            bad = self.invalid(s["items"], depth + 1)
            options.append(
                st.tuples(st.lists(good, max_size=2), bad).map(lambda pair: [*pair[0], pair[1]])
            )
            if "maxItems" in s:
                options.append(
                    st.lists(good, min_size=s["maxItems"] + 1, max_size=s["maxItems"] + 1)
                )
        if "enum" in s:
            options.append(TEXT.filter(lambda value: value not in s["enum"]))
        for bound, beyond in (("minimum", -1), ("maximum", 1), ("exclusiveMaximum", 0)):
            if bound in s:
                options.append(st.just(s[bound] + beyond))
        if "maxLength" in s:
            options.append(st.just("x" * (s["maxLength"] + 1)))
        if s.get("minLength"):
            options.append(st.just(""))
        for keyword in ("oneOf", "anyOf"):
            if keyword in s:
                options += [self.invalid(option, depth + 1) for option in s[keyword]]
        return st.one_of(options)

    def _invalid_object(self, s: Mapping[str, Any], depth: int) -> list[st.SearchStrategy]:
        properties, required = s["properties"], s.get("required", [])
        whole = self._object(s, depth)
        options: list[st.SearchStrategy[Any]] = []
        if required:
            options.append(
                st.tuples(whole, st.sampled_from(required)).map(
                    lambda pair: {k: v for k, v in pair[0].items() if k != pair[1]}
                )
            )
        broken = st.sampled_from(sorted(properties)).flatmap(
            lambda name: st.tuples(whole, st.just(name), self.invalid(properties[name], depth + 1))
        )
        options.append(broken.map(lambda triple: {**triple[0], triple[1]: triple[2]}))
        if s.get("additionalProperties") is False:
            unknown = TEXT.filter(lambda key: key not in properties)
            options.append(st.builds(lambda body, key: {**body, key: 1}, whole, unknown))
        return options


def _whole(bound: float | None, rounded: Any) -> int | None:
    """A bound of a number's integer values (`speed` from 0.25: integers from 1)."""
    return None if bound is None else int(rounded(bound))


def _other_type(s: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """A JSON value of a type the schema does not allow (any type when it names none)."""
    allowed = s.get("type")
    allowed = [allowed] if isinstance(allowed, str) else (allowed or [])
    if "integer" in allowed:
        allowed = [*allowed, "number"] if "number" not in allowed else allowed
    others = [kind for kind in _BY_TYPE if kind not in allowed]
    if not allowed or not others:
        return ANY_JSON
    if "number" in allowed and "integer" not in allowed:
        others.remove("integer")
    return st.one_of([_BY_TYPE[kind] for kind in others])
