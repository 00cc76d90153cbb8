"""The lexer and parser (pollama.template.go.lex, .parse): parse errors and the parse tree.
"""

from __future__ import annotations

import pytest

from pollama.template.go import (
    ActionNode,
    BoolNode,
    ChainNode,
    CommandNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    Template,
    TemplateError,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
)

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
        IdentifierNode,
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


def test_else_with_inside_if_is_a_parse_error() -> None:
    with pytest.raises(TemplateError, match=r"unexpected <with> in input"):
        Template.parse("{{ if .A }}{{ else with .B }}{{ end }}")


def test_long_token_in_parse_error() -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse('{{"s"éelserange}}')
    assert str(info.value) == 'template: :1: unexpected "éelserange"... in operand'
