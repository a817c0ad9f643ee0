"""CPU per request of reading and translating each API's answer, against chat's passthrough.

`python -m bench.wire_formats [--rounds N] [--chunks N]`

A stream of `--chunks` content chunks (plus the usage chunk and [DONE]) is fed through what
the proxy runs for each case, in process, and the CPU time per request is reported:

- chat: the chat assembler on a chat stream (the passthrough's whole per-request reading);
- responses native / messages native: their assemblers on the provider's own stream;
- responses translated / messages translated: the chat assembler plus the translator, as for
  a provider that speaks only chat.

CPU time (`time.process_time`), so other load on the machine changes it little.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import orjson

from gateway.apis import messages, responses
from gateway.proxy.assembler import ResponseAssembler
from gateway.proxy.translated import TranslatedAnswer

HEAD = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chat_stream(chunks: int) -> list[bytes]:
    events = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": "tok "} if i == 0 else {"content": "tok "}
        finish = "stop" if i == chunks - 1 else None
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        events.append(b"data: " + orjson.dumps({**HEAD, "choices": [choice]}) + b"\n\n")
    usage = {"prompt_tokens": 20, "completion_tokens": chunks, "total_tokens": 20 + chunks}
    events.append(b"data: " + orjson.dumps({**HEAD, "choices": [], "usage": usage}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def native_stream(wire: object, request: dict[str, object], chunks: int) -> list[bytes]:
    """The API's own stream for the same answer, as its translator writes it."""
    translator = wire.ChatStreamTranslator(request)  # type: ignore[attr-defined]
    out = [translator.feed(event) for event in chat_stream(chunks)]
    out.append(translator.finish())
    return [event for event in out if event]


def per_request(run: Callable[[], None], rounds: int) -> float:
    run()  # warm
    start = time.process_time()
    for _ in range(rounds):
        run()
    return (time.process_time() - start) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=64)
    args = parser.parse_args()
    chat = chat_stream(args.chunks)
    responses_request = {"model": "m", "input": "hello", "stream": True}
    messages_request = {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
    }
    native = {
        "responses": native_stream(responses, responses_request, args.chunks),
        "messages": native_stream(messages, messages_request, args.chunks),
    }

    def feed(assembler: object, events: list[bytes]) -> None:
        for event in events:
            assembler.feed(event, 0.0)  # type: ignore[attr-defined]
        assembler.flush(0.0)  # type: ignore[attr-defined]
        assembler.response()  # type: ignore[attr-defined]

    cases: dict[str, Callable[[], None]] = {
        "chat": lambda: feed(ResponseAssembler("chat/completions", hide_usage_chunk=True), chat),
        "responses native": lambda: feed(responses.Assembler(), native["responses"]),
        "responses translated": lambda: feed(TranslatedAnswer(responses, responses_request), chat),
        "messages native": lambda: feed(messages.Assembler(), native["messages"]),
        "messages translated": lambda: feed(TranslatedAnswer(messages, messages_request), chat),
    }
    base = None
    print(f"{args.chunks}-chunk streams, {args.rounds} rounds, CPU per request")
    for name, run in cases.items():
        micros = per_request(run, args.rounds)
        base = base or micros
        print(f"  {name:<22} {micros:8.1f} us  ({micros / base:.2f}x chat)")


if __name__ == "__main__":
    main()
