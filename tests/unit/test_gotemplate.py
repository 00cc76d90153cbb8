"""Unit tests for pollama.template.gotemplate, the Go text/template interpreter.

Expected strings follow Go's text/template semantics (Ollama uses Go's package with
``missingkey=zero``); the model templates are written by hand in the shape of Ollama's.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from pollama.template import gotemplate
from pollama.template.gotemplate import (
    NO_VALUE,
    ActionNode,
    BoolNode,
    ChainNode,
    CommandNode,
    FieldNode,
    IfNode,
    ListNode,
    NumberNode,
    PipeNode,
    RangeNode,
    RawJSON,
    StringNode,
    Template,
    TemplateError,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
    go_json,
    go_sprint,
    go_sprintf,
    go_sprintln,
    response_action,
)

# ---------------------------------------------------------------------------------------------
# Ollama-shaped data (template.go's templateMessage / templateTool ...)
# ---------------------------------------------------------------------------------------------


class Args(dict):
    """templateArgs: a map that prints as JSON."""

    __go_type__ = "template.templateArgs"

    def go_string(self) -> str:
        return go_json(dict(self))


@dataclasses.dataclass
class ToolCallFunction:
    Index: int = 0
    Name: str = ""
    Arguments: Args = dataclasses.field(default_factory=Args)


@dataclasses.dataclass
class ToolCall:
    ID: str = ""
    Function: ToolCallFunction = dataclasses.field(default_factory=ToolCallFunction)


@dataclasses.dataclass
class Message:
    __go_type__ = "*template.templateMessage"

    Role: str = ""
    Content: str = ""
    Thinking: str = ""
    Images: list[Any] = dataclasses.field(default_factory=list)
    ToolCalls: list[ToolCall] = dataclasses.field(default_factory=list)
    ToolName: str = ""
    ToolCallID: str = ""


@dataclasses.dataclass
class Params:
    __json_fields__ = (
        "Type:type",
        "Defs:$defs,omitempty",
        "Items:items,omitempty",
        "Required:required,omitempty",
        "Properties:properties",
    )

    Type: str = "object"
    Defs: Any = None
    Items: Any = None
    Required: list[str] = dataclasses.field(default_factory=list)
    Properties: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ToolFunction:
    __json_fields__ = ("Name:name", "Description:description", "Parameters:parameters")

    Name: str = ""
    Description: str = ""
    Parameters: Params = dataclasses.field(default_factory=Params)


@dataclasses.dataclass
class Tool:
    __json_fields__ = ("Type:type", "Items:items,omitempty", "Function:function")

    Type: str = "function"
    Items: Any = None
    Function: ToolFunction = dataclasses.field(default_factory=ToolFunction)

    def go_string(self) -> str:
        return go_json(self)


class Tools(list):
    """templateTools: a slice that prints as JSON."""

    def go_string(self) -> str:
        return go_json(list(self))


def weather_tools() -> Tools:
    return Tools(
        [
            Tool(
                Function=ToolFunction(
                    Name="get_weather",
                    Description="Get the <weather> & more",
                    Parameters=Params(
                        Required=["location"],
                        Properties={
                            "location": {"type": "string", "description": "City"},
                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                        },
                    ),
                )
            )
        ]
    )


def conversation_messages(name: str) -> list[Message]:
    chat = [
        Message("system", "You are a helpful assistant."),
        Message("user", "Hello, how are you?"),
        Message("assistant", "I'm doing great. How can I help you today?"),
        Message("user", "I'd like to show off how chat templating works!"),
    ]
    call = ToolCall(
        ID="call_1",
        Function=ToolCallFunction(
            Index=0,
            Name="get_weather",
            Arguments=Args(
                location="Paris",
                unit="celsius",
                days=3,
                f=1.5,
                nested={"b": [1, 2], "a": None},
            ),
        ),
    )
    tools = [
        Message("system", "Sys <x> & y"),
        Message("user", "What's the weather in Paris?"),
        Message("assistant", "", Thinking="Let me think", ToolCalls=[call]),
        Message("tool", '{"temp": 20}', ToolName="get_weather", ToolCallID="call_1"),
        Message("assistant", "It is 20 degrees.", Thinking="done"),
    ]
    return {
        "user": [Message("user", "Hello, how are you?")],
        "chat": chat,
        "tools": tools,
        "tools_pending": tools[:2],
    }[name]


def ollama_values(conversation: str) -> dict[str, Any]:
    """The map Ollama's Template.Execute passes for a messages-style template."""
    messages = conversation_messages(conversation)
    values: dict[str, Any] = {
        "System": "\n\n".join(m.Content for m in messages if m.Role == "system"),
        "Messages": messages,
        "Response": "",
        "Think": False,
        "ThinkLevel": "",
        "IsThinkSet": False,
    }
    if conversation.startswith("tools"):
        values["Tools"] = weather_tools()
    return values


DATA: dict[str, Any] = {
    "A": 1,
    "B": "str",
    "F": 1.5,
    "T": True,
    "Z": 0,
    "E": "",
    "L": [1, 2, 3],
    "SL": ["a", "b"],
    "M": {"b": 2, "a": 1},
    "N": None,
    "EL": [],
    "EM": {},
    "U": "héllo",
    "Nested": {"X": {"Y": "deep"}},
    "LM": [{"Role": "user", "Content": "hi"}, {"Role": "assistant", "Content": "yo"}],
}


def render(text: str, data: Any = None) -> str:
    return Template.parse(text).execute(data)


# Expected outputs below were checked against Go's text/template (same inputs).
RENDER_CASES = [
    pytest.param(
        "{{.A}} {{.B}} {{.F}} {{.T}} {{.Z}} [{{.E}}]", "1 str 1.5 true 0 []", id="scalars"
    ),
    pytest.param(
        "{{.L}} {{.SL}} {{.M}} {{.EL}} {{.EM}}",
        "[1 2 3] [a b] map[a:1 b:2] [] map[]",
        id="collections",
    ),
    pytest.param("{{.Nested.X.Y}} {{.Nested.X}}", "deep map[Y:deep]", id="nested_map"),
    pytest.param("{{.Missing}} {{.Nested.X.Nope}}", "<no value> <no value>", id="missing_key_zero"),
    pytest.param(
        '{{.N}} {{print .N}} {{printf "%v" .N}}', "<no value> <nil> <nil>", id="nil_value"
    ),
    pytest.param(
        "{{.EM}} {{$.A}} {{$}}",
        (
            "map[] 1 map[A:1 B:str E: EL:[] EM:map[] F:1.5 L:[1 2 3] LM:["
            "map[Content:hi Role:user] map[Content:yo Role:assistant]] M:"
            "map[a:1 b:2] N:<nil> Nested:map[X:map[Y:deep]] SL:[a b] T:true U:héllo Z:0]"
        ),
        id="dot_root",
    ),
    pytest.param(
        (
            "{{1e6}} {{100000.0}} {{123456789.0}} {{0.0001}} {{0.00001}} "
            "{{1.0}} {{-2.5}} {{1e21}} {{3.}}"
        ),
        "1e+06 100000 1.23456789e+08 0.0001 1e-05 1 -2.5 1e+21 3",
        id="float_formatting",
    ),
    pytest.param(
        (
            "{{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}} {{-5}} {{+3}} "
            "{{'a'}} {{'\\n'}} {{0x1p4}} {{1e3}}"
        ),
        "31 15 15 5 1000 -5 3 97 10 16 1000",
        id="number_literals",
    ),
    pytest.param(
        '{{"tab\\there"}}|{{`raw\\n`}}|{{"\\u00e9\\x41"}}|{{"\\303\\251"}}',
        "tab\there|raw\\n|éA|é",
        id="string_literals",
    ),
    pytest.param(
        "{{(len .L)}} {{(index .LM 0).Role}} {{((.B))}}", "3 user str", id="parenthesized"
    ),
    pytest.param(
        ('{{.L | len}} {{"x" | printf "%s-%s" "y"}} {{.A | eq 1}} {{3 | printf "%d"}}'),
        "3 y-x true 3",
        id="pipe_last_arg",
    ),
    pytest.param(
        "{{$m := index .LM 1}}{{$m.Role}}:{{$m.Content}}", "assistant:yo", id="chain_on_variable"
    ),
    pytest.param(
        (
            '{{print 1 2}}|{{print "a" "b"}}|{{print 1 "a" 2}}|{{print .L'
            ' .L}}|{{print "" 1}}|{{print true false}}'
        ),
        "1 2|ab|1a2|[1 2 3] [1 2 3]|1|true false",
        id="print_spacing",
    ),
    pytest.param(
        "{{print nil}}|{{print .Missing}}|{{print nil nil}}|{{print .N 1}}",
        "<nil>|<nil>|<nil> <nil>|<nil> 1",
        id="print_nil",
    ),
    pytest.param('{{println 1 2 "a"}}|{{println}}|', "1 2 a\n|\n|", id="println"),
    pytest.param(
        '{{printf "%d %s %v %q %x %X %t %%" 42 "s" .L "q" 255 "hi" true}}',
        '42 s [1 2 3] "q" ff 6869 true %',
        id="printf_verbs",
    ),
    pytest.param(
        ('{{printf "%5d|%-5d|%05d|%+d|%.2f|%8.3f|%-8.2f|" 42 42 42 42 3.14159 3.14159 2.5}}'),
        "   42|42   |00042|+42|3.14|   3.142|2.50    |",
        id="printf_width_flags",
    ),
    pytest.param(
        ('{{printf "%e %E %g %G %.3g %v %.0f" 12345.678 0.5 0.00001 1e21 1234.5678 100000.0 2.5}}'),
        "1.234568e+04 5.000000E-01 1e-05 1E+21 1.23e+03 100000 2",
        id="printf_floats",
    ),
    pytest.param(
        ('{{printf "%6.2s|%-6s|%.3s|%x|% x|%#q|%+q" "abcdef" "ab" "héllo" "hi" "ab" "a`b" "é"}}'),
        '    ab|ab    |hél|6869|61 62|"a`b"|"\\u00e9"',
        id="printf_strings",
    ),
    pytest.param(
        ('{{printf "%c%c|%U|%#U|%o|%#o|%b|%#x|%q|%x" 72 105 128512 65 8 8 5 255 65 -255}}'),
        "Hi|U+1F600|U+0041 'A'|10|010|101|0xff|'A'|-ff",
        id="printf_ints",
    ),
    pytest.param(
        '{{printf "%v|%+v|%d|%s|%q" .M .M .L .SL .SL}}',
        'map[a:1 b:2]|map[a:1 b:2]|[1 2 3]|[a b]|["a" "b"]',
        id="printf_collections",
    ),
    pytest.param(
        '{{printf "%T %T %T %T %T %T" 1 1.5 "s" true .L .M}}',
        "int float64 string bool []interface {} map[string]interface {}",
        id="printf_types",
    ),
    pytest.param(
        (
            '{{printf "%s|%d|%d" 42 "x"}}|{{printf "%d" 1 2}}|{{printf "%'
            'z" 1}}|{{printf "%"}}|{{printf "%s" nil}}'
        ),
        (
            "%!s(int=42)|%!d(string=x)|%!d(MISSING)|1%!(EXTRA int=2)|%!z("
            "int=1)|%!(NOVERB)|%!s(<nil>)"
        ),
        id="printf_errors",
    ),
    pytest.param(
        (
            '{{printf "%[2]d %[1]d" 1 2}}|{{printf "%[3]d" 1}}|{{printf "'
            '%*d|%-*d|%.*f" 5 1 4 2 2 3.14159}}'
        ),
        "2 1|%!d(BADINDEX)|    1|2   |3.14",
        id="printf_arg_index",
    ),
    pytest.param(
        '{{printf "%v %d" .Missing .Missing}}', "<nil> %!d(<nil>)", id="printf_stringer_and_nil"
    ),
    pytest.param(
        (
            "{{if .A}}a{{else if .B}}b{{else}}c{{end}} {{if .Z}}a{{else i"
            "f .E}}b{{else}}c{{end}} {{if .Z}}a{{else if .B}}b{{end}}"
        ),
        "a c b",
        id="if_else_chain",
    ),
    pytest.param(
        (
            "{{if .Z}}1{{end}}{{if .E}}2{{end}}{{if .EL}}3{{end}}{{if .EM"
            "}}4{{end}}{{if .N}}5{{end}}{{if .Missing}}6{{end}}{{if 0.0}}"
            "7{{end}}{{if false}}8{{end}}|{{if .A}}a{{end}}{{if .B}}b{{en"
            "d}}{{if .L}}l{{end}}{{if .M}}m{{end}}{{if .T}}t{{end}}{{if 0.5}}f{{end}}"
        ),
        "|ablmtf",
        id="truthiness",
    ),
    pytest.param(
        (
            "{{range .L}}[{{.}}]{{end}} {{range $i, $v := .SL}}{{$i}}:{{$"
            "v}},{{end}} {{range $v := .SL}}{{$v}}{{end}}"
        ),
        "[1][2][3] 0:a,1:b, ab",
        id="range_list",
    ),
    pytest.param(
        ("{{range .M}}{{.}};{{end}} {{range $k, $v := .M}}{{$k}}={{$v}};{{end}}"),
        "1;2; a=1;b=2;",
        id="range_map_sorted",
    ),
    pytest.param(
        (
            "{{range .EL}}x{{else}}empty{{end}} {{range .Missing}}x{{else"
            "}}nothing{{end}} {{range .EM}}x{{else}}em{{end}}"
        ),
        "empty nothing em",
        id="range_else",
    ),
    pytest.param(
        (
            "{{range $i, $v := .L}}{{if eq $v 2}}{{continue}}{{end}}{{if "
            "eq $v 3}}{{break}}{{end}}{{$v}}{{end}}|{{range .L}}{{if eq ."
            " 2}}{{break}}{{end}}{{.}}{{else}}E{{end}}"
        ),
        "1|1",
        id="range_break_continue",
    ),
    pytest.param(
        "{{range .LM}}{{.Role}}={{.Content}}@{{$.A}} {{end}}",
        "user=hi@1 assistant=yo@1 ",
        id="range_dot_and_root",
    ),
    pytest.param(
        (
            "{{with .B}}[{{.}}]{{end}} {{with .E}}x{{else}}empty{{end}} {"
            "{with $x := .A}}{{$x}}{{.}}{{end}}"
        ),
        "[str] empty 11",
        id="with_else",
    ),
    pytest.param(
        (
            "{{$x := 1}}{{if .T}}{{$x = 2}}{{$y := 3}}{{$y}}{{end}}{{$x}}"
            " {{$z := 0}}{{range .L}}{{$z = .}}{{end}}{{$z}}"
        ),
        "32 3",
        id="variables_scope",
    ),
    pytest.param('{{$x := 1}}{{$x := "two"}}{{$x}}', "two", id="variable_redeclare"),
    pytest.param(
        ('{{define "T1"}}<{{.}}>{{end}}{{template "T1" .A}}{{template "T1"}}{{template "T1" .SL}}'),
        "<1><<no value>><[a b]>",
        id="define_template",
    ),
    pytest.param(
        '{{define "t"}}{{$}}{{end}}{{$x := 5}}{{template "t" $x}}',
        "5",
        id="define_no_vars_inherited",
    ),
    pytest.param(
        '{{block "B1" .B}}blk:{{.}}{{end}}|{{template "B1" "again"}}',
        "blk:str|blk:again",
        id="block",
    ),
    pytest.param(
        ('{{define "a"}}A{{template "b" .}}{{end}}{{define "b"}}B{{.}}{{end}}{{template "a" 1}}'),
        "AB1",
        id="define_calls_define",
    ),
    pytest.param(
        (
            '{{and 1 0 2}} {{and 1 2}} {{or 0 "" 3}} {{or 0 ""}} {{or .Mi'
            'ssing "default"}} {{and .T .B}}'
        ),
        "0 2 3  default str",
        id="and_or_values",
    ),
    pytest.param(
        "{{and 0 (index .L 10)}} {{or 1 (index .L 10)}}", "0 1", id="and_or_short_circuit"
    ),
    pytest.param(
        "{{not 0}} {{not .L}} {{not .EL}} {{not .Missing}} {{.A | not}}",
        "true false true true false",
        id="not",
    ),
    pytest.param(
        (
            '{{eq 1 1}} {{eq 1 2 1}} {{eq "a" "b"}} {{ne 1 2}} {{lt 1 2}}'
            ' {{le 2 2}} {{gt 1.5 1.2}} {{ge "b" "a"}} {{lt "B" "a"}}'
        ),
        "true true false true true true true true true",
        id="comparisons",
    ),
    pytest.param(
        ('{{eq .Missing "x"}} {{eq .Missing nil}} {{eq .N nil}} {{ne .Missing "x"}}'),
        "false true true true",
        id="eq_missing_and_nil",
    ),
    pytest.param('{{len .L}} {{len .B}} {{len .U}} {{len .M}} {{len ""}}', "3 3 6 2 0", id="len"),
    pytest.param(
        (
            '{{index .L 1}} {{index .M "a"}} {{index .M "zz"}} {{index .B'
            ' 0}} {{index .SL 0}} {{index .LM 1 "Role"}}'
        ),
        "2 1 <no value> 115 a assistant",
        id="index",
    ),
    pytest.param(
        (
            "{{slice .L 1}} {{slice .L 1 2}} {{slice .L}} {{slice .B 1 3}"
            "} {{slice .L 0 1 2}} {{slice .U 1 3}}"
        ),
        "[2 3] [2] [1 2 3] tr [1] é",
        id="slice",
    ),
    pytest.param(
        (
            '{{html "<a href=\'x\'>&\\""}} {{js "<a=\'x\'>\\\\"}} {{urlquery "a '
            'b&c=d/é~_.-"}} {{html .Missing}} {{html 1 2}}'
        ),
        (
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34; \\u003Ca\\u003D\\'x\\'\\u003"
            "E\\\\ a+b%26c%3Dd%2F%C3%A9~_.- &lt;no value&gt; 1 2"
        ),
        id="html_js_urlquery",
    ),
    pytest.param(
        (
            '{{json .M}} {{json .L}} {{json "<a>&"}} {{json .Missing}} {{'
            "json .F}} {{json 1e21}} {{json 0.0000001}} {{json .LM}}"
        ),
        (
            '{"a":1,"b":2} [1,2,3] "\\u003ca\\u003e\\u0026" null 1.5 1e+21 1'
            'e-7 [{"Content":"hi","Role":"user"},{"Content":"yo","Role":"assistant"}]'
        ),
        id="json",
    ),
    pytest.param(
        ('a  {{- 1 -}}  b {{- /* comment */ -}} c {{/* x */}} d\n  {{- "e" }}\n\n{{- "f" -}}\n\ng'),
        "a1bc  defg",
        id="trim_markers",
    ),
    pytest.param("{{-3}} {{ -3 }} {{3 -}} x", "-3 -3 3x", id="trim_needs_space"),
    pytest.param("{{/*\nmulti\nline\n*/}}ok", "ok", id="comment_multiline"),
    pytest.param('{{\n.A\n}} {{ .A\n| printf "%d" }}', "1 1", id="multiline_action"),
]


@pytest.mark.parametrize(("text", "expected"), RENDER_CASES)
def test_render(text: str, expected: str) -> None:
    assert render(text, DATA) == expected


PARSE_ERROR_CASES = [
    pytest.param("{{ .Prompt ", "template: :1: unclosed action", id="unclosed_action"),
    pytest.param("{{ end }}", "template: :1: unexpected {{end}}", id="unexpected_end"),
    pytest.param("{{ if .A }}", "template: :1: unexpected EOF", id="unexpected_eof"),
    pytest.param("{{ if }}{{end}}", "template: :1: missing value for if", id="missing_value_if"),
    pytest.param(
        "{{ nofunc 1 }}", 'template: :1: function "nofunc" not defined', id="undefined_function"
    ),
    pytest.param("{{ $u }}", 'template: :1: undefined variable "$u"', id="undefined_variable"),
    pytest.param(
        "{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}",
        'template: :1: undefined variable "$y"',
        id="var_out_of_scope",
    ),
    pytest.param(
        "{{ break }}", "template: :1: {{break}} outside {{range}}", id="break_outside_range"
    ),
    pytest.param(
        "{{ range .L }}{{ else }}{{ continue }}{{ end }}",
        "template: :1: {{continue}} outside {{range}}",
        id="continue_in_range_else",
    ),
    pytest.param("{{ 1.2.3 }}", 'template: :1: unexpected ".3" in operand', id="bad_number"),
    pytest.param(
        '{{ "unterminated }}', "template: :1: unterminated quoted string", id="unterminated_string"
    ),
    pytest.param(
        "{{ 'ab' }}", "template: :1: malformed character constant: 'ab'", id="bad_char_constant"
    ),
    pytest.param("{{ # }}", 'template: :1: unexpected "#" in command', id="unrecognized_char"),
    pytest.param("{{/* unclosed ", "template: :1: unclosed comment", id="unclosed_comment"),
    pytest.param(
        '{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}',
        'template: :1: template: multiple definition of template "a"',
        id="multiple_definition",
    ),
    pytest.param(
        "{{ 1 | 2 }}",
        "template: :1: non executable command in pipeline stage 2",
        id="non_executable_stage",
    ),
    pytest.param(
        "{{ range $a, $b, $c := .L }}{{end}}",
        "template: :1: too many declarations in range",
        id="too_many_decls",
    ),
    pytest.param(
        "{{ $a, $b := .L }}",
        "template: :1: too many declarations in command",
        id="decl_outside_range",
    ),
    pytest.param("{{ (.A }}", "template: :1: unclosed left paren", id="unclosed_paren"),
    pytest.param("{{ .A) }}", 'template: :1: unexpected ")" in command', id="unexpected_paren"),
    pytest.param(
        '{{ "x".Y }}', 'template: :1: unexpected . after term "\\"x\\""', id="dot_after_term"
    ),
    pytest.param(
        "{{ 99999999999999999999 }}",
        'template: :1: integer overflow: "99999999999999999999"',
        id="integer_overflow",
    ),
    pytest.param(
        "{{ if .A }}{{ else }}{{ else }}{{ end }}",
        "template: :1: expected end; found {{else}}",
        id="else_twice",
    ),
    pytest.param(
        "{{ .A\n .B ", "template: :2: unclosed action started at :1", id="action_across_lines"
    ),
    pytest.param("ok\nok\n{{ if }}", "template: :3: missing value for if", id="error_line_number"),
    pytest.param('{{ "\\z" }}', "template: :1: invalid syntax", id="bad_escape"),
    pytest.param(
        "{{ define x }}{{ end }}",
        'template: :1: unexpected "x" in define clause',
        id="define_bad_name",
    ),
    pytest.param(
        "{{ () }}",
        "template: :1: missing value for parenthesized pipeline",
        id="empty_pipeline_paren",
    ),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERROR_CASES)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse(text)
    assert str(info.value) == message
    assert info.value.phase == "parse"


EXEC_ERROR_CASES = [
    pytest.param(
        "{{.B.Foo}}",
        (
            'template: :1:4: executing "" at <.B.Foo>: can\'t evaluate fie'
            "ld Foo in type interface {}"
        ),
        id="field_on_string",
    ),
    pytest.param(
        "{{.Missing.Foo}}",
        (
            'template: :1:10: executing "" at <.Missing.Foo>: nil pointer'
            " evaluating interface {}.Foo"
        ),
        id="nil_pointer_field",
    ),
    pytest.param(
        "{{.N.Foo}}",
        ('template: :1:4: executing "" at <.N.Foo>: nil pointer evaluating interface {}.Foo'),
        id="nil_value_field",
    ),
    pytest.param(
        "{{index .L 5}}",
        (
            'template: :1:2: executing "" at <index .L 5>: error calling '
            "index: index out of range: 5"
        ),
        id="index_out_of_range",
    ),
    pytest.param(
        "{{index .M 1}}",
        (
            'template: :1:2: executing "" at <index .M 1>: error calling '
            "index: value has type int; should be string"
        ),
        id="index_bad_type",
    ),
    pytest.param(
        "{{index .Missing 1}}",
        (
            'template: :1:2: executing "" at <index .Missing 1>: error ca'
            "lling index: index of untyped nil"
        ),
        id="index_untyped_nil",
    ),
    pytest.param(
        "{{slice .L 2 1}}",
        (
            'template: :1:2: executing "" at <slice .L 2 1>: error callin'
            "g slice: invalid slice index: 2 > 1"
        ),
        id="slice_bad_index",
    ),
    pytest.param(
        "{{len 3}}",
        ('template: :1:2: executing "" at <len 3>: error calling len: len of type int'),
        id="len_of_int",
    ),
    pytest.param(
        "{{eq 1 1.0}}",
        (
            'template: :1:2: executing "" at <eq 1 1.0>: error calling eq'
            ": incompatible types for comparison"
        ),
        id="eq_incompatible",
    ),
    pytest.param(
        '{{eq "a" 1}}',
        (
            'template: :1:2: executing "" at <eq "a" 1>: error calling eq'
            ": incompatible types for comparison"
        ),
        id="eq_string_int",
    ),
    pytest.param(
        "{{lt true false}}",
        (
            'template: :1:2: executing "" at <lt true false>: error calli'
            "ng lt: invalid type for comparison"
        ),
        id="lt_bool",
    ),
    pytest.param(
        "{{eq .L .L}}",
        (
            'template: :1:2: executing "" at <eq .L .L>: error calling eq'
            ": non-comparable type [%!s(int=1) %!s(int=2) %!s(int=3)]: []interface {}"
        ),
        id="eq_non_comparable",
    ),
    pytest.param(
        "{{range .B}}x{{end}}",
        'template: :1:8: executing "" at <.B>: range can\'t iterate over str',
        id="range_over_string",
    ),
    pytest.param(
        '{{template "nope"}}',
        ('template: :1:11: executing "" at <{{template "nope"}}>: template "nope" not defined'),
        id="template_not_defined",
    ),
    pytest.param(
        "{{nil}}",
        'template: :1:2: executing "" at <nil>: nil is not a command',
        id="nil_is_not_a_command",
    ),
    pytest.param(
        "{{.A 1}}",
        ('template: :1:2: executing "" at <.A>: A is not a method but has arguments'),
        id="args_to_non_function",
    ),
    pytest.param(
        "{{ lt 1 }}",
        ('template: :1:3: executing "" at <lt>: wrong number of args for lt: want 2 got 1'),
        id="wrong_arg_count",
    ),
    pytest.param(
        "{{ printf 1 }}",
        'template: :1:10: executing "" at <1>: expected string; found 1',
        id="printf_format_type",
    ),
    pytest.param(
        "{{ printf .A }}",
        ('template: :1:10: executing "" at <.A>: wrong type for value; expected string; got int'),
        id="printf_field_type",
    ),
    pytest.param(
        "line1\nline2 {{ index .L 9 }}",
        (
            'template: :2:9: executing "" at <index .L 9>: error calling '
            "index: index out of range: 9"
        ),
        id="error_position_line2",
    ),
    pytest.param(
        "héllo {{ index .L 9 }}",
        (
            'template: :1:10: executing "" at <index .L 9>: error calling'
            " index: index out of range: 9"
        ),
        id="error_position_utf8",
    ),
    pytest.param(
        '{{ define "t" }}\n  {{ index . 7 }}{{ end }}{{ template "t" .L }}',
        (
            'template: :2:5: executing "t" at <index . 7>: error calling '
            "index: index out of range: 7"
        ),
        id="error_in_define",
    ),
    pytest.param(
        "{{ $a = 1 }}",
        'template: :1:8: executing "" at <1>: undefined variable: $a',
        id="undefined_var_assign",
    ),
    pytest.param(
        "{{ .M.a 1 }}",
        ('template: :1:5: executing "" at <.M.a>: a is not a method but has arguments'),
        id="map_key_with_args",
    ),
]


@pytest.mark.parametrize(("text", "message"), EXEC_ERROR_CASES)
def test_exec_errors(text: str, message: str) -> None:
    tmpl = Template.parse(text)
    with pytest.raises(TemplateError) as info:
        tmpl.execute(DATA)
    assert str(info.value) == message
    assert info.value.phase == "exec"


CHATML_TOOLS = (
    "{{- if .Messages }}\n"
    "{{- if or .System .Tools }}<|im_start|>system\n"
    "{{- if .System }}\n"
    "{{ .System }}\n"
    "{{- end }}\n"
    "{{- if .Tools }}\n"
    "\n"
    "# Tools\n"
    "\n"
    "You may call one or more functions to assist with the user query.\n"
    "\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n"
    "{{- range .Tools }}\n"
    '{"type": "function", "function": {{ .Function }}}\n'
    "{{- end }}\n"
    "</tools>\n"
    "\n"
    "For each function call, return a json object with function n"
    "ame and arguments within <tool_call></tool_call> XML tags:\n"
    "<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>\n"
    "{{- end }}<|im_end|>\n"
    "{{ end }}\n"
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
    '{{- if eq .Role "user" }}<|im_start|>user\n'
    "{{ .Content }}<|im_end|>\n"
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n'
    "{{ if .Content }}{{ .Content }}\n"
    "{{- else if .ToolCalls }}<tool_call>\n"
    '{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "argu'
    'ments": {{ .Function.Arguments }}}\n'
    "{{ end }}</tool_call>\n"
    "{{- end }}{{ if not $last }}<|im_end|>\n"
    "{{ end }}\n"
    '{{- else if eq .Role "tool" }}<|im_start|>user\n'
    "<tool_response>\n"
    "{{ .Content }}\n"
    "</tool_response><|im_end|>\n"
    "{{ end }}\n"
    '{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant\n'
    "{{ end }}\n"
    "{{- end }}\n"
    "{{- else }}\n"
    "{{- if .System }}<|im_start|>system\n"
    "{{ .System }}<|im_end|>\n"
    "{{ end }}{{ if .Prompt }}<|im_start|>user\n"
    "{{ .Prompt }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
    "{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"
)

LLAMA3_TOOLS = (
    "{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>\n"
    "{{- if .System }}\n"
    "\n"
    "{{ .System }}\n"
    "{{- end }}\n"
    "{{- if .Tools }}\n"
    "\n"
    "Cutting Knowledge Date: December 2023\n"
    "\n"
    "When you receive a tool call response, use the output to for"
    "mat an answer to the orginal user question.\n"
    "\n"
    "You are a helpful assistant with tool calling capabilities.\n"
    "{{- end }}<|eot_id|>\n"
    "{{- end }}\n"
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
    '{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>\n'
    "{{- if and $.Tools $last }}\n"
    "\n"
    "Given the following functions, please respond with a JSON fo"
    "r a function call with its proper arguments that best answer"
    "s the given prompt.\n"
    "\n"
    'Respond in the format {"name": function name, "parameters": '
    "dictionary of argument name and its value}. Do not use variables.\n"
    "\n"
    "{{ range $.Tools }}\n"
    "{{- . }}\n"
    "{{ end }}\n"
    "{{ .Content }}<|eot_id|>\n"
    "{{- else }}\n"
    "\n"
    "{{ .Content }}<|eot_id|>\n"
    "{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>\n"
    "\n"
    "{{ end }}\n"
    '{{- else if eq .Role "assistant" }}<|start_header_id|>assist'
    "ant<|end_header_id|>\n"
    "{{- if .ToolCalls }}\n"
    "{{ range .ToolCalls }}\n"
    '{"name": "{{ .Function.Name }}", "parameters": {{ .Function.'
    "Arguments }}}{{ end }}\n"
    "{{- else }}\n"
    "\n"
    "{{ .Content }}\n"
    "{{- end }}{{ if not $last }}<|eot_id|>{{ end }}\n"
    '{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>\n'
    "\n"
    "{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>ass"
    "istant<|end_header_id|>\n"
    "\n"
    "{{ end }}\n"
    "{{- end }}\n"
    "{{- end }}"
)

MISTRAL_TOOLS = (
    "{{- range $index, $_ := .Messages }}\n"
    '{{- if eq .Role "system" }}[SYSTEM_PROMPT]{{ .Content }}[/SYSTEM_PROMPT]\n'
    '{{- else if eq .Role "user" }}\n'
    "{{- if and (le (len (slice $.Messages $index)) 2) $.Tools }}"
    "[AVAILABLE_TOOLS] {{ json $.Tools }}[/AVAILABLE_TOOLS]\n"
    "{{- end }}[INST] {{ if and $.System (eq (len (slice $.Messag"
    "es $index)) 1) }}{{ $.System }}\n"
    "\n"
    "{{ end }}{{ .Content }}[/INST]\n"
    '{{- else if eq .Role "assistant" }}\n'
    "{{- if .Content }} {{ .Content }}\n"
    "{{- if not (eq (len (slice $.Messages $index)) 1) }}</s>\n"
    "{{- end }}\n"
    "{{- else if .ToolCalls }}[TOOL_CALLS] [\n"
    '{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arg'
    'uments": {{ json .Function.Arguments }}}\n'
    "{{- end }}]</s>\n"
    "{{- end }}\n"
    '{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ '
    ".Content }}} [/TOOL_RESULTS]\n"
    "{{- end }}\n"
    "{{- end }}"
)

GEMMA = (
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
    '{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user\n'
    "{{ .Content }}<end_of_turn>\n"
    "{{ if $last }}<start_of_turn>model\n"
    "{{ end }}\n"
    '{{- else if eq .Role "assistant" }}<start_of_turn>model\n'
    "{{ .Content }}{{ if not $last }}<end_of_turn>\n"
    "{{ end }}\n"
    "{{- end }}\n"
    "{{- end }}"
)

THINKING = (
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
    "<|{{ .Role }}|>\n"
    "{{- if and $last .Thinking }}<think>{{ .Thinking }}</think>{{ end }}\n"
    '{{ .Content }}{{ if and (ne .Role "assistant") $last }}<|ass'
    "istant|>{{ if and $.IsThinkSet (not $.Think) }}<think></thin"
    "k>{{ end }}{{ end }}\n"
    "{{- end }}"
)

MODEL_CASES = [
    pytest.param(
        CHATML_TOOLS,
        "user",
        ("<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n"),
        id="qwen-user",
    ),
    pytest.param(
        CHATML_TOOLS,
        "chat",
        (
            "<|im_start|>system\n"
            "You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n"
            "Hello, how are you?<|im_end|>\n"
            "<|im_start|>assistant\n"
            "I'm doing great. How can I help you today?<|im_end|>\n"
            "<|im_start|>user\n"
            "I'd like to show off how chat templating works!<|im_end|>\n"
            "<|im_start|>assistant\n"
        ),
        id="qwen-chat",
    ),
    pytest.param(
        CHATML_TOOLS,
        "tools",
        (
            "<|im_start|>system\n"
            "Sys <x> & y\n"
            "\n"
            "# Tools\n"
            "\n"
            "You may call one or more functions to assist with the user query.\n"
            "\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            "<tools>\n"
            '{"type": "function", "function": {get_weather Get the <weath'
            "er> & more {object <nil> <nil> [location] map[location:map[d"
            "escription:City type:string] unit:map[enum:[celsius fahrenhe"
            "it] type:string]]}}}\n"
            "</tools>\n"
            "\n"
            "For each function call, return a json object with function n"
            "ame and arguments within <tool_call></tool_call> XML tags:\n"
            "<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n'
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n"
            "What's the weather in Paris?<|im_end|>\n"
            "<|im_start|>assistant\n"
            "<tool_call>\n"
            '{"name": "get_weather", "arguments": {"days":3,"f":1.5,"loca'
            'tion":"Paris","nested":{"a":null,"b":[1,2]},"unit":"celsius"}}\n'
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n"
            "<tool_response>\n"
            '{"temp": 20}\n'
            "</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n"
            "It is 20 degrees."
        ),
        id="qwen-tools",
    ),
    pytest.param(
        CHATML_TOOLS,
        "tools_pending",
        (
            "<|im_start|>system\n"
            "Sys <x> & y\n"
            "\n"
            "# Tools\n"
            "\n"
            "You may call one or more functions to assist with the user query.\n"
            "\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            "<tools>\n"
            '{"type": "function", "function": {get_weather Get the <weath'
            "er> & more {object <nil> <nil> [location] map[location:map[d"
            "escription:City type:string] unit:map[enum:[celsius fahrenhe"
            "it] type:string]]}}}\n"
            "</tools>\n"
            "\n"
            "For each function call, return a json object with function n"
            "ame and arguments within <tool_call></tool_call> XML tags:\n"
            "<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n'
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n"
            "What's the weather in Paris?<|im_end|>\n"
            "<|im_start|>assistant\n"
        ),
        id="qwen-tools_pending",
    ),
    pytest.param(
        LLAMA3_TOOLS,
        "user",
        (
            "<|start_header_id|>user<|end_header_id|>\n"
            "\n"
            "Hello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
            "\n"
        ),
        id="llama31-user",
    ),
    pytest.param(
        LLAMA3_TOOLS,
        "chat",
        (
            "<|start_header_id|>system<|end_header_id|>\n"
            "\n"
            "You are a helpful assistant.<|eot_id|><|start_header_id|>use"
            "r<|end_header_id|>\n"
            "\n"
            "Hello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
            "\n"
            "I'm doing great. How can I help you today?<|eot_id|><|start_"
            "header_id|>user<|end_header_id|>\n"
            "\n"
            "I'd like to show off how chat templating works!<|eot_id|><|s"
            "tart_header_id|>assistant<|end_header_id|>\n"
            "\n"
        ),
        id="llama31-chat",
    ),
    pytest.param(
        LLAMA3_TOOLS,
        "tools",
        (
            "<|start_header_id|>system<|end_header_id|>\n"
            "\n"
            "Sys <x> & y\n"
            "\n"
            "Cutting Knowledge Date: December 2023\n"
            "\n"
            "When you receive a tool call response, use the output to for"
            "mat an answer to the orginal user question.\n"
            "\n"
            "You are a helpful assistant with tool calling capabilities.<"
            "|eot_id|><|start_header_id|>user<|end_header_id|>\n"
            "\n"
            "What's the weather in Paris?<|eot_id|><|start_header_id|>ass"
            "istant<|end_header_id|>\n"
            "\n"
            '{"name": "get_weather", "parameters": {"days":3,"f":1.5,"loc'
            'ation":"Paris","nested":{"a":null,"b":[1,2]},"unit":"celsius'
            '"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n'
            "\n"
            '{"temp": 20}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n'
            "\n"
            "It is 20 degrees."
        ),
        id="llama31-tools",
    ),
    pytest.param(
        LLAMA3_TOOLS,
        "tools_pending",
        (
            "<|start_header_id|>system<|end_header_id|>\n"
            "\n"
            "Sys <x> & y\n"
            "\n"
            "Cutting Knowledge Date: December 2023\n"
            "\n"
            "When you receive a tool call response, use the output to for"
            "mat an answer to the orginal user question.\n"
            "\n"
            "You are a helpful assistant with tool calling capabilities.<"
            "|eot_id|><|start_header_id|>user<|end_header_id|>\n"
            "\n"
            "Given the following functions, please respond with a JSON fo"
            "r a function call with its proper arguments that best answer"
            "s the given prompt.\n"
            "\n"
            'Respond in the format {"name": function name, "parameters": '
            "dictionary of argument name and its value}. Do not use variables.\n"
            "\n"
            '{"type":"function","function":{"name":"get_weather","descrip'
            'tion":"Get the \\u003cweather\\u003e \\u0026 more","parameters"'
            ':{"type":"object","required":["location"],"properties":{"loc'
            'ation":{"description":"City","type":"string"},"unit":{"enum"'
            ':["celsius","fahrenheit"],"type":"string"}}}}}\n'
            "\n"
            "What's the weather in Paris?<|eot_id|><|start_header_id|>ass"
            "istant<|end_header_id|>\n"
            "\n"
        ),
        id="llama31-tools_pending",
    ),
    pytest.param(MISTRAL_TOOLS, "user", "[INST] Hello, how are you?[/INST]", id="mistral-user"),
    pytest.param(
        MISTRAL_TOOLS,
        "chat",
        (
            "[SYSTEM_PROMPT]You are a helpful assistant.[/SYSTEM_PROMPT]["
            "INST] Hello, how are you?[/INST] I'm doing great. How can I "
            "help you today?</s>[INST] You are a helpful assistant.\n"
            "\n"
            "I'd like to show off how chat templating works![/INST]"
        ),
        id="mistral-chat",
    ),
    pytest.param(
        MISTRAL_TOOLS,
        "tools",
        (
            "[SYSTEM_PROMPT]Sys <x> & y[/SYSTEM_PROMPT][INST] What's the "
            'weather in Paris?[/INST][TOOL_CALLS] [{"name": "get_weather"'
            ', "arguments": {"days":3,"f":1.5,"location":"Paris","nested"'
            ':{"a":null,"b":[1,2]},"unit":"celsius"}}]</s>[TOOL_RESULTS] '
            '{"content": {"temp": 20}} [/TOOL_RESULTS] It is 20 degrees.'
        ),
        id="mistral-tools",
    ),
    pytest.param(
        MISTRAL_TOOLS,
        "tools_pending",
        (
            "[SYSTEM_PROMPT]Sys <x> & y[/SYSTEM_PROMPT][AVAILABLE_TOOLS] "
            '[{"type":"function","function":{"name":"get_weather","descri'
            'ption":"Get the \\u003cweather\\u003e \\u0026 more","parameters'
            '":{"type":"object","required":["location"],"properties":{"lo'
            'cation":{"description":"City","type":"string"},"unit":{"enum'
            '":["celsius","fahrenheit"],"type":"string"}}}}}][/AVAILABLE_'
            "TOOLS][INST] Sys <x> & y\n"
            "\n"
            "What's the weather in Paris?[/INST]"
        ),
        id="mistral-tools_pending",
    ),
    pytest.param(
        GEMMA,
        "user",
        ("<start_of_turn>user\nHello, how are you?<end_of_turn>\n<start_of_turn>model\n"),
        id="gemma-user",
    ),
    pytest.param(
        GEMMA,
        "chat",
        (
            "<start_of_turn>user\n"
            "You are a helpful assistant.<end_of_turn>\n"
            "<start_of_turn>user\n"
            "Hello, how are you?<end_of_turn>\n"
            "<start_of_turn>model\n"
            "I'm doing great. How can I help you today?<end_of_turn>\n"
            "<start_of_turn>user\n"
            "I'd like to show off how chat templating works!<end_of_turn>\n"
            "<start_of_turn>model\n"
        ),
        id="gemma-chat",
    ),
    pytest.param(
        GEMMA,
        "tools",
        (
            "<start_of_turn>user\n"
            "Sys <x> & y<end_of_turn>\n"
            "<start_of_turn>user\n"
            "What's the weather in Paris?<end_of_turn>\n"
            "<start_of_turn>model\n"
            "<end_of_turn>\n"
            "<start_of_turn>model\n"
            "It is 20 degrees."
        ),
        id="gemma-tools",
    ),
    pytest.param(
        GEMMA,
        "tools_pending",
        (
            "<start_of_turn>user\n"
            "Sys <x> & y<end_of_turn>\n"
            "<start_of_turn>user\n"
            "What's the weather in Paris?<end_of_turn>\n"
            "<start_of_turn>model\n"
        ),
        id="gemma-tools_pending",
    ),
    pytest.param(
        THINKING, "user", "<|user|>\nHello, how are you?<|assistant|>", id="thinking-user"
    ),
    pytest.param(
        THINKING,
        "chat",
        (
            "<|system|>\n"
            "You are a helpful assistant.<|user|>\n"
            "Hello, how are you?<|assistant|>\n"
            "I'm doing great. How can I help you today?<|user|>\n"
            "I'd like to show off how chat templating works!<|assistant|>"
        ),
        id="thinking-chat",
    ),
    pytest.param(
        THINKING,
        "tools",
        (
            "<|system|>\n"
            "Sys <x> & y<|user|>\n"
            "What's the weather in Paris?<|assistant|>\n"
            "<|tool|>\n"
            '{"temp": 20}<|assistant|><think>done</think>\n'
            "It is 20 degrees."
        ),
        id="thinking-tools",
    ),
    pytest.param(
        THINKING,
        "tools_pending",
        ("<|system|>\nSys <x> & y<|user|>\nWhat's the weather in Paris?<|assistant|>"),
        id="thinking-tools_pending",
    ),
]


@pytest.mark.parametrize(("text", "conversation", "expected"), MODEL_CASES)
def test_model_templates(text: str, conversation: str, expected: str) -> None:
    tmpl = Template.parse(text)
    assert tmpl.references("Messages")
    assert tmpl.execute(ollama_values(conversation)) == expected


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
        tmpl = tmpl.cut_at_response()
    assert tmpl.execute(data) == expected


def test_cut_at_response_uses_builtins_only() -> None:
    # Ollama executes the cut tree in a fresh template: no custom functions, no defines.
    tmpl = Template.parse("{{ json .Prompt }} {{ .Response }} tail")
    assert tmpl.execute({"Prompt": "p", "Response": "r"}) == '"p" r tail'
    with pytest.raises(TemplateError, match='"json" is not a defined function'):
        tmpl.cut_at_response().execute({"Prompt": "p", "Response": "r"})


def test_cut_at_response_else_after_response_is_an_error() -> None:
    # Ollama's deleteNode panics on an else branch after the .Response node.
    tmpl = Template.parse("{{ if .A }}{{ .Response }}{{ else }}e{{ end }}")
    with pytest.raises(TemplateError, match="interface conversion"):
        tmpl.cut_at_response()


def test_cut_does_not_modify_original() -> None:
    tmpl = Template.parse("{{ .Prompt }}{{ .Response }}</s>")
    tmpl.cut_at_response()
    assert tmpl.execute({"Prompt": "p", "Response": "r"}) == "pr</s>"


def test_fim_template_references_suffix() -> None:
    tmpl = Template.parse("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>")
    assert tmpl.references("Suffix")
    assert tmpl.references(".suffix")
    assert not tmpl.references("Messages")


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
    assert Template.parse(text).vars() == expected


def test_identifiers_template_without_pipeline_is_an_error() -> None:
    tmpl = Template.parse('{{define "x"}}{{template "x"}}{{end}}{{template "x"}}')
    with pytest.raises(TemplateError, match="undefined template specified"):
        tmpl.vars()


def test_identifiers_keep_case_and_duplicates() -> None:
    tmpl = Template.parse("{{ .Messages }}{{ $.Messages }}")
    assert tmpl.identifiers() == ["Messages", "$", "Messages"]


def test_auto_response_appended_by_caller() -> None:
    tmpl = Template.parse("{{ .System }} {{ .Prompt }}")
    assert not tmpl.references("Messages") and not tmpl.references("Response")
    full = tmpl.with_appended(response_action())
    assert full.references("Response")
    assert full.execute({"System": "s", "Prompt": "p", "Response": "r"}) == "s pr"
    assert tmpl.execute({"System": "s", "Prompt": "p", "Response": "r"}) == "s p"
    assert str(full.root) == "{{.System}} {{.Prompt}}{{.Response}}"
    # the appended node is part of the cut like any other .Response field
    assert full.cut_at_response().execute({"System": "s", "Prompt": "p", "Response": ""}) == "s p"


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
    assert Template.parse(text).infer_thinking_tags() == expected


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
    assert Template.parse(text).tool_call_tag() == expected


# ---------------------------------------------------------------------------------------------
# Go >= 1.22 behaviour (Ollama is built with a recent Go)
# ---------------------------------------------------------------------------------------------

MODERN_CASES = [
    pytest.param("{{ range 3 }}{{ . }}{{ end }}", "012", id="range_int"),
    pytest.param("{{ range $i := 3 }}{{ $i }},{{ end }}", "0,1,2,", id="range_int_var"),
    pytest.param("{{ range 0 }}x{{ else }}none{{ end }}", "none", id="range_int_zero"),
    pytest.param(
        "{{ with .Missing }}a{{ else with .B }}b{{ . }}{{ else }}c{{ end }}", "bstr", id="else_with"
    ),
    pytest.param("{{ with .Z }}a{{ else with .E }}b{{ else }}c{{ end }}", "c", id="else_with_else"),
    pytest.param(
        "{{ $i := 0 }}{{ $v := 0 }}{{ range $i, $v = .SL }}{{ end }}{{ $i }}{{ $v }}",
        "1b",
        id="range_assign",
    ),
    pytest.param('{{ json "\\b\\f\\u0001" }}', '"\\b\\f\\u0001"', id="json_control_escapes"),
]


@pytest.mark.parametrize(("text", "expected"), MODERN_CASES)
def test_modern_go_behaviour(text: str, expected: str) -> None:
    assert render(text, DATA) == expected


def test_range_int_two_variables_is_an_error() -> None:
    with pytest.raises(TemplateError, match="can't use 3 to iterate over more than one variable"):
        render("{{ range $i, $v := 3 }}{{ end }}", DATA)


# ---------------------------------------------------------------------------------------------
# missingkey option, nil handling
# ---------------------------------------------------------------------------------------------

MISSINGKEY_CASES = [
    pytest.param("zero", "{{ .Missing }}", "<no value>", id="zero_prints_no_value"),
    pytest.param("default", "{{ .Missing }}", "<no value>", id="default_prints_no_value"),
    pytest.param("default", "{{ .Missing.Foo }}", "<no value>", id="default_chain_on_missing"),
    pytest.param("zero", '{{ index .M "zz" }}', "<no value>", id="index_missing"),
    pytest.param("error", "{{ .M.a }}", "1", id="error_present_key"),
]


@pytest.mark.parametrize(("option", "text", "expected"), MISSINGKEY_CASES)
def test_missingkey_option(option: str, text: str, expected: str) -> None:
    assert Template.parse(text, missingkey=option).execute({"M": {"a": 1}}) == expected


def test_missingkey_error() -> None:
    tmpl = Template.parse("{{ .M.zz }}", missingkey="error")
    with pytest.raises(TemplateError, match='map has no entry for key "zz"'):
        tmpl.execute({"M": {"a": 1}})


def test_missingkey_bad_option() -> None:
    with pytest.raises(ValueError):
        Template.parse("x", missingkey="nope")


def test_nil_data() -> None:
    assert render("{{ . }}|{{ .X }}|{{ if . }}y{{ else }}n{{ end }}", None) == (
        "<no value>|<no value>|n"
    )


def test_nil_elements_in_range() -> None:
    assert render("{{ range . }}{{ . }}|{{ end }}", [1, None, "x"]) == "1|<no value>|x|"
    assert render("{{ . }}", [1, "a", None, {"k": None}]) == "[1 a <nil> map[k:<nil>]]"


# ---------------------------------------------------------------------------------------------
# Objects: fields, methods, Stringer (go_string), errors
# ---------------------------------------------------------------------------------------------


class Greeter:
    __go_type__ = "*main.Greeter"

    def __init__(self) -> None:
        self.Name = "Ada"
        self.hidden = "h"

    def Greet(self, greeting: str) -> str:
        return f"{greeting}, {self.Name}"

    def Fail(self) -> str:
        raise RuntimeError("boom")


def test_object_fields_and_methods() -> None:
    data = {"G": Greeter()}
    assert render('{{ .G.Name }} {{ .G.Greet "Hi" }} {{ "Yo" | .G.Greet }}', data) == (
        "Ada Hi, Ada Yo, Ada"
    )
    assert render("{{ .G }}", data) == "{Ada h}"


OBJECT_ERROR_CASES = [
    pytest.param(
        "{{ with .G }}{{ .Nope }}{{ end }}",
        'template: :1:16: executing "" at <.Nope>: can\'t evaluate field Nope in type '
        "*main.Greeter",
        id="unknown_field",
    ),
    pytest.param(
        "{{ .G.Nope }}",
        'template: :1:5: executing "" at <.G.Nope>: can\'t evaluate field Nope in type '
        "interface {}",
        id="unknown_field_of_map_value",
    ),
    pytest.param(
        "{{ with .G }}{{ .hidden }}{{ end }}",
        'template: :1:16: executing "" at <.hidden>: hidden is an unexported field of struct '
        "type *main.Greeter",
        id="unexported_field",
    ),
    pytest.param(
        "{{ .G.Greet }}",
        'template: :1:5: executing "" at <.G.Greet>: wrong number of args for Greet: want 1 got 0',
        id="method_arg_count",
    ),
    pytest.param(
        "{{ .G.Fail }}",
        'template: :1:5: executing "" at <.G.Fail>: error calling Fail: boom',
        id="method_error",
    ),
    pytest.param(
        "{{ .G.Name 1 }}",
        'template: :1:5: executing "" at <.G.Name>: Name has arguments but cannot be invoked as '
        "function",
        id="field_with_args",
    ),
]


@pytest.mark.parametrize(("text", "message"), OBJECT_ERROR_CASES)
def test_object_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(text, {"G": Greeter()})
    assert str(info.value) == message


def test_message_fields_and_stringers() -> None:
    values = ollama_values("tools")
    text = (
        "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}|"
        "{{ range $k, $v := .Function.Arguments }}{{ $k }}={{ $v }};{{ end }}{{ end }}{{ end }}"
        "|{{ len .Tools }}|{{ index .Tools 0 }}"
    )
    assert render(text, values) == (
        '{"days":3,"f":1.5,"location":"Paris","nested":{"a":null,"b":[1,2]},"unit":"celsius"}|'
        "days=3;f=1.5;location=Paris;nested=map[a:<nil> b:[1 2]];unit=celsius;"
        '|1|{"type":"function","function":{"name":"get_weather",'
        '"description":"Get the \\u003cweather\\u003e \\u0026 more","parameters":{"type":"object",'
        '"required":["location"],"properties":{"location":{"description":"City","type":"string"},'
        '"unit":{"enum":["celsius","fahrenheit"],"type":"string"}}}}}'
    )


def test_empty_arguments_print_as_json() -> None:
    msg = Message("assistant", ToolCalls=[ToolCall(Function=ToolCallFunction(Name="f"))])
    text = "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}{{ end }}{{ end }}"
    assert render(text, {"Messages": [msg]}) == "{}"


def test_printf_uses_stringer() -> None:
    assert render('{{ printf "%s|%v|%d" .A .A 1 }}', {"A": Args(x=1)}) == '{"x":1}|{"x":1}|1'
    assert render("{{ print .T }}", {"T": weather_tools()}).startswith('[{"type":"function"')


# ---------------------------------------------------------------------------------------------
# Ollama's functions
# ---------------------------------------------------------------------------------------------


def test_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gotemplate, "_today", lambda: datetime.date(2024, 3, 1))
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


# ---------------------------------------------------------------------------------------------
# Parse tree
# ---------------------------------------------------------------------------------------------


def test_parse_tree_shape() -> None:
    tmpl = Template.parse(
        "a{{ if .X }}b{{ else if eq .Y 1 }}c{{ end }}"
        "{{ range $i, $v := .L }}{{ $v.Name }}{{ end }}{{ with $ }}{{ end }}"
        '{{ template "t" . }}{{ define "t" }}T{{ end }}'
    )
    root = tmpl.root
    assert isinstance(root, ListNode)
    text, if_node, range_node, with_node, tmpl_node = root.nodes
    assert isinstance(text, TextNode) and text.text == "a" and text.pos == 0
    assert isinstance(if_node, IfNode)
    assert isinstance(if_node.pipe, PipeNode)
    assert isinstance(if_node.pipe.cmds[0].args[0], FieldNode)
    assert if_node.pipe.cmds[0].args[0].ident == ["X"]
    assert if_node.else_list is not None
    nested = if_node.else_list.nodes[0]
    assert isinstance(nested, IfNode)
    assert [type(a) for a in nested.pipe.cmds[0].args] == [
        gotemplate.IdentifierNode,
        FieldNode,
        NumberNode,
    ]
    assert isinstance(range_node, RangeNode)
    assert [v.ident for v in range_node.pipe.decl] == [["$i"], ["$v"]]
    assert isinstance(range_node.list.nodes[0], ActionNode)
    var = range_node.list.nodes[0].pipe.cmds[0].args[0]
    assert isinstance(var, VariableNode) and var.ident == ["$v", "Name"]
    assert isinstance(with_node, WithNode)
    assert isinstance(tmpl_node, TemplateNode) and tmpl_node.name == "t"
    assert tmpl.lookup("t") is not None
    assert sorted(t.name for t in tmpl.templates()) == ["", "t"]
    assert str(root) == (
        "a{{if .X}}b{{else}}{{if eq .Y 1}}c{{end}}{{end}}{{range $i, $v := .L}}{{$v.Name}}{{end}}"
        '{{with $}}{{end}}{{template "t" .}}'
    )


def test_node_positions_and_lines() -> None:
    tmpl = Template.parse('x\n  {{ .A.B }} {{ ("s").Len }}{{ true }}')
    action = tmpl.root.nodes[1]
    assert isinstance(action, ActionNode)
    field = action.pipe.cmds[0].args[0]
    # like Go, a field chain is positioned at its last element
    assert isinstance(field, FieldNode) and field.ident == ["A", "B"]
    assert field.pos == tmpl.root.nodes[0].pos + len("x\n  {{ .A")
    assert field.line == 2
    chain = tmpl.root.nodes[3].pipe.cmds[0].args[0]
    assert isinstance(chain, ChainNode) and chain.field == ["Len"]
    assert isinstance(chain.node, PipeNode)
    assert isinstance(chain.node.cmds[0].args[0], StringNode)
    assert isinstance(tmpl.root.nodes[4].pipe.cmds[0].args[0], BoolNode)


def test_tree_can_be_walked_and_copied() -> None:
    tmpl = Template.parse("{{ if .ToolCalls }}<tool_call>{{ end }}")
    copied = tmpl.root.copy()
    assert isinstance(copied, ListNode) and copied is not tmpl.root
    copied.nodes.clear()
    assert len(tmpl.root.nodes) == 1
    action = CommandNode(0, args=[FieldNode(0, ident=["X"])])
    assert str(action) == ".X"


def test_template_str_and_empty() -> None:
    assert str(Template.parse("")) == ""
    assert Template.parse("").execute({}) == ""
    assert Template.parse('{{ define "a" }}x{{ end }}').execute({}) == ""
    assert Template.parse("{{.A}}", name="named").name == "named"


def test_parse_error_attributes() -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse("a\n{{ .X", name="tpl")
    err = info.value
    assert str(err) == "template: tpl:2: unclosed action"
    assert (err.name, err.line, err.col, err.phase) == ("tpl", 2, None, "parse")


def test_exec_error_attributes() -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse("ab\ncd {{ index .L 3 }}", name="tpl").execute({"L": []})
    err = info.value
    assert str(err) == (
        'template: tpl:2:6: executing "tpl" at <index .L 3>: error calling index: '
        "index out of range: 3"
    )
    assert (err.name, err.line, err.col, err.phase) == ("tpl", 2, 6, "exec")


def test_recursion_limit() -> None:
    tmpl = Template.parse('{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}')
    with pytest.raises(TemplateError, match="exceeded maximum template depth"):
        tmpl.execute({})


def test_call_and_bytes() -> None:
    data = {"F": lambda a, b: a * b, "Raw": b"hi"}
    assert render("{{ call .F 6 7 }} {{ .Raw }} {{ len .Raw }} {{ json .Raw }}", data) == (
        '42 [104 105] 2 "aGk="'
    )
    with pytest.raises(TemplateError, match="error calling call: non-function of type int"):
        render("{{ call 1 }}")


def test_else_with_inside_if_is_a_parse_error() -> None:
    with pytest.raises(TemplateError, match=r"unexpected <with> in input"):
        Template.parse("{{ if .A }}{{ else with .B }}{{ end }}")


def test_iter_nodes_and_delete_nodes() -> None:
    tmpl = Template.parse("{{ if .ToolCalls }}<tc>{{ (.X).Y }}{{ end }}tail{{ .Z }}")
    kinds = [type(n).__name__ for n in gotemplate.iter_nodes(tmpl.root)]
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
    fields = [n.ident for n in gotemplate.iter_nodes(tmpl.root) if isinstance(n, FieldNode)]
    assert fields == [["ToolCalls"], ["X"], ["Z"]]
    pruned = tmpl.delete_nodes(lambda n: isinstance(n, TextNode))
    assert str(pruned) == "{{if .ToolCalls}}{{(.X).Y}}{{end}}{{.Z}}"
    assert str(tmpl.root) == "{{if .ToolCalls}}<tc>{{(.X).Y}}{{end}}tail{{.Z}}"


GO_QUIRK_CASES = [
    pytest.param(
        "{{ range $i, $_ := .L }}{{ slice $.L $i }}{{ end }}",
        "[1 2 3][2 3][3]",
        id="slice_by_index",
    ),
    pytest.param("{{ $a := .A }}{{ slice .L $a }}", "[2 3]", id="slice_by_variable"),
    pytest.param(
        '{{ printf "%T %v" (index "ab" 0) (index "ab" 0) }}', "uint8 97", id="string_byte"
    ),
    pytest.param(
        '{{ printf "%+12.0e|%.2v|%#g|%#v" 0 "hello" 1.0 "q" }}',
        '%!e(int=            )|he|1.00000|"q"',
        id="fmt_flags_in_bad_verb",
    ),
]


@pytest.mark.parametrize(("text", "expected"), GO_QUIRK_CASES)
def test_go_quirks(text: str, expected: str) -> None:
    assert render(text, DATA) == expected


@pytest.mark.parametrize(
    "text", ["{{ slice .L .A }}", "{{ range .L }}{{ slice $.L . }}{{ end }}"], ids=["field", "dot"]
)
def test_slice_rejects_interface_typed_index(text: str) -> None:
    # Go's slice (unlike index) does not unwrap an index read out of a map[string]any / []any
    with pytest.raises(TemplateError, match=r"cannot index slice/array with type interface \{\}"):
        render(text, DATA)


def test_long_token_in_parse_error() -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse('{{"s"éelserange}}')
    assert str(info.value) == 'template: :1: unexpected "éelserange"... in operand'
