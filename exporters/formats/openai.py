"""OpenAI chat fine-tuning JSONL: `{"messages": [...], "tools": [...]}` per line.

The checks follow OpenAI's data-preparation guide: known keys and roles only, content present
(an assistant turn may carry `tool_calls` instead), the last turn from the assistant, and the
example within the token limit. No `metadata` key: the file is exactly what the API accepts.

An earlier assistant turn the user threw away (rejected, thumbed down or corrected; see
`exporters.history`) keeps its place in the history, so the next user turn still makes sense,
with `weight: 0`: OpenAI does not train on it. The last turn is the correction when there is one.
"""

from __future__ import annotations

from typing import Any

import orjson

from exporters.chat import prompt_messages, target_message, tools
from exporters.formats import Built, Format
from exporters.schema import MESSAGE
from exporters.selection import Example
from gateway.tokens import count_prompt

_MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "weight"}
_ROLES = {"system", "developer", "user", "assistant", "tool"}


class OpenAIChat(Format):
    builds_anywhere = True
    name = "openai"
    schema = {"messages": [{**MESSAGE, "weight": "int64"}], "tools": ["json"]}

    def build(self, example: Example) -> list[Built]:
        messages = prompt_messages(example)
        for turn in example.rejected_turns:
            # OpenAI trains on every assistant turn whose weight is not 0 (the default is 1).
            messages[turn]["weight"] = 0
        record: dict[str, Any] = {"messages": [*messages, target_message(example)]}
        offered = tools(example)
        if offered:
            record["tools"] = offered
        return [(record, example.group)]

    def check(self, record: dict[str, Any]) -> list[str]:
        return check_chat(record)

    def tokens(self, record: dict[str, Any]) -> int:
        return count_prompt("chat/completions", record, exact=True)

    def zero_weighted(self, record: dict[str, Any]) -> int:
        return sum(1 for m in record["messages"] if m.get("weight") == 0)

    def zero_weighted_line(self, line: bytes) -> int:
        # Most records carry no weight at all; the key's bytes are there whenever one does.
        return self.zero_weighted(orjson.loads(line)) if b'"weight"' in line else 0


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
        if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
            problems.append(f"invalid_weight: messages[{i}]: weight is 0 or 1, assistant only")
        if role not in _ROLES:
            problems.append(f"unrecognized_role: messages[{i}] has role {role!r}")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            problems.append(f"missing_tool_call_id: messages[{i}] answers no tool call")
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                problems.append(f"invalid_tool_call: messages[{i}] has a call without a name")
        content = message.get("content")
        if role == "assistant" and message.get("tool_calls") and not content:
            continue
        if isinstance(content, list):
            content = "".join(p.get("text", "x") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or not content.strip():
            problems.append(f"missing_content: messages[{i}] ({role}) has no content")
    if isinstance(messages[-1], dict) and messages[-1].get("role") != "assistant":
        problems.append("example_missing_assistant_message: the last turn must be the assistant's")
    if "tools" in record:
        problems += check_tools(record["tools"], "tools")
    return problems


def check_tools(offered: Any, field: str) -> list[str]:
    """OpenAI's tools list: function tools, each with a name."""
    if not isinstance(offered, list):
        return [f"data_type: `{field}` must be a list"]
    for i, tool in enumerate(offered):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            return [f"invalid_tool: {field}[{i}] must be a function tool with a name"]
    return []


FORMATS = {"openai": OpenAIChat}
