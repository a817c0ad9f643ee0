"""A Responses API request as a chat-completions request, for a provider that speaks only chat.

With `strict=True` (a client's request about to be sent) what chat cannot express is refused
with an `InvalidRequest` naming the field; with `strict=False` (a recorded request read for
review and exports) nothing raises and what cannot be expressed is left out.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest
from gateway.proxy.assembler import _dict, _list, _text

_CHAT_ONLY = "this model's provider speaks only chat completions"
_ROUTE_NATIVE = "route the model to a provider that speaks the Responses API"
# Fields that need state kept by the provider that serves the Responses API.
_STATEFUL = {
    "previous_response_id": "it needs the conversation the provider stored for that response",
    "conversation": "it needs the conversation the provider stored",
    "prompt": "it needs the prompt template stored by the provider",
}
# Request fields with the same name and meaning in chat completions.
_SAME = ("model", "temperature", "top_p", "user", "safety_identifier", "prompt_cache_key")
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")


def to_chat_request(body: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    """The chat.completions request that asks what this Responses request asks."""
    return _Translation(_dict(body), strict).chat()


class _Translation:
    def __init__(self, body: dict[str, Any], strict: bool):
        self.body = body
        self.strict = strict
        self.messages: list[dict[str, Any]] = []

    def refuse(self, message: str, param: str) -> None:
        """Raise for what chat cannot express; when not strict, the caller skips it."""
        if self.strict:
            raise InvalidRequest(message, param=param)

    def chat(self) -> dict[str, Any]:
        body = self.body
        for field, why in _STATEFUL.items():
            if body.get(field) is not None:
                self.refuse(
                    f"`{field}` cannot be used with this model: {why}, and {_CHAT_ONLY}. "
                    f"Send the whole conversation as `input`, or {_ROUTE_NATIVE}.",
                    field,
                )
        if body.get("background") is True:
            self.refuse(
                f"`background` responses cannot be used with this model: {_CHAT_ONLY}. "
                f"Leave `background` out, or {_ROUTE_NATIVE}.",
                "background",
            )
        chat: dict[str, Any] = {k: body[k] for k in _SAME if body.get(k) is not None}
        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            self.messages.append({"role": "system", "content": instructions})
        elif isinstance(instructions, list):  # as a response object echoes them: input items
            self.items(instructions, "instructions")
        self.input(body.get("input"))
        chat["messages"] = self.messages
        tools = self.tools(body.get("tools"))
        if tools:
            # Chat refuses these two without tools; a Responses client may send them anyway.
            chat["tools"] = tools
            choice = self.tool_choice(body.get("tool_choice"))
            if choice is not None:
                chat["tool_choice"] = choice
            if isinstance(body.get("parallel_tool_calls"), bool):
                chat["parallel_tool_calls"] = body["parallel_tool_calls"]
        if body.get("max_output_tokens") is not None:
            chat["max_completion_tokens"] = body["max_output_tokens"]
        text = body.get("text")
        if isinstance(text, dict):
            response_format = self.response_format(text.get("format"))
            if response_format is not None:
                chat["response_format"] = response_format
            if isinstance(text.get("verbosity"), str):
                chat["verbosity"] = text["verbosity"]
        effort = _dict(body.get("reasoning")).get("effort")
        if isinstance(effort, str):
            chat["reasoning_effort"] = effort
        if isinstance(body.get("service_tier"), str):
            chat["service_tier"] = body["service_tier"]
        if body.get("stream") is True:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
        elif body.get("stream") is False:
            chat["stream"] = False
        return chat

    # -- input -------------------------------------------------------------------------------
    def input(self, value: Any) -> None:
        if isinstance(value, str):
            self.messages.append({"role": "user", "content": value})
        elif isinstance(value, list):
            self.items(value, "input")
        elif value is None:
            self.refuse("`input` is required: a string, or a list of input items.", "input")
        else:
            self.refuse("`input` must be a string or a list of input items.", "input")
        if not self.messages:
            self.refuse("`input` has nothing to send: give at least one message.", "input")

    def items(self, items: list[Any], where: str) -> None:
        for i, item in enumerate(items):
            param = f"{where}[{i}]"
            if not isinstance(item, dict):
                self.refuse(f"`{param}` must be an object.", param)
                continue
            kind = item.get("type", "message")
            if kind == "message":
                self.message(item, param)
            elif kind == "function_call":
                self.function_call(item, param)
            elif kind == "function_call_output":
                self.function_call_output(item, param)
            elif kind == "reasoning":
                continue  # the model's own reasoning: chat has no way to send it back
            elif kind == "item_reference":
                self.refuse(
                    f"`{param}` is an item_reference: it needs the items the provider stored, "
                    f"and {_CHAT_ONLY}. Send the item itself, or {_ROUTE_NATIVE}.",
                    param,
                )
            else:
                self.refuse(
                    f"`{param}` is a `{kind}` item, which chat completions cannot express: "
                    f"send messages, function calls and their outputs, or {_ROUTE_NATIVE}.",
                    param,
                )

    def message(self, item: dict[str, Any], param: str) -> None:
        role = item.get("role")
        if role not in _MESSAGE_ROLES:
            self.refuse(
                f"`{param}.role` must be one of {', '.join(_MESSAGE_ROLES)}.", f"{param}.role"
            )
            return
        content = item.get("content")
        if role == "assistant":
            self.assistant(content, param)
            return
        if isinstance(content, list):
            content = self.parts(content, f"{param}.content")
        elif not isinstance(content, str):
            self.refuse(f"`{param}.content` must be a string or a list.", f"{param}.content")
            return
        # Chat's `developer` role is OpenAI's alone; every chat provider knows `system`.
        self.messages.append(
            {"role": "system" if role == "developer" else role, "content": content}
        )

    def assistant(self, content: Any, param: str) -> None:
        texts, refusals = [], []
        if isinstance(content, str):
            texts.append(content)
        for part in _list(content):
            part = _dict(part)
            if part.get("type") == "refusal":
                refusals.append(_text(part.get("refusal")))
            else:
                texts.append(_text(part.get("text")))
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if refusals:
            message["refusal"] = "".join(refusals)
        self.messages.append(message)

    def parts(self, parts: list[Any], param: str) -> str | list[dict[str, Any]]:
        """Input content parts in chat's vocabulary; a lone text part as a plain string."""
        chat: list[dict[str, Any]] = []
        for j, part in enumerate(parts):
            where = f"{param}[{j}]"
            part = _dict(part)
            kind = part.get("type")
            if kind in ("input_text", "output_text", "text"):
                chat.append({"type": "text", "text": _text(part.get("text"))})
            elif kind == "input_image":
                url = part.get("image_url")
                if not isinstance(url, str) or not url:
                    self.refuse(
                        f"`{where}`: an image given by file_id needs the provider's file "
                        f"storage, and {_CHAT_ONLY}; send it as `image_url` (a URL or a "
                        "data: URL).",
                        where,
                    )
                    continue
                image: dict[str, Any] = {"url": url}
                if isinstance(part.get("detail"), str):
                    image["detail"] = part["detail"]
                chat.append({"type": "image_url", "image_url": image})
            elif kind == "input_file":
                file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}
                if "file_data" not in file and "file_id" not in file:
                    self.refuse(
                        f"`{where}`: a file given by file_url cannot be sent to this model, "
                        f"{_CHAT_ONLY}; send its content as `file_data`.",
                        where,
                    )
                    continue
                chat.append({"type": "file", "file": file})
            elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
                chat.append({"type": "input_audio", "input_audio": part["input_audio"]})
            else:
                self.refuse(f"`{where}` has a content type chat cannot express: {kind}.", where)
        if len(chat) == 1 and chat[0]["type"] == "text":
            return str(chat[0]["text"])
        return chat

    def function_call(self, item: dict[str, Any], param: str) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            self.refuse(f"`{param}` must have a `call_id` and a `name`.", param)
            return
        arguments = item.get("arguments")
        call = {
            "id": call_id,
            "type": "function",
            "function": {
                "name": name,
                "arguments": arguments if isinstance(arguments, str) else "",
            },
        }
        last = self.messages[-1] if self.messages else None
        # Calls made in one turn are one assistant message in chat, after the turn's text.
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            self.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})

    def function_call_output(self, item: dict[str, Any], param: str) -> None:
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str):
            self.refuse(f"`{param}` must have a `call_id`.", f"{param}.call_id")
            return
        if isinstance(output, list):
            texts = []
            for j, part in enumerate(output):
                part = _dict(part)
                if part.get("type") in ("input_text", "output_text", "text"):
                    texts.append(_text(part.get("text")))
                else:
                    where = f"{param}.output[{j}]"
                    self.refuse(
                        f"`{where}`: a tool's output can reach this model only as text, "
                        f"{_CHAT_ONLY}.",
                        where,
                    )
            output = "".join(texts)
        elif not isinstance(output, str):
            self.refuse(f"`{param}.output` must be a string or a list.", f"{param}.output")
            output = ""
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})

    # -- tools and formats -------------------------------------------------------------------
    def tools(self, tools: Any) -> list[dict[str, Any]]:
        chat = []
        for j, tool in enumerate(_list(tools)):
            param = f"tools[{j}]"
            tool = _dict(tool)
            kind = tool.get("type")
            if kind != "function":
                self.refuse(
                    f"`{param}` is a `{kind}` tool, which chat completions cannot offer: "
                    f"{_CHAT_ONLY}, which has function tools only. Remove it, or {_ROUTE_NATIVE}.",
                    param,
                )
                continue
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                self.refuse(f"`{param}.name` is required.", f"{param}.name")
                continue
            function: dict[str, Any] = {"name": name}
            for key in ("description", "parameters", "strict"):
                if tool.get(key) is not None:
                    function[key] = tool[key]
            chat.append({"type": "function", "function": function})
        if tools is not None and not isinstance(tools, list):
            self.refuse("`tools` must be a list.", "tools")
        return chat

    def tool_choice(self, choice: Any) -> Any:
        if choice is None or choice in ("auto", "none", "required"):
            return choice
        choice = _dict(choice)
        if choice.get("type") == "function" and isinstance(choice.get("name"), str):
            return {"type": "function", "function": {"name": choice["name"]}}
        if choice.get("type") == "allowed_tools":
            allowed = [_dict(tool) for tool in _list(choice.get("tools"))]
            if all(tool.get("type") == "function" and _text(tool.get("name")) for tool in allowed):
                tools = [{"type": "function", "function": {"name": t["name"]}} for t in allowed]
                mode = choice.get("mode") if choice.get("mode") in ("auto", "required") else "auto"
                return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}
        self.refuse(
            f"`tool_choice` can only name a function tool with this model: {_CHAT_ONLY}.",
            "tool_choice",
        )
        return None

    def response_format(self, fmt: Any) -> dict[str, Any] | None:
        if fmt is None:
            return None
        fmt = _dict(fmt)
        kind = fmt.get("type")
        if kind == "text":
            return None  # chat's default
        if kind == "json_object":
            return {"type": "json_object"}
        if kind == "json_schema":
            if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
                self.refuse(
                    "`text.format` of type json_schema needs a `name` and a `schema`.",
                    "text.format",
                )
                return None
            schema = {"name": fmt["name"], "schema": fmt["schema"]}
            for key in ("description", "strict"):
                if fmt.get(key) is not None:
                    schema[key] = fmt[key]
            return {"type": "json_schema", "json_schema": schema}
        self.refuse("`text.format.type` must be text, json_object or json_schema.", "text.format")
        return None
