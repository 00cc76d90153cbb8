"""Ollama's template functions (pollama.template.go.funcs): dates, toTypeScriptType.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from pollama.template.go import (
    funcs,
)
from tests.unit.gotemplate_data import (
    render,
)

# ---------------------------------------------------------------------------------------------
# Ollama's functions
# ---------------------------------------------------------------------------------------------


def test_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(funcs, "_today", lambda: datetime.date(2024, 3, 1))
    assert render('{{ currentDate }} {{ yesterdayDate }} {{ currentDate "%Y" }}') == (
        "2024-03-01 2024-02-29 2024-03-01"
    )


@dataclasses.dataclass
class ToolProperty:
    AnyOf: list[Any] = dataclasses.field(default_factory=list)
    Type: list[str] = dataclasses.field(default_factory=list)
    Description: str = ""


TS_CASES = [
    pytest.param(ToolProperty(Type=["string"]), "string", id="string"),
    pytest.param(ToolProperty(Type=["integer"]), "number", id="integer"),
    pytest.param(ToolProperty(Type=["array"]), "any[]", id="array"),
    pytest.param(ToolProperty(Type=["object"]), "Record<string, any>", id="object"),
    pytest.param(ToolProperty(Type=["string", "null"]), "string | null", id="union"),
    pytest.param(
        ToolProperty(AnyOf=[ToolProperty(Type=["boolean"]), ToolProperty(Type=["number"])]),
        "boolean | number",
        id="any_of",
    ),
    pytest.param(ToolProperty(), "any", id="no_type"),
    pytest.param(ToolProperty(Type=["weird"]), "any", id="unknown_type"),
    pytest.param({"type": "string"}, "any", id="map_is_not_a_property"),
]


@pytest.mark.parametrize(("prop", "expected"), TS_CASES)
def test_to_typescript_type(prop: Any, expected: str) -> None:
    assert render("{{ toTypeScriptType .P }}", {"P": prop}) == expected


def test_to_typescript_type_in_range() -> None:
    props = {"b": ToolProperty(Type=["string"]), "a": ToolProperty(Type=["number"])}
    text = "{{ range $name, $p := .Props }}{{ $name }}: {{ toTypeScriptType $p }}; {{ end }}"
    assert render(text, {"Props": props}) == "a: number; b: string; "
