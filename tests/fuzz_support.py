"""Fuzz cases for the gateway, drawn from its own OpenAPI document (gateway/static/openapi.yaml).

A `Case` is one HTTP request as bytes on the wire would carry it: a method, a path and query
already percent-encoded, header values as bytes (latin-1 and invalid UTF-8 included), a body.
`cases(document, target)` draws them for every operation in the document: bodies valid for the
operation's schema, broken in one place, any JSON, or a hostile one (tests/fuzz_hostile.py);
multipart forms for the upload operations (tests/fuzz_multipart.py); odd metadata headers; keys
of every scope, none and malformed ones (as `x-api-key` too, for Anthropic's API); odd query
parameters on the admin routes; now and then a method or path no route has.

Ids the gateway hands out cannot be known when a case is drawn, so cases carry placeholders
(`INTERACTION`, `TOKEN`, `RESPONSE`, `EXPORT`) that the sender replaces with one seen earlier
in the run (tests/fuzz_client.py).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from gateway.auth import scope_for
from tests.fuzz_hostile import (
    CONTENT_TYPES,
    FRAMINGS,
    HEADER_VALUES,
    NASTY_PARAMS,
    TAGS,
    chat_body,
    hostile_bodies,
)
from tests.fuzz_multipart import form_bodies
from tests.fuzz_schemas import ANY_JSON, TEXT, Schemas, text, weighted

# Placeholders: only unreserved URL characters, so percent-encoding leaves them alone.
INTERACTION = "__interaction__"
TOKEN = "__token__"
RESPONSE = "__response__"
EXPORT = "__export__"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Users and sessions the forget cases name. No case is recorded as one of them, so no row the
# invariant counts is deleted (a fuzzed `Flywheel-User` is never this long and this shaped).
FORGOTTEN = tuple(f"fuzz-forgotten-subject-{i:04d}" for i in range(4))
# `/v1` paths no route has: the catch-all answers each with a recorded 404 (or a 405 where the
# path takes other methods, which none of these does).
UNKNOWN_V1 = (
    "/v1/",
    "/v1/assistants",
    "/v1/threads/thread_1/runs",
    "/v1/files",
    "/v1/batches",
    "/v1/chat/completions/",
    "/v1/responses/resp_1/unknown",
    "/v1/messages/batches",
    "/v1/audio/voices",
    "/v1/%ff",
    "/v1/a%00b",
)
# How often each operation is drawn, relative to the others (unlisted: 2). Inference and
# feedback are what clients send most and what is recorded (chat, Responses and Messages most of
# all); exports are rare because each started run reads the whole table in the one export
# process; a forget deletes rows, and may only name subjects no case is recorded as.
WEIGHTS = {
    "createChatCompletion": 30,
    "createResponse": 20,
    "createMessage": 20,
    "createCompletion": 6,
    "createEmbedding": 6,
    "countMessageTokens": 3,
    "getResponse": 3,
    "postFeedback": 14,
    "listInteractions": 5,
    "getInteraction": 3,
    "startExport": 1,
    "previewExport": 1,
    "reloadConfig": 1,
    "deleteResponse": 1,
    "listResponseInputItems": 1,
    "cancelResponse": 1,
    "forgetUser": 1,
    "forgetSession": 1,
    "healthz": 1,
    "readyz": 1,
    "metrics": 1,
    "openapi": 1,
    "unrouted": 4,
    "framing": 1,
}


@dataclass(frozen=True)
class Target:
    """What the gateway under test is configured with."""

    models: Sequence[str]
    keys: Mapping[str, str]  # key name -> key; scopes are in `scopes`
    scopes: Mapping[str, Sequence[str]]  # key name -> its scopes
    jobs: Sequence[str]
    # Models whose name is the upstream's own: uploads are relayed as they came, so only these
    # reach the provider (any other is refused as an alias).
    uploads: Sequence[str] = ()


@dataclass(frozen=True)
class Case:
    operation: str  # the document's operationId, or "unrouted"
    method: str
    path: str  # percent-encoded
    query: str  # percent-encoded, without "?"
    headers: tuple[tuple[str, bytes], ...]
    body: bytes | None
    hangup: bool = False  # close the connection once the answer's headers are in

    @property
    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def filled(self, values: Mapping[str, str]) -> Case:
        """With each placeholder replaced by its value."""
        path, query, body, headers = self.path, self.query, self.body, list(self.headers)
        for placeholder, value in values.items():
            path = path.replace(placeholder, quote(value, safe=""))
            query = query.replace(placeholder, quote(value, safe=""))
            if body is not None:
                body = body.replace(placeholder.encode(), value.encode())
            headers = [(k, v.replace(placeholder.encode(), value.encode())) for k, v in headers]
        return replace(self, path=path, query=query, body=body, headers=tuple(headers))

    def describe(self, limit: int = 400) -> str:
        """The request as a reader can replay it (bytes shown as Python escapes)."""
        lines = [f"{self.method} {self.target}" + ("  [client hangs up]" if self.hangup else "")]
        lines += [f"  {name}: {_show(value, 160)}" for name, value in self.headers]
        if self.body is not None:
            lines.append(f"  body ({len(self.body)} bytes): {_show(self.body, limit)}")
        return "\n".join(lines)


def _show(raw: bytes, limit: int) -> str:
    shown = repr(raw[:limit])[2:-1]
    return shown + (f"... (+{len(raw) - limit} bytes)" if len(raw) > limit else "")


# -- headers ----------------------------------------------------------------------------------
def _authorization(path: str, target: Target) -> st.SearchStrategy[bytes | None]:
    scope = scope_for(path)
    fitting = [name for name, scopes in target.scopes.items() if scope in scopes]
    others = [name for name in target.keys if name not in fitting]

    def bearer(name: str) -> bytes:
        return b"Bearer " + target.keys[name].encode()

    good = st.sampled_from(fitting).map(bearer) if fitting else st.nothing()
    wrong = st.sampled_from(others).map(bearer) if others else st.nothing()
    any_key = target.keys[next(iter(target.keys))].encode()
    malformed = st.sampled_from(
        [
            None,
            b"",
            b"Bearer",
            b"Bearer ",
            b"bearer " + any_key,
            b"BEARER  " + any_key + b"  ",
            any_key,
            b"Basic dXNlcjpwYXNz",
            b"Bearer sk-unknown",
            b"Bearer \xe9\xff",
            b"Bearer sk-\xc3\xa9",
            b"Bearer " + b"k" * 5000,
        ]
    )
    return weighted((6, good), (1, wrong), (1, malformed))


def _x_api_key(path: str, target: Target) -> st.SearchStrategy[bytes | None]:
    """Anthropic's key header, which Anthropic's clients send instead of `Authorization`."""
    scope = scope_for(path)
    keys = [key.encode() for name, key in target.keys.items() if scope in target.scopes[name]]
    others = [key.encode() for name, key in target.keys.items() if scope not in target.scopes[name]]
    any_key = target.keys[next(iter(target.keys))].encode()
    odd = [b"", b" ", b"Bearer " + any_key, b" " + any_key + b" ", b"sk-\xe9\xff", b"k" * 5000]
    return weighted(
        (6, st.sampled_from(keys) if keys else st.nothing()),
        (1, st.sampled_from(others) if others else st.nothing()),
        (1, st.sampled_from(odd)),
    )


def _headers(op: Mapping[str, Any], path: str, target: Target, has_body: bool) -> st.SearchStrategy:
    params = [p for p in op.get("parameters", []) if p.get("in") == "header"]
    parts: dict[str, st.SearchStrategy[bytes | None]] = {
        "Authorization": _authorization(path, target)
    }
    if path.startswith("/v1/messages"):
        # Mostly as Anthropic's SDK sends it; now and then both (`Authorization` wins).
        parts["Authorization"] = weighted((1, parts["Authorization"]), (3, st.none()))
        parts["x-api-key"] = weighted((6, _x_api_key(path, target)), (1, st.none()))
    for param in params:
        name, default = param["name"], param["schema"].get("default")
        values = TAGS if name == "Flywheel-Tags" else HEADER_VALUES
        if default is not None:
            values = weighted((3, st.just(default.encode())), (1, values))
        parts[name] = st.none() | values
    if op.get("operationId") == "postFeedback":
        parts["Flywheel-Feedback-Token"] = st.none() | st.just(TOKEN.encode()) | HEADER_VALUES
    if has_body:
        parts["Content-Type"] = CONTENT_TYPES
        parts["Content-Encoding"] = st.sampled_from([None] * 30 + [b"gzip", b"deflate", b"br"])
    return st.fixed_dictionaries(parts).map(
        lambda values: tuple((k, v) for k, v in values.items() if v is not None)
    )


# -- paths and queries ------------------------------------------------------------------------
def _query(op: Mapping[str, Any], schemas: Schemas) -> st.SearchStrategy[str]:
    params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
    pairs: list[st.SearchStrategy[list[tuple[str, bytes]]]] = []
    for param in params:
        schema = param["schema"]
        explode = schema.get("type") == "array"
        good = schemas.valid(schema).map(
            lambda value, name=param["name"], explode=explode: [
                (name, _as_param(item)) for item in (value if explode else [value])
            ]
        )
        odd = st.sampled_from(NASTY_PARAMS).map(str.encode) | st.sampled_from(
            [b"\xff", b"\xe9t\xe9", b"%", b"a\x00b"]
        )
        bad = odd.map(lambda raw, name=param["name"]: [(name, raw)])
        required = param.get("required", False)
        pairs.append(weighted((2, good), (1, bad), (0 if required else 3, st.just([]))))
    unknown = st.lists(st.tuples(text(1, 10), HEADER_VALUES), max_size=2)
    pairs.append(weighted((3, st.just([])), (1, unknown)))
    return st.tuples(*pairs).map(
        lambda groups: "&".join(
            f"{quote(name, safe='')}={quote(value, safe='')}"
            for group in groups
            for name, value in group
        )
    )


def _as_param(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()


def _path_value(name: str, template: str, target: Target) -> st.SearchStrategy[str]:
    odd_names = ["..", "%2e%2e", "../../etc/passwd", " ", "\u00e9", "a/b", "0" * 300]
    odd = st.one_of(TEXT.filter(bool), st.sampled_from(odd_names))
    if template.startswith(("/admin/users/", "/admin/sessions/")):
        # Never a fuzzed user or session (see FORGOTTEN): odd ids only of fixed, long shapes.
        strange = [f"{FORGOTTEN[0]}/x", f"{FORGOTTEN[1]} \u00e9", f"{FORGOTTEN[2]}%2e%2e"]
        return st.sampled_from([*FORGOTTEN, *strange])
    if name == "response_id":
        return weighted((4, st.just(RESPONSE)), (1, odd))
    if name == "model":
        return weighted((3, st.sampled_from(list(target.models))), (1, odd))
    if name == "id":
        ids = st.sampled_from([INTERACTION, EXPORT])
        return weighted((4, ids), (1, st.uuids().map(str)), (1, odd))
    if name == "name":
        files = st.sampled_from(["manifest.json", "data/train.jsonl", "train.jsonl", "a/../b"])
        return weighted((3, files), (1, odd))
    return odd


def _path(template: str, target: Target) -> st.SearchStrategy[str]:
    parts = template.strip("/").split("/")
    # `{name}` of an export file may hold slashes (the route is `{name:.+}`).
    drawn = [
        _path_value(part[1:-1], template, target).map(
            lambda value, safe="/" if part == "{name}" else "": quote(value, safe=safe)
        )
        if part.startswith("{")
        else st.just(part)
        for part in parts
    ]
    return st.tuples(*drawn).map(lambda pieces: "/" + "/".join(pieces))


# -- bodies -----------------------------------------------------------------------------------
def _body(op: Mapping[str, Any], schemas: Schemas, target: Target) -> st.SearchStrategy:
    """(Content-Type, body) pairs; a Content-Type of None keeps the one `_headers` drew."""
    content = op.get("requestBody", {}).get("content", {})
    models = st.sampled_from(list(target.models))
    hostile = models.flatmap(hostile_bodies)
    if "multipart/form-data" in content:
        forms = _for_uploads(schemas, target)
        return weighted(
            (12, form_bodies(forms, content["multipart/form-data"]["schema"])),
            (1, st.tuples(st.none(), hostile)),
        )
    if "application/json" not in content:
        json_body = weighted((12, st.none()), (1, ANY_JSON.map(_encode)), (1, hostile))
        return st.tuples(st.none(), json_body)
    schema = content["application/json"]["schema"]
    json_body = weighted(
        (8, schemas.valid(schema).map(_encode)),
        (4, schemas.invalid(schema).map(_encode)),
        (1, ANY_JSON.map(_encode)),
        (2, hostile),
        (1, st.none()),
    )
    return st.tuples(st.none(), json_body)


def _for_uploads(schemas: Schemas, target: Target) -> Schemas:
    """The schemas, with a form's `model` mostly one whose uploads reach the provider."""
    uploads = st.sampled_from(list(target.uploads)) if target.uploads else st.nothing()
    model = weighted((6, uploads), (2, st.sampled_from(list(target.models))), (1, TEXT))
    return Schemas(schemas.document, overrides={**schemas.overrides, "model": model})


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _typed(
    headers: tuple[tuple[str, bytes], ...], content_type: bytes | None
) -> tuple[tuple[str, bytes], ...]:
    """The headers, with the Content-Type a multipart body was drawn with (its boundary)."""
    if content_type is None:
        return headers
    return (*((k, v) for k, v in headers if k != "Content-Type"), ("Content-Type", content_type))


def _compressed(headers: tuple[tuple[str, bytes], ...], body: bytes | None) -> bytes | None:
    """A body said to be gzip is gzip; one said to be deflate or br is not, and must be a 400."""
    if body is not None and dict(headers).get("Content-Encoding") == b"gzip":
        return gzip.compress(body)
    return body


# -- the case strategy -------------------------------------------------------------------------
def operations(document: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) for every operation the document describes."""
    return [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in {m.lower() for m in METHODS}
    ]


def cases(document: Mapping[str, Any], target: Target) -> st.SearchStrategy[Case]:
    """Cases of every kind, each drawn as often as `WEIGHTS` says."""
    by_name = case_kinds(document, target)
    return weighted(*((WEIGHTS.get(name, 2), strategy) for name, strategy in by_name.items()))


def case_kinds(document: Mapping[str, Any], target: Target) -> dict[str, st.SearchStrategy[Case]]:
    """A strategy per operation of the document, plus `unrouted` and `framing`."""
    schemas = Schemas(
        document,
        overrides={
            "model": weighted((8, st.sampled_from(list(target.models))), (1, TEXT)),
            "interaction_id": weighted(
                (6, st.just(INTERACTION)), (1, st.uuids().map(str)), (1, TEXT)
            ),
            "feedback_token": weighted((4, st.just(TOKEN)), (1, TEXT)),
            "response_id": weighted((2, st.just(RESPONSE)), (1, TEXT)),
            "job": weighted((3, st.sampled_from(list(target.jobs) or ["none"])), (1, TEXT)),
        },
    )
    by_name = {
        op["operationId"]: _operation(method, template, op, schemas, target)
        for method, template, op in operations(document)
    }
    by_name["unrouted"] = _unrouted(document, target)
    by_name["framing"] = _framing(target)
    return by_name


def _operation(
    method: str, template: str, op: Mapping[str, Any], schemas: Schemas, target: Target
) -> st.SearchStrategy[Case]:
    has_body = "requestBody" in op
    return st.builds(
        lambda path, query, headers, typed_body, hangup: Case(
            op["operationId"],
            method,
            path,
            query,
            _typed(headers, typed_body[0]),
            _compressed(headers, typed_body[1]),
            hangup,
        ),
        _path(template, target),
        _query(op, schemas),
        _headers(op, template, target, has_body),
        _body(op, schemas, target),
        st.sampled_from([False] * 30 + [True]),
    )


def _framing(target: Target) -> st.SearchStrategy[Case]:
    """A good chat request with odd framing: aiohttp's parser answers most of these itself."""
    key = b"Bearer " + target.keys[next(iter(target.keys))].encode()
    body = json.dumps(chat_body(target.models[0])).encode()
    return st.builds(
        lambda framing, path: Case(
            "framing",
            "POST",
            path,
            "",
            (("Authorization", key), ("Content-Type", b"application/json"), *framing),
            body,
        ),
        st.sampled_from(FRAMINGS),
        st.sampled_from(["/v1/chat/completions", "/v1/feedback"]),
    )


def _unrouted(document: Mapping[str, Any], target: Target) -> st.SearchStrategy[Case]:
    """A method a known path does not take, or a path no route has."""
    known = list(document["paths"])
    paths = st.one_of(
        st.sampled_from(known).map(lambda p: p.replace("{", "").replace("}", "")),
        st.sampled_from(
            [
                "/",
                "/v1",
                "/v1/",
                "/v1/responses",
                "/v1/chat/completions/",
                "//v1/models",
                "/v1/./models",
                "/admin/../v1/models",
                "/static/../../etc/passwd",
                "/static/%2e%2e/%2e%2e/etc/passwd",
                "/admin",
                "/admin/users",
                "/%ff",
                "/v1/models/%00",
            ]
        ),
        st.sampled_from(UNKNOWN_V1),
    )
    return st.builds(
        lambda method, path, auth, body: Case(
            "unrouted",
            method,
            path,
            "",
            ((("Authorization", auth),) if auth else ()) + (("Content-Type", b"application/json"),),
            body,
        ),
        st.sampled_from(METHODS),
        paths,
        st.sampled_from([None, *(b"Bearer " + key.encode() for key in target.keys.values())]),
        st.none() | ANY_JSON.map(_encode),
    )
