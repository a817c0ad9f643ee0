"""`fits` is the quick yes of `type_problems`: it must say yes exactly when no problem is found,
on every format's schema, for records that fit and records that do not."""

from __future__ import annotations

from typing import Any

import pytest

from exporters.formats import FORMATS, get_format
from exporters.schema import fits, type_problems

MESSAGE = {"role": "user", "content": "Hi"}
VALUES: list[Any] = [
    None,
    "text",
    1,
    1.5,
    True,
    [],
    {},
    [MESSAGE],
    {"messages": [MESSAGE]},
    {"messages": [MESSAGE], "extra": 1},
    {"messages": [{"role": 1, "content": "x"}]},
    {"messages": [{"role": "user", "content": ["part"]}]},
    {"messages": "not a list"},
    {"messages": [MESSAGE, None, "odd"]},
    {"prompt": [MESSAGE], "chosen": [MESSAGE], "rejected": [MESSAGE], "label": True},
    {"prompt": "x", "completion": "y", "label": "yes"},
    {"metadata": {"rating": 5, "variant": None}},
    {"metadata": {"rating": True}},
    {"metadata": {"rating": "5"}},
    {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": 1}]}]},
]


@pytest.mark.parametrize("name", list(FORMATS))
def test_fits_says_yes_exactly_when_type_problems_finds_none(name: str) -> None:
    schema = get_format(name).schema
    if schema is None:
        pytest.skip(f"{name} declares no schema")
    for value in VALUES:
        assert fits(value, schema) == (type_problems(value, schema) == []), (name, value)
