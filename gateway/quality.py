"""Data-quality flags: cheap signals that an interaction should not become training data as is."""

from __future__ import annotations

import re
from typing import Any

from gateway.apis.chat_view import CONVERSATIONS, chat_request
from gateway.tokens import message_text

UNRENDERED_TEMPLATE = "unrendered_template"
EMPTY_RESPONSE = "empty_response"
TRUNCATED = "truncated"
CONTENT_FILTERED = "content_filtered"
# Endpoints whose answer is text a model generated, which an empty or cut answer spoils.
GENERATIVE = frozenset({*CONVERSATIONS, "completions"})

# `{{ name }}` (Jinja, Mustache) or `{name}` (str.format, LangChain). Identifiers only, so JSON
# objects and code blocks in prompts do not match. Written to start with its literal `{`, which
# `re` then looks for before trying anything: this runs over every prompt, and the same pattern
# as an alternation of the two forms cost 17 us per KB of prompt without a brace (0.4 now; 339
# us for a 20 KB RAG prompt, on the event loop). The same matches: a test compares both forms.
_PLACEHOLDER = re.compile(r"\{(?:\{\s*[A-Za-z_][\w.]*\s*\}\}|(?<!\{\{)[A-Za-z_]\w*\}(?!\}))")


def prompt_text(endpoint: str, request: dict[str, Any] | None) -> str:
    if not request:
        return ""
    endpoint, request = chat_request(endpoint, request)
    if endpoint == "chat/completions":
        return "\n".join(message_text(m) for m in request.get("messages") or [])
    raw = request.get("prompt" if endpoint == "completions" else "input")
    items = raw if isinstance(raw, list) else [raw]
    return "\n".join(item for item in items if isinstance(item, str))


def placeholders(endpoint: str, request: dict[str, Any] | None) -> list[str]:
    """The unrendered placeholders in a prompt, each once, in order (what the flag is about)."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(prompt_text(endpoint, request))))


def quality_flags(
    endpoint: str,
    request: dict[str, Any] | None,
    answer_text: str | None,
    has_tool_calls: bool,
    finish_reason: str | None,
) -> list[str]:
    flags = []
    if _PLACEHOLDER.search(prompt_text(endpoint, request)):
        flags.append(UNRENDERED_TEMPLATE)
    if endpoint in GENERATIVE:
        if not (answer_text or "").strip() and not has_tool_calls:
            flags.append(EMPTY_RESPONSE)
        if finish_reason == "length":
            flags.append(TRUNCATED)
        if finish_reason == "content_filter":
            flags.append(CONTENT_FILTERED)
    return flags
