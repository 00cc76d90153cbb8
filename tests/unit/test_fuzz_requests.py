"""Property tests (hypothesis) for what every request body goes through before a route runs:
the JSON decoder (Go's rules and texts), the GBNF checker and the JSON-schema → grammar
conversion. Whatever a client sends, the answer is a 400 (`BadRequest`), never another
exception (a 500) and never a grammar that crashes a runner. Regressions found by fuzzing are
pinned with `@example`; `FUZZ_EXAMPLES=5000` runs each property that many times."""

from __future__ import annotations

import contextlib
import json
import os
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pollama.errors import BadRequest
from pollama.inference.grammar import (
    MAX_GRAMMAR_DEPTH,
    MAX_SCHEMA_REPETITIONS,
    check_grammar,
    format_grammar,
)
from pollama.inference.requests import ChatRequest, GenerateRequest
from pollama.server.native.types import CreateRequest, decode_json, parse_body

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))  # FUZZ_EXAMPLES=5000 for a deeper run
FAST = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)


def _bodies_near(model_fields: list[str]) -> st.SearchStrategy[bytes]:
    """JSON objects using a request's own field names with values of any JSON type."""
    return st.dictionaries(st.sampled_from(model_fields), json_values, max_size=6).map(
        lambda d: json.dumps(d).encode())


@FAST
@given(st.binary(max_size=300) | _bodies_near(list(GenerateRequest.model_fields)))
@example(b"[" * 5000 + b"]" * 5000)  # was RecursionError: a 500
@example(b'{"model": "m", "x": ' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}")
@example(b'{"keep_alive": NaN}')  # Go has no NaN literal; Python's decoder accepted it
@example(b'{"options": {"temperature": -Infinity}}')
@example(b'{"top_logprobs": 1e400}')
@example(b'{"context": [' + b"9" * 5000 + b"]}")  # was ValueError (int digit limit): a 500
def test_any_body_is_parsed_or_refused_with_a_400(raw: bytes) -> None:
    for model in (GenerateRequest, ChatRequest, CreateRequest):
        with contextlib.suppress(BadRequest):
            parse_body(raw, model)


@pytest.mark.parametrize(("raw", "text"), [
    (b"[" * 5000 + b"]" * 5000, "invalid character '[' exceeded max depth"),
    (b'{"a": ' + b'{"b":' * 3000 + b"1" + b"}" * 3001, "invalid character '{' exceeded max depth"),
    (b'{"a": NaN}', "invalid character 'N' looking for beginning of value"),
    (b'{"a": Infinity}', "invalid character 'I' looking for beginning of value"),
    (b'{"a": -Infinity}', "invalid character 'I' in numeric literal"),
    (b'{"a": 1e400}', "json: cannot unmarshal number 1e400 into Go value of type float64"),
    (b'{"a": ' + b"9" * 5000 + b"}", "json: cannot unmarshal number into Go value of type "
     "float64"),
])
def test_json_go_refuses_is_refused_with_gos_text(raw: bytes, text: str) -> None:
    with pytest.raises(BadRequest) as err:
        decode_json(raw)
    assert err.value.message == text


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert decode_json(b'{"a": "' + b"[" * 5000 + b'"}') == {"a": "[" * 5000}


# -- GBNF ------------------------------------------------------------------------------------

gbnf_text = st.text(alphabet=string.ascii_letters[:6] + ' "[]()|*+?{}.,:=\\\n#^-0123456789<>',
                    max_size=80).map(lambda body: "root ::= " + body)


@FAST
@given(gbnf_text | st.text(max_size=120))
@example("root ::= " + "(" * 5000 + '"a"' + ")" * 5000)  # was RecursionError: a 500
@example("root ::= (" * 3)
def test_any_grammar_is_accepted_or_refused_with_a_400(text: str) -> None:
    try:
        check_grammar(text)
    except BadRequest as err:
        assert err.message.startswith("invalid grammar: ")


def test_nesting_deeper_than_the_runner_can_parse_is_refused() -> None:
    deep = MAX_GRAMMAR_DEPTH + 1
    check_grammar("root ::= " + "(" * (deep - 1) + '"a"' + ")" * (deep - 1))
    with pytest.raises(BadRequest, match=f"groups nested more than {MAX_GRAMMAR_DEPTH} deep"):
        check_grammar("root ::= " + "(" * deep + '"a"' + ")" * deep)


def test_more_rules_than_the_runner_can_chain_are_refused() -> None:
    chain = "root ::= r0\n" + "".join(f"r{i} ::= r{i + 1}\n" for i in range(30000)) + \
        'r30000 ::= "a"\n'
    with pytest.raises(BadRequest, match="more than 20000 rules"):
        check_grammar(chain)


# -- JSON schema → grammar (`format`, forced tool calls) ----------------------------------------

_KEYWORDS = st.sampled_from(["type", "properties", "items", "required", "enum", "const",
                             "minLength", "maxLength", "minItems", "maxItems", "pattern",
                             "anyOf", "oneOf", "allOf", "$ref", "$defs", "additionalProperties",
                             "minimum", "maximum", "format", "prefixItems"])
schemas = st.recursive(
    st.dictionaries(_KEYWORDS, st.none() | st.booleans() | st.integers(-5, 2_000_000)
                    | st.sampled_from(["string", "object", "array", "integer", "number",
                                       "boolean", "null", "^a{3,9}$", "#", "#/$defs/a"])
                    | st.lists(st.sampled_from(["a", "b"]), max_size=2), max_size=4),
    lambda inner: st.dictionaries(_KEYWORDS, inner | st.lists(inner, max_size=3)
                                  | st.dictionaries(st.sampled_from(["a", "b"]), inner,
                                                    max_size=2), max_size=4),
    max_leaves=12)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(schemas)
@example({"type": "string", "maxLength": 30000})  # was a runner SIGSEGV (30000 nested groups)
@example({"type": "string", "minLength": 10**9})  # was 5 GB of grammar text in the server
@example({"type": "string", "pattern": "^((a{1000}){1000}){1000}$"})
@example({"properties": []})
def test_any_schema_is_a_grammar_the_runner_can_parse_or_a_400(schema: dict) -> None:
    try:
        grammar = format_grammar(schema)
    except BadRequest as err:
        assert err.message.startswith("invalid format: ")
        return
    assert grammar is not None
    check_grammar(grammar)  # within the runner's depth and rule bounds


def test_repetitions_past_the_budget_are_refused_with_the_reason() -> None:
    with pytest.raises(BadRequest, match=f"add up to more than {MAX_SCHEMA_REPETITIONS}"):
        format_grammar({"type": "array", "items": {"type": "string", "minLength": 60000},
                        "minItems": 50000})
    assert format_grammar({"type": "string", "maxLength": 200}) is not None


@pytest.mark.parametrize("parameters", [
    {"type": "object", "properties": []},  # was AttributeError in the converter: a 500
    {"type": "object", "properties": {"a": {"type": "string", "maxLength": 50000}}},
])
def test_forced_tool_parameters_the_converter_cannot_take_are_a_400(parameters: dict) -> None:
    from pollama.inference.tool_choice import resolve_tool_choice

    tools = [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
    choice = resolve_tool_choice("required", None, tools)
    with pytest.raises(BadRequest, match="invalid tool parameters: "):
        choice.grammar(tools, "<tool_call>")
