"""Inputs seen to break HTTP servers and gateways, for the fuzz cases (tests/fuzz_support.py):
bodies nested past parsers' limits, lone surrogates, bytes that are not UTF-8, numbers no
column holds, odd shapes of the fields the gateway reads; header bytes of every charset;
query values that parse as something else; requests framed in ways parsers disagree on.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.fuzz_schemas import text


# -- bodies ---------------------------------------------------------------------------------
def _nested(depth: int, model: str, kind: str) -> bytes:
    inner = ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)
    return b'{"model":%s,"messages":[{"role":"user","content":"hi"}],"extra":%s}' % (
        json.dumps(model).encode(),
        inner.encode(),
    )


def chat_body(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields}


def hostile_bodies(model: str) -> st.SearchStrategy[bytes]:
    """Bodies seen to break gateways: depth, lone surrogates, bytes that are not UTF-8, numbers
    no column holds, odd shapes of fields the gateway reads, keys inside the body."""
    m = json.dumps(model)
    dumps = [
        chat_body(model, max_tokens=2**64),
        chat_body(model, temperature=1e308, n=-(2**63) - 1),
        chat_body(model, stream="true"),
        chat_body(model, stream=1),
        chat_body(model, stream=True, stream_options=[]),
        chat_body(model, stream=True, stream_options="x"),
        chat_body(model, api_key="sk-in-the-body-123", openai_api_key="sk-other-456"),
        chat_body(model, flywheel="x"),
        chat_body(model, flywheel={"user": 5}),
        chat_body(model, flywheel={"user": "u" * 257}),
        chat_body(model, flywheel={"tags": {"a": {"b": 1}}}),
        chat_body(model, flywheel={"tags": {f"k{i}": "v" for i in range(33)}}),
        chat_body(model, flywheel={"tags": 5}),
        chat_body(model, user=["x"]),
        {"model": model, "messages": "hi"},
        {"model": model, "messages": [None, 5, "x"]},
        {
            "model": model,
            "messages": [{"role": "assistant", "content": "x", "tool_calls": False}],
        },
        {"model": model, "messages": [{"role": "assistant", "content": "x", "tool_calls": ["x"]}]},
        {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": []}]}]},
        {"model": model, "messages": [{"role": 5, "content": {"a": 1}}]},
        {"model": model, "input": [[1, 2], {"a": 1}]},
        {"model": model, "prompt": {"a": 1}},
        {"model": [model]},
        {"model": ""},
        {"model": None},
    ]
    raw = [json.dumps(body).encode() for body in dumps] + [
        _nested(depth, model, kind)
        for depth in (64, 254, 255, 256, 1000, 1024, 5000)
        for kind in ("list", "object")
    ]
    raw += [
        b'{"model":%s,"messages":[{"role":"user","content":"\\ud800"}],"user":"\\udcff"}'
        % m.encode(),
        b'{"model":%s,"messages":[{"role":"user","content":"caf\xe9 \xff\xfe"}]}' % m.encode(),
        b'{"model":%s,"messages":[{"role":"user","content":"nul \\u0000 byte"}]}' % m.encode(),
        b'{"model":%s,"max_tokens":1e400,"messages":[]}' % m.encode(),
        b'{"model":%s,"max_tokens":NaN,"messages":[]}' % m.encode(),
        b'{"model":%s,"max_tokens":123456789012345678901234567890,"messages":[]}' % m.encode(),
        b'{"model":"nope","model":%s,"messages":[{"role":"user","content":"dup"}]}' % m.encode(),
        b"\xef\xbb\xbf" + json.dumps(chat_body(model)).encode(),
        json.dumps(chat_body(model)).encode() + b" trailing",
        json.dumps(chat_body(model)).encode()[:-7],
        b"",
        b" ",
        b"null",
        b"[]",
        b'"text"',
        b"1",
        b"[" * 100_000,
    ]
    return st.sampled_from(raw) | st.binary(max_size=64)


# -- headers ----------------------------------------------------------------------------------
_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
# Header bytes a client may send: ASCII, UTF-8, latin-1 (Python's http.client sends "José" so),
# bytes that are neither, tabs and DEL, long and empty values. Never CR or LF: those end a header.
HEADER_VALUES = st.one_of(
    st.text(_PRINTABLE, max_size=30).map(str.encode),
    st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20)
    .map(lambda value: value.strip() or "x")
    .map(str.encode),
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1, max_size=8).map(
        lambda value: b"Jos" + value.encode("latin-1")
    ),
    st.binary(min_size=1, max_size=12).map(
        lambda raw: bytes(b if b >= 0x80 or 0x21 <= b <= 0x7E else 0x78 for b in raw)
    ),
    st.sampled_from([b"a\tb", b"del\x7f", b"u" * 256, b"u" * 257, b"u" * 2000, b"", b"  "]),
)
TAGS = st.one_of(
    HEADER_VALUES,
    st.lists(st.tuples(text(0, 8), text(0, 8)), max_size=4).map(
        lambda pairs: ",".join(f"{k}={v}" for k, v in pairs).encode()
    ),
    st.just(b",".join(b"k%d=v" % i for i in range(33))),
)
CONTENT_TYPES = st.sampled_from(
    [b"application/json"] * 40
    + [
        b"application/json; charset=utf-8",
        b"APPLICATION/JSON",
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/json\xe9",
        b"",
        None,
    ]
)


# -- query values -----------------------------------------------------------------------------
NASTY_PARAMS = [
    "",
    "-1",
    "0",
    "00",
    "²",
    "³",
    "1e3",
    "9" * 30,
    "true",
    "0001-01-01T00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2025-13-40",
    "x=y",
    "\u202e",
    "'; DROP TABLE interactions; --",
]


# Requests framed in ways HTTP/1.1 parsers disagree on; each is one list of raw header lines
# (the sender adds no Content-Length when one is given).
FRAMINGS: list[tuple[tuple[str, bytes], ...]] = [
    (("Content-Length", b"abc"),),
    (("Content-Length", b"-1"),),
    (("Content-Length", b"99999999999999999999999"),),
    (("Content-Length", b"2"), ("Content-Length", b"3")),
    (("Transfer-Encoding", b"chunked"), ("Content-Length", b"5")),
    (("Transfer-Encoding", b"gzip, chunked"),),
    (("Transfer-Encoding", b"chunked"),),  # the body is then not chunked
    tuple((f"X-Many-{i}", b"1") for i in range(200)),
    (("X-Long", b"v" * 9000),),
    (("X-Nul", b"a\x00b"),),
    (("Bad Name", b"1"),),
    (("X-Folded", b"a\r\n folded"),),
    (("Flywheel-User", b"Jos\xe9"), ("Flywheel-User", b"Jos\xc3\xa9")),
]
