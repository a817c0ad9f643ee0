"""Each format's declared record schema, written beside every export, and checked line by line.

A schema is plain data: a dtype name (`"string"`, `"int64"`, `"float64"`, `"bool"`), `"json"` for
a value of any shape (a tool's JSON Schema, content that is text or a list of parts), a one-item
list `[feature]` for a list of them, or a dict `{name: feature}` for an object. Every value may be
null. That is what `datasets` can type: declared, a column that is null in one file and a number
in the next loads as one split set (inferred, it does not: `Couldn't cast array of type double to
null`). The same schema becomes the card's `dataset_info.features` (`load_dataset(folder)`), the
`features.json` file (`Features.from_dict(...)` for `load_dataset("json", data_files=...,
features=...)`), and the type check `flywheel dataset validate` runs on every line.

Never import `datasets` here: it is not a dependency of the gateway, only of its tests.
"""

from __future__ import annotations

from typing import Any

Schema = Any  # str | list[Schema] | dict[str, Schema]

DTYPES = ("string", "int64", "float64", "bool", "json")


def features_dict(schema: Schema) -> Any:
    """The schema as `datasets.Features.to_dict()` writes it."""
    if isinstance(schema, list):
        return {"feature": features_dict(schema[0]), "_type": "List"}
    if isinstance(schema, dict):
        return {name: features_dict(feature) for name, feature in schema.items()}
    if schema == "json":
        return {"_type": "Json"}
    return {"dtype": schema, "_type": "Value"}


def yaml_features(schema: dict[str, Schema]) -> list[dict[str, Any]]:
    """The schema as a dataset card's `dataset_info.features` list."""
    return [{"name": name, **_yaml_type(feature)} for name, feature in schema.items()]


def _yaml_type(feature: Schema) -> dict[str, Any]:
    if isinstance(feature, list):
        inner = feature[0]
        if isinstance(inner, dict):
            return {"list": yaml_features(inner)}
        if isinstance(inner, list):
            return {"list": _yaml_type(inner)}
        return {"list": inner}
    if isinstance(feature, dict):
        return {"struct": yaml_features(feature)}
    return {"dtype": feature}


def fits(value: Any, schema: Schema) -> bool:
    """Whether `type_problems(value, schema)` is empty, told without writing where each value
    is: nearly every record fits, and naming every path cost ~15% of building a record."""
    if value is None or schema == "json":
        return True
    if isinstance(schema, list):
        inner = schema[0]
        return isinstance(value, list) and all(fits(item, inner) for item in value)
    if isinstance(schema, dict):
        # The value's own keys, not every field of the schema: an absent field fits, and a
        # message holds 2 of the schema's 7 (issue 21).
        return (
            isinstance(value, dict)
            and value.keys() <= schema.keys()
            and all(fits(item, schema[name]) for name, item in value.items())
        )
    return _fits(value, schema)


def type_problems(value: Any, schema: Schema, where: str = "") -> list[str]:
    """Where `value` does not fit `schema`; each problem starts with `schema_type:`."""
    if value is None or schema == "json":
        return []
    label = where or "the record"
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"schema_type: {label} must be a list"]
        problems = []
        for i, item in enumerate(value):
            problems += type_problems(item, schema[0], f"{where}[{i}]")
        return problems
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"schema_type: {label} must be an object"]
        unknown = sorted(set(value) - set(schema))
        problems = [f"schema_key: {label} has fields not in the schema: {unknown}"] * bool(unknown)
        for name, feature in schema.items():
            problems += type_problems(value.get(name), feature, f"{where}.{name}".lstrip("."))
        return problems
    if not _fits(value, schema):
        return [f"schema_type: {label} must be {schema} or null, not {type(value).__name__}"]
    return []


def _fits(value: Any, dtype: str) -> bool:
    if dtype == "string":
        return isinstance(value, str)
    if dtype == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if dtype == "int64":
        return isinstance(value, int)
    return isinstance(value, int | float)  # float64: JSON writes 1.0 as 1 in some tools


# The chat message every chat-shaped format shares. `content` is JSON: a string, or a list of
# text and image parts, which one typed column cannot hold both of.
TOOL_CALL = {
    "id": "string",
    "type": "string",
    "function": {"name": "string", "arguments": "string"},
}
MESSAGE = {
    "role": "string",
    "content": "json",
    "name": "string",
    "tool_calls": [TOOL_CALL],
    "tool_call_id": "string",
}
TEXT_MESSAGE = {"role": "string", "content": "string"}
