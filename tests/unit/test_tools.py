"""ToolCallParser: tool calls out of streamed model text (GF-20), split at every position."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pollama.inference.tools import ToolCallParser, tool_call_id
from pollama.template.jinja import jinja_tool_tag

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_weather_forecast", "parameters": {}}},
    {"type": "function", "function": {"name": "add", "parameters": {}}},
]


def run(chunks: list[str], tag: str) -> tuple[list[tuple[int, str, dict[str, Any]]], str]:
    """Feed the chunks; return ((index, name, arguments) of each call, all content)."""
    parser = ToolCallParser(tag, TOOLS)
    calls: list[dict[str, Any]] = []
    content = []
    for chunk in chunks:
        found, text = parser.add(chunk)
        calls.extend(found)
        content.append(text)
    content.append(parser.flush())
    for call in calls:
        assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
        assert list(call["function"]) == ["index", "name", "arguments"]
    return ([(c["function"]["index"], c["function"]["name"], c["function"]["arguments"])
             for c in calls], "".join(content))


PARIS = (0, "get_weather", {"city": "Paris"})

CASES = [
    # (tag, output, calls, content)
    pytest.param("<tool_call>",
                 '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                 "</tool_call>", [PARIS], "", id="chatml"),
    pytest.param("<tool_call>",
                 'Let me check. <tool_call>{"name": "get_weather", "arguments": '
                 '{"city": "Paris"}}</tool_call>', [PARIS], "Let me check. ",
                 id="text-before-tag"),
    pytest.param("<tool_call>",
                 '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
                 '</tool_call>\n<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}'
                 "</tool_call>",
                 [PARIS, (1, "add", {"a": 1, "b": 2})], "", id="two-calls"),
    pytest.param("<tool_call>",
                 '<tool_call>{"name": "get_weather", "parameters": {"city": "Paris"}}',
                 [PARIS], "", id="parameters"),
    pytest.param("<tool_call>",
                 '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
                 [PARIS], "", id="string-arguments"),
    pytest.param("<tool_call>", '<tool_call>{"name": "get_weather_forecast"}',
                 [(0, "get_weather_forecast", {})], "", id="longest-name-no-arguments"),
    pytest.param("<tool_call>",
                 '<tool_call>{"name": "functions.get_weather", "arguments": {"city": "Paris"}}',
                 [PARIS], "", id="prefixed-name"),
    pytest.param("<tool_call>", '<tool_call>{"get_weather": {"city": "Paris"}}',
                 [PARIS], "", id="name-as-key"),
    pytest.param("<tool_call>",
                 '<tool_call>{"type": "function", "function": {"name": "get_weather", '
                 '"arguments": {"city": "Paris"}}}', [PARIS], "", id="nested"),
    pytest.param("<tool_call>", '<tool_call>{"name": "get_weather", "arguments": {"city": }',
                 [], '<tool_call>{"name": "get_weather", "arguments": {"city": }',
                 id="malformed-json-is-text"),
    pytest.param("<tool_call>", "<tool_call> I cannot call tools.",
                 [], "<tool_call> I cannot call tools.", id="tag-without-json-is-text"),
    pytest.param("<tool_call>", '<tool_call>{"name": "unknown", "arguments": {}}',
                 [], '<tool_call>{"name": "unknown", "arguments": {}}', id="unknown-tool"),
    pytest.param("<tool_call>", "The sky is blue {because} of <b>scattering</b>.",
                 [], "The sky is blue {because} of <b>scattering</b>.", id="no-tag"),
    pytest.param("[TOOL_CALLS]",
                 '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                 '{"name": "add", "arguments": {"a": 1.5}}]',
                 [PARIS, (1, "add", {"a": 1.5})], "", id="mistral-array"),
    pytest.param("{", '{"name": "get_weather", "parameters": {"city": "Paris"}}',
                 [PARIS], "", id="llama3-bare-json"),
    pytest.param("{", '  {"name": "get_weather", "parameters": {"city": "Paris"}}',
                 [PARIS], "  ", id="bare-json-after-space"),
    pytest.param("{", 'Sure: {"name": "get_weather", "parameters": {"city": "Paris"}}',
                 [], 'Sure: {"name": "get_weather", "parameters": {"city": "Paris"}}',
                 id="bare-json-only-first"),
    pytest.param("{", '{"answer": 42} and more', [], '{"answer": 42} and more',
                 id="json-answer-is-content"),
    pytest.param("{", '{"answer": 4', [], '{"answer": 4', id="unfinished-json-is-content"),
    pytest.param("[", '[{"name": "add", "arguments": {"a": 1}}]', [(0, "add", {"a": 1})], "",
                 id="bracket-tag"),
    pytest.param("{", '{"name": "get_weather", "arguments": {"city": "Pa}ris\\""}}',
                 [(0, "get_weather", {"city": 'Pa}ris"'})], "", id="braces-in-strings"),
]


@pytest.mark.parametrize(("tag", "output", "calls", "content"), CASES)
def test_whole(tag: str, output: str, calls: list[Any], content: str) -> None:
    assert run([output], tag) == (calls, content)


@pytest.mark.parametrize(("tag", "output", "calls", "content"), CASES)
def test_split_at_every_position(tag: str, output: str, calls: list[Any], content: str) -> None:
    for i in range(len(output) + 1):
        assert run([output[:i], output[i:]], tag) == (calls, content), i
    assert run(list(output), tag) == (calls, content)


def test_text_before_the_tag_streams_and_calls_come_when_complete() -> None:
    parser = ToolCallParser("<tool_call>", TOOLS)
    assert parser.add("Checking") == ([], "Checking")
    assert parser.add(" now <tool") == ([], " now ")  # a partial tag is held back
    assert parser.add('_call>{"name": "get_weather", ') == ([], "")
    calls, text = parser.add('"arguments": {"city": "Paris"}}')
    assert text == "" and calls[0]["function"] == {"index": 0, "name": "get_weather",
                                                   "arguments": {"city": "Paris"}}
    calls, text = parser.add('</tool_call><tool_call>{"name": "add", "arguments": {}}')
    assert calls[0]["function"]["index"] == 1 and text == ""
    assert parser.flush() == ""


def test_partial_tag_that_is_not_a_tag_is_released() -> None:
    parser = ToolCallParser("<tool_call>", TOOLS)
    assert parser.add("a <tool") == ([], "a ")
    assert parser.add("box>") == ([], "<toolbox>")


def test_arguments_keep_their_order_and_types() -> None:
    calls, _ = run(['<tool_call>{"name": "add", "arguments": {"z": 1, "a": [true, null], '
                    '"m": {"k": 2.5}}}'], "<tool_call>")
    assert list(calls[0][2]) == ["z", "a", "m"]
    assert calls[0][2] == {"z": 1, "a": [True, None], "m": {"k": 2.5}}


def test_no_tools_never_crash() -> None:
    parser = ToolCallParser("<tool_call>", [])
    assert parser.add('<tool_call>{"name": "x"}') == ([], "")
    assert parser.flush() == '<tool_call>{"name": "x"}'
    parser = ToolCallParser("", None)
    assert parser.tag == "{"
    assert parser.add("{{{{") == ([], "")
    assert parser.flush() == "{{{{"


def test_ids() -> None:
    ids = {tool_call_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"call_[a-z0-9]{8}", i) for i in ids)


@pytest.mark.parametrize(("template", "tag"), [
    ("{% for tool in tools %}...<tool_call>\n{{ tool_call | tojson }}</tool_call>", "<tool_call>"),
    ("[AVAILABLE_TOOLS]{{ tools|tojson }}[/AVAILABLE_TOOLS]...[TOOL_CALLS]", "[TOOL_CALLS]"),
    ('{{- "<|python_tag|>" + tool_call.name }}{"name": ..., "parameters": ...}', "{"),
    ("{{ messages }}", "{"),
    (None, "{"),
])
def test_jinja_tag(template: str | None, tag: str) -> None:
    assert jinja_tool_tag(template) == tag
