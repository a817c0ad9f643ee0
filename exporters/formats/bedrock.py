"""Amazon Bedrock fine-tuning JSONL: `bedrock` for Amazon Nova, `bedrock-claude` for Claude 3 Haiku.

Nova takes the Converse shape, `{"schemaVersion": "bedrock-conversation-2024", "system":
[{"text"}], "messages": [{"role", "content": [{"text"}]}]}`; Claude 3 Haiku takes `{"system":
str, "messages": [{"role", "content": str}]}` and no other key. Both take only `user` and
`assistant` turns, alternating, first the user's and last the assistant's; `system` is optional.
Neither file has a `metadata` key: Claude's refuses any extra key, and a file Bedrock documents
exactly is one it will not reject. The last assistant turn is the correction when there is one.

How an OpenAI conversation becomes one of these, and what cannot:
- System and developer messages before the first turn become `system`. One later in the
  conversation has no place to go: `system_mid_conversation`.
- Consecutive turns of one role are merged (Nova: several text blocks in one message; Claude:
  the texts joined by a blank line) rather than the example dropped: OpenAI takes two user
  messages in a row, context then question, and the merged turn says the same.
- Tool calls and tool results: `tool_calls_unsupported`. Nova's supervised fine-tuning does not
  support tool use ("adding tool sections might cause your job to fail") and Claude's format is
  text only. A `tools` list offered but not called is left out, like any request parameter.
- Image or audio parts: `non_text_content`; the answer was about something the text lacks.
- An earlier assistant turn the user threw away (`exporters.history`):
  `rejected_turn_in_history`. Bedrock trains on every assistant turn and cannot mask one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exporters.chat import Unusable, prompt_messages, target_message, text_of
from exporters.formats import Built, Format
from exporters.schema import TEXT_MESSAGE
from exporters.selection import Example
from gateway.tokens import count_text

SCHEMA_VERSION = "bedrock-conversation-2024"
# Nova reserves these for its prompt template. The docs name them at the start of a prompt;
# AWS's dataset validator refuses them anywhere in any text, case-insensitively, so we do too.
RESERVED = ("user:", "bot:", "assistant:", "system:", "<image>", "<video>", "[eos]")

Turn = tuple[str, list[str]]  # role, and its texts (more than one when turns were merged)


def conversation(example: Example) -> tuple[list[str], list[Turn]]:
    """The system texts and the user/assistant turns of `example`, same-role turns merged."""
    if example.rejected_turns:
        # Bedrock trains on every assistant turn and has no way to mask one.
        raise Unusable("rejected_turn_in_history")
    system: list[str] = []
    turns: list[Turn] = []
    for message in [*prompt_messages(example), target_message(example)]:
        role = message["role"]
        if role == "tool" or message.get("tool_calls"):
            raise Unusable("tool_calls_unsupported")
        text = _text(message.get("content"))
        if role in ("system", "developer"):
            if turns:
                raise Unusable("system_mid_conversation")
            if text.strip():
                system.append(text)
        elif turns and turns[-1][0] == role:
            turns[-1][1].append(text)
        else:
            turns.append((role, [text]))
    return system, turns


def _text(content: Any) -> str:
    if isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") not in ("text", "input_text", None)
        for part in content
    ):
        raise Unusable("non_text_content")
    return text_of(content)


class BedrockNova(Format):
    builds_anywhere = True
    name = "bedrock"
    schema = {
        "schemaVersion": "string",
        "system": [{"text": "string"}],
        "messages": [{"role": "string", "content": [{"text": "string"}]}],
    }

    def build(self, example: Example) -> list[Built]:
        system, turns = conversation(example)
        record: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
        if system:
            record["system"] = [{"text": text} for text in system]
        record["messages"] = [
            {"role": role, "content": [{"text": text} for text in texts]} for role, texts in turns
        ]
        return [(record, example.group)]

    def check(self, record: dict[str, Any]) -> list[str]:
        return check_nova(record)

    def tokens(self, record: dict[str, Any]) -> int:
        blocks = [*record.get("system", []), *(b for m in record["messages"] for b in m["content"])]
        return count_text("\n".join(block["text"] for block in blocks))


class BedrockClaude(Format):
    builds_anywhere = True
    name = "bedrock-claude"
    schema = {"system": "string", "messages": [TEXT_MESSAGE]}

    def build(self, example: Example) -> list[Built]:
        system, turns = conversation(example)
        record: dict[str, Any] = {"system": "\n\n".join(system)} if system else {}
        record["messages"] = [
            {"role": role, "content": "\n\n".join(texts)} for role, texts in turns
        ]
        return [(record, example.group)]

    def check(self, record: dict[str, Any]) -> list[str]:
        return check_claude(record)

    def tokens(self, record: dict[str, Any]) -> int:
        texts = [record.get("system", ""), *(m["content"] for m in record["messages"])]
        return count_text("\n".join(texts))


def check_nova(record: Any) -> list[str]:
    """Bedrock's rules for one Nova conversation record; each problem starts with its kind."""
    if not isinstance(record, dict):
        return ["data_type: a line must be a JSON object"]
    problems = []
    if record.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(f"schema_version: `schemaVersion` must be {SCHEMA_VERSION!r}")
    if "system" in record:
        problems.extend(_blocks_problems(record["system"], "system"))
    return [
        *problems,
        *_conversation_problems(record, {"schemaVersion", "system", "messages"}, _blocks_problems),
    ]


def check_claude(record: Any) -> list[str]:
    """Bedrock's rules for one Claude 3 Haiku record; each problem starts with its kind."""
    if not isinstance(record, dict):
        return ["data_type: a line must be a JSON object"]
    problems = []
    if "system" in record and (not isinstance(record["system"], str) or not record["system"]):
        problems.append("system_format: `system` must be a non-empty string when present")
    return [*problems, *_conversation_problems(record, {"system", "messages"}, _string_problems)]


def _conversation_problems(
    record: dict[str, Any], keys: set[str], content_problems: Callable[[Any, str], list[str]]
) -> list[str]:
    """The rules both formats share: known keys, and user/assistant turns that alternate,
    first the user's, last the assistant's; `content_problems(content, where)` checks one
    turn's content in the format's shape."""
    problems = []
    unknown = set(record) - keys
    if unknown:
        problems.append(f"unrecognized_key: {sorted(unknown)}")
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return [*problems, "missing_messages: `messages` needs a user and an assistant turn"]
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            problems.append(f"message_format: messages[{i}] must have exactly role and content")
            continue
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            problems.append(f"role_order: messages[{i}] is {message['role']!r}, not {expected}")
        problems.extend(content_problems(message["content"], f"messages[{i}]"))
    if isinstance(messages[-1], dict) and messages[-1].get("role") != "assistant":
        problems.append("last_turn: the last turn must be the assistant's")
    return problems


def _blocks_problems(blocks: Any, where: str) -> list[str]:
    """Nova content: a non-empty list of `{"text": str}` blocks, no text empty or reserved."""
    if not isinstance(blocks, list) or not blocks:
        return [f"content_format: {where} must be a non-empty list of text blocks"]
    problems = []
    for j, block in enumerate(blocks):
        if not isinstance(block, dict) or set(block) != {"text"}:
            problems.append(f"content_format: {where}[{j}] must be exactly {{'text': ...}}")
        elif not isinstance(block["text"], str) or not block["text"].strip():
            problems.append(f"empty_content: {where}[{j}] has no text")
        else:
            problems.extend(_reserved(block["text"], f"{where}[{j}]"))
    return problems


def _reserved(text: str, where: str) -> list[str]:
    lowered = text.casefold()
    found = [word for word in RESERVED if word in lowered]
    return [f"reserved_keyword: {where} contains {found}"] if found else []


def _string_problems(content: Any, where: str) -> list[str]:
    """Claude content: one non-empty string."""
    if not isinstance(content, str):
        return [f"content_format: {where} content must be a string"]
    if not content.strip():
        return [f"empty_content: {where} has no text"]
    return []


FORMATS = {"bedrock": BedrockNova, "bedrock-claude": BedrockClaude}
