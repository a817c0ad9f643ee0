"""Messages requests as chat-completions requests (`to_chat_request`), for providers that speak
only chat.

What chat can say is carried over: system prompts, text, images, PDFs and plain-text documents,
tool definitions, calls and results, tool choice, sampling and stop settings. Thinking blocks and
the `thinking` setting are dropped (chat has no signed reasoning to send back), as are `top_k` and
cache breakpoints. What chat cannot say at all (tools Anthropic runs itself, MCP servers,
containers, files by id, document URLs) is refused with `strict`; without it (reading a recorded
request for review and exports) it is skipped and nothing raises.
"""

from __future__ import annotations

from typing import Any

from gateway.apis.messages_common import as_dict, as_list, chat_tool_name, count, dumps, text
from gateway.errors import InvalidRequest

_ROLES = ("user", "assistant", "system")


class _Reader:
    """Walks one request; `bad` raises when strict and otherwise lets the caller skip."""

    def __init__(self, strict: bool):
        self.strict = strict

    def bad(self, param: str | None, message: str) -> None:
        if self.strict:
            raise InvalidRequest(message, param=param)


def to_chat_request(body: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    r = _Reader(strict)
    if not isinstance(body, dict):
        r.bad(None, "The request body must be a JSON object.")
        return {"messages": []}
    chat: dict[str, Any] = {}
    model = body.get("model")
    if isinstance(model, str) and model:
        chat["model"] = model
    else:
        r.bad("model", "model: Field required (the model's name, a string).")
    messages: list[dict[str, Any]] = []
    if body.get("system") is not None:
        system = _system(r, body["system"], "system")
        if system:
            messages.append({"role": "system", "content": system})
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        r.bad("messages", "messages: Field required (a non-empty list of messages).")
    for i, message in enumerate(as_list(raw)):
        messages.extend(_message(r, message, f"messages[{i}]"))
    chat["messages"] = messages
    max_tokens = body.get("max_tokens")
    if count(max_tokens) is not None:
        chat["max_tokens"] = max_tokens
    else:
        r.bad("max_tokens", "max_tokens: Field required (a non-negative integer).")
    _tools(r, body, chat)
    _settings(r, body, chat)
    return chat


def _settings(r: _Reader, body: dict[str, Any], chat: dict[str, Any]) -> None:
    stops = body.get("stop_sequences")
    if stops is not None:
        if isinstance(stops, list) and all(isinstance(s, str) for s in stops):
            if stops:
                chat["stop"] = list(stops)
        else:
            r.bad("stop_sequences", "stop_sequences: must be a list of strings.")
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            chat[key] = value
        else:
            r.bad(key, f"{key}: must be a number.")
    metadata = body.get("metadata")
    if metadata is not None:
        user = as_dict(metadata).get("user_id")
        if not isinstance(metadata, dict) or not isinstance(user, str | None):
            r.bad("metadata", "metadata: must be an object whose user_id is a string.")
        elif isinstance(user, str) and user:
            chat["user"] = user
    stream = body.get("stream")
    if stream is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    elif stream is not None and stream is not False:
        r.bad("stream", "stream: must be a boolean.")
    output_format = as_dict(as_dict(body.get("output_config")).get("format"))
    schema = output_format.get("schema")
    if output_format.get("type") == "json_schema" and isinstance(schema, dict):
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }
    if as_list(body.get("mcp_servers")):
        r.bad("mcp_servers", "mcp_servers: MCP servers cannot be reached through this model.")
    if body.get("container") is not None:
        r.bad("container", "container: containers (code execution, skills) need Anthropic.")


# -- messages ----------------------------------------------------------------------------------


def _message(r: _Reader, message: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(message, dict):
        r.bad(where, f"{where}: must be an object with a role and content.")
        return []
    role = message.get("role")
    if role not in _ROLES:
        r.bad(f"{where}.role", f"{where}.role: must be 'user' or 'assistant'.")
        return []
    content = message.get("content")
    if not isinstance(content, str | list):
        r.bad(f"{where}.content", f"{where}.content: must be a string or a list of blocks.")
        return []
    if role == "system":
        system = _system(r, content, f"{where}.content")
        return [{"role": "system", "content": system}] if system else []
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if role == "user":
        return _user(r, content, where)
    return _assistant(r, content, where)


def _system(r: _Reader, system: Any, where: str) -> str | list[dict[str, Any]]:
    """A system prompt: a string, or text blocks (as chat text parts)."""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        r.bad(where, f"{where}: must be a string or a list of text blocks.")
        return ""
    parts = []
    for j, block in enumerate(system):
        value = as_dict(block).get("text")
        if as_dict(block).get("type") == "text" and isinstance(value, str):
            parts.append({"type": "text", "text": value})
        else:
            r.bad(f"{where}[{j}]", f"{where}[{j}]: a system prompt holds only text blocks.")
    return _compact(parts)


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Chat content: one text part as a plain string, anything else as parts."""
    if len(parts) == 1 and parts[0].get("type") == "text":
        return str(parts[0]["text"])
    return parts


def _user(r: _Reader, blocks: list[Any], where: str) -> list[dict[str, Any]]:
    """A user turn: one `tool` message per tool result (they come first in the turn, as
    Anthropic requires), then a user message with the rest. Images inside tool results, which
    chat's tool messages cannot hold, open that user message."""
    tool_messages: list[dict[str, Any]] = []
    from_tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        if as_dict(block).get("type") == "tool_result":
            tool_messages.extend(_tool_result(r, block, at, from_tools))
        else:
            parts.extend(_part(r, block, at))
    messages = tool_messages
    if from_tools or parts:
        messages.append({"role": "user", "content": _compact(from_tools + parts)})
    return messages


def _assistant(r: _Reader, blocks: list[Any], where: str) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        block_type = as_dict(block).get("type")
        if block_type == "text":
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            else:
                r.bad(f"{at}.text", f"{at}.text: must be a string.")
        elif block_type == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str) or not name:
                r.bad(at, f"{at}: a tool_use block needs a string id and name.")
                continue
            function = {"name": chat_tool_name(name), "arguments": dumps(block.get("input", {}))}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif block_type in ("thinking", "redacted_thinking"):
            continue  # signed reasoning only Anthropic can read back
        else:
            r.bad(at, f"{at}: a block of type {block_type!r} cannot be sent to this model.")
    if not texts and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _part(r: _Reader, block: Any, at: str) -> list[dict[str, Any]]:
    """One block of user content as chat content parts."""
    block = as_dict(block)
    block_type = block.get("type")
    if block_type == "text":
        if isinstance(block.get("text"), str):
            return [{"type": "text", "text": block["text"]}]
        r.bad(f"{at}.text", f"{at}.text: must be a string.")
        return []
    if block_type == "image":
        return _image(r, block, at)
    if block_type == "document":
        return _document(r, block, at)
    if block_type in ("thinking", "redacted_thinking"):
        return []
    if block_type == "search_result":
        r.bad(at, f"{at}: search_result blocks cannot be sent to this model.")
        return [{"type": "text", "text": _block_texts(block.get("content"))}]
    r.bad(at, f"{at}: a block of type {block_type!r} cannot be sent to this model.")
    return []


def _image(r: _Reader, block: dict[str, Any], at: str) -> list[dict[str, Any]]:
    source = as_dict(block.get("source"))
    source_type, data, media = source.get("type"), source.get("data"), source.get("media_type")
    if source_type == "base64" and isinstance(data, str) and isinstance(media, str):
        return [{"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}]
    if source_type == "url" and isinstance(source.get("url"), str):
        return [{"type": "image_url", "image_url": {"url": source["url"]}}]
    r.bad(f"{at}.source", f"{at}.source: only base64 and url images can be sent to this model.")
    return []


def _document(r: _Reader, block: dict[str, Any], at: str) -> list[dict[str, Any]]:
    """A PDF as a chat file part, a plain-text document as text, a content document as its
    text and images; a document by URL or file id cannot be expressed."""
    source = as_dict(block.get("source"))
    source_type, data, media = source.get("type"), source.get("data"), source.get("media_type")
    if source_type == "base64" and isinstance(data, str) and isinstance(media, str):
        title = block.get("title")
        filename = title if isinstance(title, str) and title else "document.pdf"
        file = {"filename": filename, "file_data": f"data:{media};base64,{data}"}
        return [{"type": "file", "file": file}]
    if source_type == "text" and isinstance(data, str):
        return [{"type": "text", "text": data}]
    if source_type == "content":
        content = source.get("content")
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        parts = []
        for k, item in enumerate(as_list(content)):
            parts.extend(_part(r, item, f"{at}.source.content[{k}]"))
        return parts
    r.bad(f"{at}.source", f"{at}.source: documents by URL or file id cannot be sent to this model.")
    return []


def _tool_result(
    r: _Reader, block: dict[str, Any], at: str, from_tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str):
        r.bad(f"{at}.tool_use_id", f"{at}.tool_use_id: must be a string.")
        return []
    content = block.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, item in enumerate(content):
            item_at = f"{at}.content[{k}]"
            item_type = as_dict(item).get("type")
            if item_type == "text" and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif item_type == "image":
                from_tools.extend(_image(r, item, item_at))
            elif item_type == "document":
                from_tools.extend(_document(r, item, item_at))
            else:
                r.bad(item_at, f"{item_at}: a tool result of type {item_type!r} cannot be sent.")
    elif content is not None:
        r.bad(f"{at}.content", f"{at}.content: must be a string or a list of blocks.")
    tool_content: Any = texts[0] if len(texts) == 1 else ""
    if len(texts) > 1:
        tool_content = [{"type": "text", "text": t} for t in texts]
    return [{"role": "tool", "tool_call_id": tool_use_id, "content": tool_content}]


def _block_texts(content: Any) -> str:
    return "\n".join(text(as_dict(b).get("text")) for b in as_list(content))


# -- tools -------------------------------------------------------------------------------------


def _tools(r: _Reader, body: dict[str, Any], chat: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        r.bad("tools", "tools: must be a list.")
    functions = []
    for i, tool in enumerate(as_list(tools)):
        tool = as_dict(tool)
        tool_type = tool.get("type")
        name, schema = tool.get("name"), tool.get("input_schema")
        if tool_type not in (None, "custom"):
            r.bad(f"tools[{i}]", f"tools[{i}]: {tool_type!r} is a tool Anthropic runs itself.")
            continue
        if not isinstance(name, str) or not name or not isinstance(schema, dict):
            r.bad(f"tools[{i}]", f"tools[{i}]: a tool needs a name and an input_schema object.")
            continue
        function: dict[str, Any] = {"name": chat_tool_name(name)}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = schema
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        functions.append({"type": "function", "function": function})
    choice, parallel = _tool_choice(r, body.get("tool_choice"))
    if functions:  # OpenAI refuses tool_choice and parallel_tool_calls without tools
        chat["tools"] = functions
        if choice is not None:
            chat["tool_choice"] = choice
        if parallel is False:
            chat["parallel_tool_calls"] = False


def _tool_choice(r: _Reader, choice: Any) -> tuple[Any, bool | None]:
    if choice is None:
        return None, None
    choice_type = as_dict(choice).get("type")
    parallel = False if as_dict(choice).get("disable_parallel_tool_use") is True else None
    if choice_type == "auto":
        return "auto", parallel
    if choice_type == "any":
        return "required", parallel
    if choice_type == "none":
        return "none", None
    if choice_type == "tool" and isinstance(choice.get("name"), str):
        function = {"name": chat_tool_name(choice["name"])}
        return {"type": "function", "function": function}, parallel
    r.bad("tool_choice", "tool_choice: must be auto, any, none, or a tool with its name.")
    return None, None
