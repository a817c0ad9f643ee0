"""Token counts are taken once per distinct text (gateway/tokens.py): the same count, by one
encoding, from a bounded cache keyed by the text's hash."""

from __future__ import annotations

import pytest

from gateway import tokens


def test_a_long_text_is_counted_once_and_the_count_is_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tokens._CountCache(2)
    monkeypatch.setattr(tokens, "_counts", lambda: cache)
    encoding = tokens.encoding_for(None)
    calls = []
    real = encoding.encode

    def counting(text: str, **kwargs: object) -> list[int]:
        calls.append(text)
        return real(text, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(encoding, "encode", counting)
    prompt = "You are a careful clinical assistant. " * 20
    exact = len(real(prompt, disallowed_special=()))
    assert tokens.count_text(prompt) == tokens.count_text(prompt) == exact
    assert calls == [prompt]  # the second count came from the cache
    short = "Hi there"
    tokens.count_text(short)
    tokens.count_text(short)
    assert calls.count(short) == 2  # short texts are counted each time

    # Bounded: two texts kept, the least recently used goes first.
    others = ["Another long text. " * 20, "A third long text. " * 20]
    for text in others:
        tokens.count_text(text)
    tokens.count_text(prompt)
    assert calls.count(prompt) == 2
    assert len(cache._counts) == 2


def test_the_same_text_is_counted_apart_for_each_encoding() -> None:
    text = "Ciao! 你好, Kari Nordmann. " * 20
    gpt4 = tokens.count_text(text, "gpt-4")
    gpt4o = tokens.count_text(text, "gpt-4o")
    assert gpt4 == len(tokens.encoding_for("gpt-4").encode(text, disallowed_special=()))
    assert gpt4o == len(tokens.encoding_for("gpt-4o").encode(text, disallowed_special=()))
    assert gpt4 != gpt4o
