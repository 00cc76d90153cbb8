"""A hand-written JSON-schema checker (types, properties, required, enum, items, bounds) for
answers constrained by a schema: structured output and tool-call arguments."""

from __future__ import annotations

from typing import Any


def check_schema(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int,
             "number": (int, float)}
    if kind:
        assert isinstance(value, types[kind]), f"{path}: {value!r} is not {kind}"
        if kind in ("integer", "number"):
            assert not isinstance(value, bool), f"{path}: a boolean is not a {kind}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if kind == "object":
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key}"
        for key, item in value.items():
            assert key in schema.get("properties", {}), f"{path}: unexpected {key}"
            check_schema(item, schema["properties"][key], f"{path}.{key}")
    if kind == "array":
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9), path
        for i, item in enumerate(value):
            check_schema(item, schema["items"], f"{path}[{i}]")
    if kind == "string":
        assert len(value) <= schema.get("maxLength", 10**9), path
