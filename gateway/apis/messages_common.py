"""What the Messages modules share: tolerant readers of JSON values, SSE framing, the two
vocabularies (stop reasons and usage) side by side, ids, and tool names too long for chat.

Nothing here raises on odd input: a value of the wrong type reads as an empty one.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import orjson

from gateway.apis import sse

# -- tolerant readers --------------------------------------------------------------------------


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def count(value: Any) -> int | None:
    """A token count: a non-negative int (not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def dumps(value: Any) -> str:
    """JSON text of a value parsed from JSON (orjson refuses ints past 64 bits; json does not)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def parse_object(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as Anthropic's `input`: the JSON object they hold, else {}."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses but is still JSON (big ints, lone surrogates)
            parsed = json.loads(arguments)
        except (ValueError, RecursionError):
            return {}
    return parsed if isinstance(parsed, dict) else {}


def content_text(content: Any) -> str:
    """A chat message's content: a string, or the text of its parts."""
    if isinstance(content, list):
        return "".join(text(as_dict(part).get("text")) for part in content)
    return text(content)


def sse_fields(event: bytes) -> tuple[str | None, bytes]:
    """An event's name (`event:` line) and its data (`data:` lines joined)."""
    name, data = sse.fields(event)
    return (name.decode(errors="replace") if name is not None else None), data


def sse_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            return None


def anthropic_event(payload: dict[str, Any]) -> bytes:
    """One Messages SSE event: its type on the `event:` line (the SDKs skip events without)."""
    return b"event: " + payload["type"].encode() + b"\ndata: " + _dump_bytes(payload) + b"\n\n"


def chat_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dump_bytes(payload) + b"\n\n"


def _dump_bytes(payload: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(payload)
    except TypeError:
        return dumps(payload).encode()


# -- the two vocabularies ----------------------------------------------------------------------

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def stop_reason(
    finish_reason: Any, matched: Any, stop_sequences: list[str], tool_use: bool
) -> tuple[str, str | None]:
    """A chat finish_reason as (stop_reason, stop_sequence). `matched` is the stop string a
    provider says it stopped at (vLLM's `stop_reason`), the one way to know a stop sequence
    matched; a tool call ends the turn as `tool_use` whatever finish_reason said."""
    if tool_use and finish_reason in (None, "", "stop", "tool_calls", "function_call"):
        return "tool_use", None
    stopped = finish_reason in (None, "", "stop")
    if stopped and isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    reason = _STOP_REASONS.get(text(finish_reason), "end_turn")
    if reason == "tool_use":  # said tool_calls, but no call came: the turn simply ended
        reason = "end_turn"
    return reason, None


def finish_reason(stop: Any) -> str | None:
    """An Anthropic stop_reason in chat vocabulary (None while unknown)."""
    if not isinstance(stop, str) or not stop:
        return None
    return _FINISH_REASONS.get(stop, "stop")


def usage_from_chat(usage: Any) -> dict[str, Any]:
    """Chat usage as Anthropic's: `input_tokens` counts neither cache reads nor cache writes,
    which chat's `prompt_tokens` includes (litellm reports the writes as
    `prompt_tokens_details.cache_creation_tokens`)."""
    usage = as_dict(usage)
    details = as_dict(usage.get("prompt_tokens_details"))
    prompt = count(usage.get("prompt_tokens")) or 0
    cached = count(details.get("cached_tokens")) or count(usage.get("cache_read_input_tokens")) or 0
    created = (
        count(details.get("cache_creation_tokens"))
        or count(usage.get("cache_creation_input_tokens"))
        or 0
    )
    out: dict[str, Any] = {
        "input_tokens": max(prompt - cached - created, 0),
        "output_tokens": count(usage.get("completion_tokens")) or 0,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
    }
    reasoning = count(as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"))
    if reasoning:
        out["output_tokens_details"] = {"thinking_tokens": reasoning}
    return out


def usage_to_chat(usage: Any) -> dict[str, Any] | None:
    """Anthropic usage in chat vocabulary: `prompt_tokens` is every input token (plain, cache
    read and cache write), `cached_tokens` the cache reads. None when it holds no count."""
    usage = as_dict(usage)
    counts = [
        count(usage.get(key))
        for key in (
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "output_tokens",
        )
    ]
    if all(c is None for c in counts):
        return None
    plain, read, created, output = (c or 0 for c in counts)
    prompt = plain + read + created
    details: dict[str, Any] = {"cached_tokens": read}
    if created:
        details["cache_creation_tokens"] = created
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": details,
    }
    thinking = count(as_dict(usage.get("output_tokens_details")).get("thinking_tokens"))
    if thinking is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return out


# -- ids and names -----------------------------------------------------------------------------

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def message_id(chat_id: Any) -> str:
    """A Messages id from a chat id, the same every time for the same chat id."""
    if isinstance(chat_id, str) and chat_id:
        if chat_id.startswith("msg_"):
            return chat_id
        tail = _ID_UNSAFE.sub("", chat_id.removeprefix("chatcmpl-"))
        if tail and len(tail) <= 64:
            return "msg_" + tail
        return "msg_" + hashlib.sha256(chat_id.encode(errors="replace")).hexdigest()[:32]
    return "msg_" + uuid.uuid4().hex  # nothing to derive it from


def tool_use_id(chat_id: Any, index: int) -> str:
    """An id for a tool call that came without one."""
    seed = f"{text(chat_id)}:{index}".encode(errors="replace")
    return "toolu_" + hashlib.sha256(seed).hexdigest()[:24]


# OpenAI takes function names of at most 64 characters; Anthropic's may be longer (MCP tools).
MAX_CHAT_TOOL_NAME = 64


def chat_tool_name(name: str) -> str:
    """A tool name chat providers accept: a longer one is cut and given a hash of itself, so
    the same name always shortens the same way and the answer can be mapped back."""
    if len(name) <= MAX_CHAT_TOOL_NAME:
        return name
    digest = hashlib.sha256(name.encode(errors="replace")).hexdigest()[:8]
    return f"{name[: MAX_CHAT_TOOL_NAME - 9]}_{digest}"


def tool_names(request: Any) -> dict[str, str]:
    """The request's shortened tool names, mapped back to the names it offered."""
    names = {}
    for tool in as_list(as_dict(request).get("tools")):
        name = as_dict(tool).get("name")
        if isinstance(name, str) and len(name) > MAX_CHAT_TOOL_NAME:
            names[chat_tool_name(name)] = name
    return names


def thinking_enabled(request: Any) -> bool:
    """Whether the client asked for thinking blocks (Anthropic sends none otherwise)."""
    kind = as_dict(as_dict(request).get("thinking")).get("type")
    return isinstance(kind, str) and kind != "disabled"


def stop_sequences(request: Any) -> list[str]:
    return [s for s in as_list(as_dict(request).get("stop_sequences")) if isinstance(s, str)]
