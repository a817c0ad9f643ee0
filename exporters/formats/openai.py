"""OpenAI chat fine-tuning JSONL: `{"messages": [...], "tools": [...]}` per line.

The checks follow OpenAI's data-preparation guide: known keys and roles only, content present
(an assistant turn may carry `tool_calls` instead), the last turn from the assistant, and the
example within the token limit. No `metadata` key: the file is exactly what the API accepts.
"""

from __future__ import annotations

from typing import Any

from exporters.chat import prompt_messages, target_message, tools
from exporters.formats import Built, Format
from exporters.selection import Example
from gateway.tokens import count_prompt

_MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "weight"}
_ROLES = {"system", "developer", "user", "assistant", "tool"}


class OpenAIChat(Format):
    name = "openai"

    def build(self, example: Example) -> list[Built]:
        record: dict[str, Any] = {"messages": [*prompt_messages(example), target_message(example)]}
        offered = tools(example)
        if offered:
            record["tools"] = offered
        return [(record, example.group)]

    def check(self, record: dict[str, Any]) -> list[str]:
        return check_chat(record)

    def tokens(self, record: dict[str, Any]) -> int:
        return count_prompt("chat/completions", record, exact=True)


def check_chat(record: Any) -> list[str]:
    """OpenAI's checks for one chat example; each problem starts with its kind."""
    if not isinstance(record, dict):
        return ["data_type: a line must be a JSON object"]
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["missing_messages_list: `messages` must be a non-empty list"]
    problems = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(f"data_type: messages[{i}] is not an object")
            continue
        unknown = set(message) - _MESSAGE_KEYS
        if unknown:
            problems.append(f"message_unrecognized_key: messages[{i}] has {sorted(unknown)}")
        role = message.get("role")
        if role not in _ROLES:
            problems.append(f"unrecognized_role: messages[{i}] has role {role!r}")
        content = message.get("content")
        if role == "assistant" and message.get("tool_calls") and not content:
            continue
        if isinstance(content, list):
            content = "".join(p.get("text", "x") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or not content.strip():
            problems.append(f"missing_content: messages[{i}] ({role}) has no content")
    if isinstance(messages[-1], dict) and messages[-1].get("role") != "assistant":
        problems.append("example_missing_assistant_message: the last turn must be the assistant's")
    if "tools" in record and not isinstance(record["tools"], list):
        problems.append("data_type: `tools` must be a list")
    return problems


FORMATS = {"openai": OpenAIChat}
