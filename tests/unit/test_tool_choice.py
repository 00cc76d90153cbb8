"""tool_choice → ToolChoice and its grammar (the integration test shows the sampler obeys it)."""

from __future__ import annotations

import pytest
from llama_cpp import LlamaGrammar

from pollama.errors import BadRequest
from pollama.inference.grammar import check_grammar
from pollama.inference.tool_choice import resolve_tool_choice

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "ping"}}]


@pytest.mark.parametrize("choice, mode, names", [
    (None, "auto", ("get_weather", "ping")),
    ("auto", "auto", ("get_weather", "ping")),
    ("none", "none", ()),
    ("required", "required", ("get_weather", "ping")),
    ({"type": "function", "function": {"name": "ping"}}, "required", ("ping",)),
    ({"type": "function", "name": "ping"}, "required", ("ping",)),  # the Responses API form
])
def test_choices(choice, mode, names):
    resolved = resolve_tool_choice(choice, None, TOOLS)
    assert (resolved.mode, resolved.names, resolved.parallel) == (mode, names, True)


@pytest.mark.parametrize("choice, tools", [
    ("any", TOOLS), (3, TOOLS), ("required", None),
    ({"type": "function", "function": {"name": "other"}}, TOOLS),
    ({"type": "function", "function": {}}, TOOLS),
])
def test_bad_choices(choice, tools):
    with pytest.raises(BadRequest):
        resolve_tool_choice(choice, None, tools)


@pytest.mark.parametrize("tag", ["<tool_call>", "[TOOL_CALLS]", "{"])
@pytest.mark.parametrize("parallel", [None, False])
def test_forced_grammar_parses_in_llama_cpp(tag, parallel):
    grammar = resolve_tool_choice("required", parallel, TOOLS).grammar(TOOLS, tag)
    assert grammar is not None
    check_grammar(grammar)
    LlamaGrammar.from_string(grammar, verbose=False)  # raises if llama.cpp cannot parse it
    assert '"\\"get_weather\\""' in grammar and '"\\"ping\\""' in grammar
    assert ("tool-call-block)*" in grammar) == (parallel is None)
    if tag == "<tool_call>":
        assert '"</tool_call>"?' in grammar
    if tag == "{":
        assert '"{"' not in grammar.splitlines()[1]  # bare JSON: no tag before the call


def test_named_grammar_allows_that_tool_only():
    grammar = resolve_tool_choice({"type": "function", "function": {"name": "ping"}}, None,
                                  TOOLS).grammar(TOOLS, "<tool_call>")
    assert grammar is not None and "get_weather" not in grammar and '"\\"ping\\""' in grammar


def test_free_choices_have_no_grammar():
    for choice in ("auto", "none"):
        assert resolve_tool_choice(choice, False, TOOLS).grammar(TOOLS, "<tool_call>") is None
    assert resolve_tool_choice("auto", False, TOOLS).max_calls == 1
    assert resolve_tool_choice("auto", None, TOOLS).max_calls is None
