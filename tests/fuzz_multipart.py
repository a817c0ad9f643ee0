"""Multipart bodies for the fuzz cases of the upload operations (tests/fuzz_support.py).

A form drawn from the operation's `multipart/form-data` schema (tests/fuzz_schemas.py) is encoded
as clients encode it (one part per field, a `filename` on each file, a list as repeated fields);
its `Content-Type` is drawn with it, since the boundary ties the two. Beside those: forms broken
in one place, and bodies that multipart parsers disagree on (no closing boundary, a boundary the
header does not name, transfer encodings, RFC 2231 names, undecodable header bytes, nesting).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from tests.fuzz_hostile import CONTENT_TYPES
from tests.fuzz_schemas import ANY_JSON, File, Schemas, weighted

# RFC 2046's boundary characters, less the space (allowed inside, never last).
_BOUNDARY_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"
BOUNDARIES = st.sampled_from(
    ["----WebKitFormBoundary7MA4YWxkTrZu0gW", "a8f3c1d2e4b5", "x", "=_boundary_="]
) | st.text(_BOUNDARY_CHARS, min_size=1, max_size=70)


def form_bodies(schemas: Schemas, schema: Mapping[str, Any]) -> st.SearchStrategy:
    """(Content-Type, body) pairs for an operation whose body is a form of `schema`."""
    valid = schemas.valid(schema).filter(lambda form: isinstance(form, dict))
    invalid = schemas.invalid(schema).filter(lambda form: isinstance(form, dict))
    return weighted(
        (8, st.tuples(valid, BOUNDARIES).map(_encoded)),
        (3, st.tuples(invalid, BOUNDARIES).map(_encoded)),
        (3, st.tuples(valid, BOUNDARIES).flatmap(_broken)),
        (1, st.tuples(CONTENT_TYPES, st.none() | ANY_JSON.map(_json))),
    )


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _encoded(drawn: tuple[dict[str, Any], str]) -> tuple[bytes, bytes]:
    form, boundary = drawn
    return _content_type(boundary), encode_form(form, boundary)


def _content_type(boundary: str) -> bytes:
    return f'multipart/form-data; boundary="{boundary}"'.encode()


def encode_form(form: Mapping[str, Any], boundary: str) -> bytes:
    """The form as multipart/form-data, as browsers and the SDKs write it."""
    parts = [part for name, value in form.items() for part in _parts(name, value)]
    return _join(parts, boundary)


def _join(parts: list[bytes], boundary: str, closing: bytes = b"--\r\n") -> bytes:
    delimiter = b"--" + boundary.encode()
    return b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + delimiter + closing


def _parts(name: str, value: Any) -> list[bytes]:
    if isinstance(value, list):  # a repeated field, e.g. `timestamp_granularities[]`
        return [part for item in value for part in _parts(name, item)]
    disposition = b'Content-Disposition: form-data; name="' + _quoted(name) + b'"'
    if isinstance(value, File):
        disposition += b'; filename="' + _quoted(value.filename) + b'"'
        kind = b"\r\nContent-Type: " + value.content_type.encode() if value.content_type else b""
        return [disposition + kind + b"\r\n\r\n" + value.data]
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return [disposition + b"\r\n\r\n" + text.encode("utf-8", "surrogatepass")]


def _quoted(value: str) -> bytes:
    """A name in a quoted header parameter, escaped as the HTML standard says."""
    escaped = value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return escaped.encode("utf-8", "surrogatepass")


def _broken(drawn: tuple[dict[str, Any], str]) -> st.SearchStrategy[tuple[bytes, bytes]]:
    """A good form, then broken in one of the ways multipart parsers disagree on."""
    form, boundary = drawn
    parts = [part for name, value in form.items() for part in _parts(name, value)]
    good = _content_type(boundary)
    whole = _join(parts, boundary)
    model = b'Content-Disposition: form-data; name="model"\r\n\r\n'
    raw_name = (
        b'Content-Disposition: form-data; name="file"; filename="caf\xe9\xff.wav"\r\n\r\nRIFF'
    )
    cases = [
        (good, _join(parts, boundary, closing=b"")),  # no closing delimiter
        (good, whole[: len(whole) // 2]),  # cut off
        (good, b""),
        (good, b"--" + boundary.encode() + b"--\r\n"),  # no parts at all
        (b"multipart/form-data", whole),  # no boundary parameter
        (_content_type(boundary + "x"), whole),  # another boundary
        (good, b"preamble\r\n" + whole + b"epilogue"),
        (good, whole.replace(b"\r\n", b"\n")),  # bare LF line ends
        (good, _join([b"X-No-Disposition: 1\r\n\r\nvalue", *parts], boundary)),
        (good, _join([*parts, model + b"second-model"], boundary)),  # a field given twice
        (good, _join([*parts, model.replace(b'name="', b"name*=utf-8''") + b"x"], boundary)),
        (good, _join([*parts, raw_name], boundary)),  # header bytes that are not UTF-8
        (
            good,
            _join([*parts, b'Content-Disposition: form-data; name="\xff"\r\n\r\n\x00'], boundary),
        ),
        (
            good,
            _join(
                [
                    *parts,
                    b'Content-Disposition: form-data; name="prompt"\r\n'
                    b"Content-Transfer-Encoding: base64\r\n\r\n!!not base64!!",
                ],
                boundary,
            ),
        ),
        (
            good,
            _join(
                [
                    *parts,
                    b'Content-Disposition: form-data; name="nested"\r\n'
                    b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n"
                    b"--inner\r\nContent-Type: text/plain\r\n\r\ninside\r\n--inner--",
                ],
                boundary,
            ),
        ),
        (
            good,
            _join(
                [*parts, *(b'Content-Disposition: form-data; name="n"\r\n\r\n1',) * 2000], boundary
            ),
        ),
        (
            good,
            _join(
                [*parts, b'Content-Disposition: form-data; name="long"\r\n\r\n' + b"v" * 200_000],
                boundary,
            ),
        ),
    ]
    return st.sampled_from(cases)
