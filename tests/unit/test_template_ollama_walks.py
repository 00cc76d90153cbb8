"""Ollama's walks of a Go template's tree (pollama.template.ollama): Vars and references,
the TPL-08 cut, thinking tags (TPL-14), tool-call tags (GF-20), deleteNode.
"""

from __future__ import annotations

from typing import Any

import pytest

from pollama.template.go import (
    FieldNode,
    Template,
    TemplateError,
    TextNode,
    iter_nodes,
    response_action,
)
from pollama.template.ollama import (
    cut_at_response,
    delete_nodes,
    identifiers,
    infer_thinking_tags,
    parse_tool_call_tag,
    references,
    template_vars,
)
from tests.unit.gotemplate_data import (
    CHATML_TOOLS,
    LLAMA3_TOOLS,
    MISTRAL_TOOLS,
    THINKING,
)

# ---------------------------------------------------------------------------------------------
# Legacy (.System/.Prompt/.Response) templates, the TPL-08 cut, FIM templates
# ---------------------------------------------------------------------------------------------

LEGACY = (
    "{{ if .System }}<|system|>\n{{ .System }}</s>\n{{ end }}"
    "{{ if .Prompt }}<|user|>\n{{ .Prompt }}</s>\n{{ end }}"
    "<|assistant|>\n{{ .Response }}</s>\n"
)
INST = "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }} [/INST] {{ .Response }}"

LEGACY_CASES = [
    pytest.param(
        LEGACY,
        False,
        {"System": "Be brief.", "Prompt": "Hi", "Response": "Hello!"},
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n",
        id="legacy_full_turn",
    ),
    pytest.param(
        LEGACY,
        True,
        {"System": "", "Prompt": "Next?", "Response": ""},
        "<|user|>\nNext?</s>\n<|assistant|>\n",
        id="legacy_cut_last_turn",
    ),
    pytest.param(
        LEGACY,
        True,
        {"System": "S", "Prompt": "Next?", "Response": "Partial"},
        "<|system|>\nS</s>\n<|user|>\nNext?</s>\n<|assistant|>\nPartial",
        id="legacy_cut_prefill",
    ),
    pytest.param(
        INST,
        True,
        {"System": "", "Prompt": "Q", "Response": ""},
        "[INST] Q [/INST] ",
        id="inst_cut",
    ),
    pytest.param(
        "{{ if .Prompt }}P:{{ .Prompt }}{{ .Response }}tail{{ end }}after",
        True,
        {"Prompt": "p", "Response": "r"},
        "P:pr",
        id="cut_inside_if",
    ),
    pytest.param(
        '{{ .Prompt }}{{ .Response | printf "%s" }}after',
        True,
        {"Prompt": "p", "Response": "r"},
        "p",
        id="cut_whole_pipeline",
    ),
    pytest.param(
        '{{ printf "%s-%s" .Response .Prompt }}after',
        True,
        {"Prompt": "p", "Response": "r"},
        "r-%!s(MISSING)",
        id="cut_keeps_earlier_args",
    ),
    pytest.param(
        "{{ .Prompt }} no response",
        True,
        {"Prompt": "p", "Response": "r"},
        "p no response",
        id="cut_no_response",
    ),
    pytest.param(
        "{{ $.Response }}|{{ .Response }}|end",
        True,
        {"Prompt": "p", "Response": "r"},
        "r|r",
        id="cut_dollar_response_not_a_field",
    ),
    pytest.param(
        "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>",
        False,
        {"Prompt": "def f(x):", "Suffix": "    return y", "Response": ""},
        "<PRE> def f(x): <SUF>    return y <MID>",
        id="fim_codellama",
    ),
    pytest.param(
        "[SUFFIX]{{ .Suffix }}[PREFIX] {{ .Prompt }}",
        False,
        {"Prompt": "a = ", "Suffix": "\nprint(a)", "Response": ""},
        "[SUFFIX]\nprint(a)[PREFIX] a = ",
        id="fim_mistral",
    ),
]


@pytest.mark.parametrize(("text", "cut", "data", "expected"), LEGACY_CASES)
def test_legacy_and_fim_templates(
    text: str, cut: bool, data: dict[str, Any], expected: str
) -> None:
    tmpl = Template.parse(text)
    if cut:
        tmpl = cut_at_response(tmpl)
    assert tmpl.execute(data) == expected


def test_cut_at_response_uses_builtins_only() -> None:
    # Ollama executes the cut tree in a fresh template: no custom functions, no defines.
    tmpl = Template.parse("{{ json .Prompt }} {{ .Response }} tail")
    assert tmpl.execute({"Prompt": "p", "Response": "r"}) == '"p" r tail'
    with pytest.raises(TemplateError, match='"json" is not a defined function'):
        cut_at_response(tmpl).execute({"Prompt": "p", "Response": "r"})


def test_cut_at_response_else_after_response_is_an_error() -> None:
    # Ollama's deleteNode panics on an else branch after the .Response node.
    tmpl = Template.parse("{{ if .A }}{{ .Response }}{{ else }}e{{ end }}")
    with pytest.raises(TemplateError, match="interface conversion"):
        cut_at_response(tmpl)


def test_cut_does_not_modify_original() -> None:
    tmpl = Template.parse("{{ .Prompt }}{{ .Response }}</s>")
    cut_at_response(tmpl)
    assert tmpl.execute({"Prompt": "p", "Response": "r"}) == "pr</s>"


def test_fim_template_references_suffix() -> None:
    tmpl = Template.parse("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>")
    assert references(tmpl, "Suffix")
    assert references(tmpl, ".suffix")
    assert not references(tmpl, "Messages")


# ---------------------------------------------------------------------------------------------
# Vars / references / auto {{ .Response }} (TPL-02)
# ---------------------------------------------------------------------------------------------

VARS_CASES = [
    pytest.param("{{ .Prompt }}", ["prompt"], id="prompt_only"),
    pytest.param(
        "{{ .System }} {{ .Prompt }} {{ .Response }}", ["prompt", "response", "system"], id="legacy"
    ),
    pytest.param(
        "{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}",
        ["prompt", "system", "tools"],
        id="tools_block",
    ),
    pytest.param(
        "{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}",
        ["content", "messages", "role"],
        id="messages_range",
    ),
    pytest.param(
        '{{ range .Messages }}{{ if eq .Role "tool" }}{{ .ToolName }}{{ end }}{{ end }}',
        ["messages", "role", "toolname"],
        id="tool_result_conditional",
    ),
    pytest.param(
        "{{ range $i, $_ := .Messages }}{{ $.Tools }}{{ (.X).Y }}{{ .Function.Name }}{{ end }}",
        ["$", "function", "messages", "name", "tools"],
        id="variables_and_chains",
    ),
    pytest.param(
        "{{ $x := .Decl }}{{ if .A }}{{ else if .B }}{{ .C }}{{ else }}{{ .D }}{{ end }}",
        ["a", "b", "c", "d", "decl"],
        id="declarations_and_else_if",
    ),
    pytest.param(
        '{{ define "x" }}{{ .InDefine }}{{ end }}{{ template "x" .Arg }}',
        ["arg", "indefine"],
        id="define",
    ),
    pytest.param("plain text", [], id="no_actions"),
]


@pytest.mark.parametrize(("text", "expected"), VARS_CASES)
def test_vars(text: str, expected: list[str]) -> None:
    assert template_vars(Template.parse(text)) == expected


def test_identifiers_template_without_pipeline_is_an_error() -> None:
    tmpl = Template.parse('{{define "x"}}{{template "x"}}{{end}}{{template "x"}}')
    with pytest.raises(TemplateError, match="undefined template specified"):
        template_vars(tmpl)


def test_identifiers_keep_case_and_duplicates() -> None:
    tmpl = Template.parse("{{ .Messages }}{{ $.Messages }}")
    assert identifiers(tmpl) == ["Messages", "$", "Messages"]


def test_auto_response_appended_by_caller() -> None:
    tmpl = Template.parse("{{ .System }} {{ .Prompt }}")
    assert not references(tmpl, "Messages") and not references(tmpl, "Response")
    full = tmpl.with_appended(response_action())
    assert references(full, "Response")
    assert full.execute({"System": "s", "Prompt": "p", "Response": "r"}) == "s pr"
    assert tmpl.execute({"System": "s", "Prompt": "p", "Response": "r"}) == "s p"
    assert str(full.root) == "{{.System}} {{.Prompt}}{{.Response}}"
    # the appended node is part of the cut like any other .Response field
    assert cut_at_response(full).execute({"System": "s", "Prompt": "p", "Response": ""}) == "s p"


def test_default_template() -> None:
    tmpl = Template.parse("{{ .Prompt }}").with_appended(response_action())
    assert tmpl.execute({"Prompt": "hi", "Response": ""}) == "hi"


# ---------------------------------------------------------------------------------------------
# Thinking tags (TPL-14) and tool-call tags (GF-20)
# ---------------------------------------------------------------------------------------------

THINKING_TAG_CASES = [
    pytest.param(
        "{{ if .Thinking }}/think{{ end }}"
        "{{- range $i, $_ := .Messages }}"
        "{{- $last := eq (len (slice $.Messages $i)) 1 -}}"
        "{{ if and $last .Thinking }}\n  <think>{{ .Thinking }}</think>\n{{ end }}{{ end }}",
        ("<think>", "</think>"),
        id="basic",
    ),
    pytest.param(
        "{{ range $i, $_ := .Messages }}{{ range .Other }}"
        "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ end }}{{ end }}",
        ("", ""),
        id="nearest_range_not_messages",
    ),
    pytest.param(
        "{{ range .Messages }}{{ if .Thinking }}  Before   {{ .Thinking }}   After \n"
        "{{ end }}{{ end }}",
        ("Before", "After"),
        id="whitespace_trimmed",
    ),
    pytest.param(THINKING, ("<think>", "</think>"), id="hand_written_thinking_template"),
    pytest.param("{{ .Thinking }}", ("", ""), id="outside_range"),
    pytest.param(CHATML_TOOLS, ("", ""), id="no_thinking"),
]


@pytest.mark.parametrize(("text", "expected"), THINKING_TAG_CASES)
def test_infer_thinking_tags(text: str, expected: tuple[str, str]) -> None:
    assert infer_thinking_tags(Template.parse(text)) == expected


TOOL_TAG_CASES = [
    pytest.param(CHATML_TOOLS, "<tool_call>", id="chatml"),
    pytest.param(MISTRAL_TOOLS, "[TOOL_CALLS] [", id="mistral"),
    pytest.param(LLAMA3_TOOLS, "{", id="llama3_json"),
    pytest.param(
        '{{if .ToolCalls}}[{{range .ToolCalls}}{"name": "{{.Function.Name}}"}{{end}}]{{end}}',
        "[",
        id="list",
    ),
    pytest.param(
        '{{if .ToolCalls}}{{range .ToolCalls}}{"name": "{{.Function.Name}}"}{{end}}{{end}}',
        "{",
        id="json_only",
    ),
    pytest.param("{{ .Prompt }}", "{", id="no_tool_calls_block"),
    pytest.param(
        '{{ range .Messages }}{{ if eq .Role "a" }}{{ if .ToolCalls }}\r\n <tc>\r\n'
        "{{ end }}{{ end }}{{ end }}",
        "<tc>",
        id="nested",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TOOL_TAG_CASES)
def test_tool_call_tag(text: str, expected: str) -> None:
    assert parse_tool_call_tag(Template.parse(text)) == expected


def test_iter_nodes_and_delete_nodes() -> None:
    tmpl = Template.parse("{{ if .ToolCalls }}<tc>{{ (.X).Y }}{{ end }}tail{{ .Z }}")
    kinds = [type(n).__name__ for n in iter_nodes(tmpl.root)]
    assert kinds == [
        "ListNode",
        "IfNode",
        "PipeNode",
        "CommandNode",
        "FieldNode",
        "ListNode",
        "TextNode",
        "ActionNode",
        "PipeNode",
        "CommandNode",
        "ChainNode",
        "PipeNode",
        "CommandNode",
        "FieldNode",
        "TextNode",
        "ActionNode",
        "PipeNode",
        "CommandNode",
        "FieldNode",
    ]
    fields = [n.ident for n in iter_nodes(tmpl.root) if isinstance(n, FieldNode)]
    assert fields == [["ToolCalls"], ["X"], ["Z"]]
    pruned = delete_nodes(tmpl, lambda n: isinstance(n, TextNode))
    assert str(pruned) == "{{if .ToolCalls}}{{(.X).Y}}{{end}}{{.Z}}"
    assert str(tmpl.root) == "{{if .ToolCalls}}<tc>{{(.X).Y}}{{end}}tail{{.Z}}"
