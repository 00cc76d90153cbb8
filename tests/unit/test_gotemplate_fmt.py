"""Go's fmt and encoding/json as the interpreter prints values (pollama.template.go.fmt,
.jsonenc): go_json, go_sprint, go_sprintf.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pollama.template.go import (
    NO_VALUE,
    RawJSON,
    go_json,
    go_sprint,
    go_sprintf,
    go_sprintln,
)

# ---------------------------------------------------------------------------------------------
# go_json, go_sprint, go_sprintf
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    __json_fields__ = ("X:x", "Y:y,omitempty", "Label:-", "Tags:tags,omitempty", "Raw")

    X: int = 0
    Y: int = 0
    Label: str = ""
    Tags: list[str] = dataclasses.field(default_factory=list)
    Raw: Any = None


class Ordered:
    def go_json(self) -> RawJSON:
        return RawJSON('{ "z": 1,\n "a": "<b>" }')


class Replaced:
    def go_json(self) -> Any:
        return ["x", 1]


JSON_CASES = [
    pytest.param({"b": 1, "a": [True, None, 1.5]}, '{"a":[true,null,1.5],"b":1}', id="map_sorted"),
    pytest.param(Point(1), '{"x":1,"Raw":null}', id="struct_omitempty_and_skip"),
    pytest.param(
        Point(1, 2, "l", ["t"], {"k": 1}),
        '{"x":1,"y":2,"tags":["t"],"Raw":{"k":1}}',
        id="struct_full",
    ),
    pytest.param(Ordered(), '{"z":1,"a":"\\u003cb\\u003e"}', id="raw_json_compacted"),
    pytest.param(Replaced(), '["x",1]', id="go_json_hook"),
    pytest.param(
        '<&>\u2028\n\t"\\é', '"\\u003c\\u0026\\u003e\\u2028\\n\\t\\"\\\\é"', id="string_escapes"
    ),
    pytest.param(
        [1e20, 1e21, 1e-6, 1e-7, -0.0, 100.0],
        "[100000000000000000000,1e+21,0.000001,1e-7,-0,100]",
        id="floats",
    ),
    pytest.param(float("nan"), "", id="nan_is_an_error"),
    pytest.param({1: "a", 10: "b", 2: "c"}, '{"1":"a","10":"b","2":"c"}', id="int_keys"),
    pytest.param(None, "null", id="nil"),
    pytest.param(NO_VALUE, "null", id="no_value"),
]


@pytest.mark.parametrize(("value", "expected"), JSON_CASES)
def test_go_json(value: Any, expected: str) -> None:
    assert go_json(value) == expected


SPRINT_CASES = [
    pytest.param(go_sprint(1, 2, "a", "b", 3.0, [1, "x"], True), "1 2ab3 [1 x] true", id="sprint"),
    pytest.param(go_sprintln("a", 1), "a 1\n", id="sprintln"),
    pytest.param(
        go_sprintf("%08.3f|%+.1e|% d|%x", -3.14159, 12345.0, 5, "é"),
        "-003.142|+1.2e+04| 5|c3a9",
        id="sprintf_numbers",
    ),
    pytest.param(
        go_sprintf("%v %v %v", 1e-5, 1e20, 123456.7), "1e-05 1e+20 123456.7", id="float_v"
    ),
    pytest.param(go_sprintf("%.2g|%.10g|%g", 123.0, 1.0, 0.0), "1.2e+02|1|0", id="float_g"),
    pytest.param(go_sprintf("%q", "a\x00\u200b\U0001f600"), '"a\\x00\\u200b😀"', id="quote"),
    pytest.param(go_sprintf("%5.1q|%-4d|", "abc", 7), '  "a"|7   |', id="pad"),
    pytest.param(go_sprintf("%d %s", 1), "1 %!s(MISSING)", id="missing"),
    pytest.param(go_sprintf("%!"), "%!!(MISSING)", id="bang_verb"),
    pytest.param(go_sprintf("%"), "%!(NOVERB)", id="no_verb"),
]


@pytest.mark.parametrize(("actual", "expected"), SPRINT_CASES)
def test_fmt(actual: str, expected: str) -> None:
    assert actual == expected
