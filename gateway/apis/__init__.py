"""The wire formats besides chat completions that clients speak: OpenAI's Responses API and
Anthropic's Messages API. Each module is pure data work, no I/O:

- `to_chat_request(body, strict=True)`: the API's request as a chat-completions request, for a
  provider that speaks only chat (and, with `strict=False`, for reading a recorded request).
- `from_chat_response(chat, request)`: a whole chat.completion as the API's response object.
- `ChatStreamTranslator(request)`: chat-completions SSE in, the API's SSE out.
- `to_chat_response(response)`: the API's response object as a chat.completion, the one shape
  feedback, review and exports read.
- `Assembler`: reads the API's own answer (whole, or SSE as relayed) for capture, when the
  provider speaks the API natively.
- `error_body(error)`: an ApiError in the API's error shape.
"""
