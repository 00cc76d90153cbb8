"""Execution of Go templates (pollama.template.go.exec): rendering, exec errors, Go >= 1.22
behaviour, the missingkey option, objects and Go's quirks.
"""

from __future__ import annotations

import pytest

from pollama.template.go import (
    Template,
    TemplateError,
)
from tests.unit.gotemplate_data import (
    DATA,
    Args,
    Message,
    ToolCall,
    ToolCallFunction,
    ollama_values,
    render,
    weather_tools,
)

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
