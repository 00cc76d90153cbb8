"""A Go ``text/template`` interpreter written in pure Python.

Ollama renders prompts with Go's ``text/template`` package (option ``missingkey=zero``, plus the
functions ``json``, ``currentDate``, ``yesterdayDate`` and ``toTypeScriptType``). No maintained
Python library implements that language -- the Jinja-style engines differ in syntax *and* in
semantics (Go's truthiness, ``print`` spacing, ``fmt`` number formatting, sorted map ranges,
``<no value>``...) -- so this package is written by hand. It follows the behaviour of Go's
``text/template``, ``text/template/parse``, ``fmt`` and ``encoding/json`` packages so that a
template and its data render to the same bytes as in Ollama.

Public API
----------
``Template.parse(text, name="")`` parses (raises ``TemplateError``), ``Template.execute(data)``
renders. ``with_appended(node)`` + ``response_action()`` build the auto ``{{ .Response }}``,
``Template.from_tree(root)`` a fresh template over a tree; Ollama's own walks of the tree
(``Vars``, the TPL-08 cut, thinking and tool-call tags) live in ``pollama.template.ollama``
and use the parse tree (``Template.root``, node classes below, ``children``/``iter_nodes``).
``go_json(value)`` is the template ``json`` function; ``go_sprint``/``go_sprintf`` are Go's
``fmt.Sprint``/``fmt.Sprintf``.

Parse tree
----------
``Template.root`` is a ``ListNode``; the node classes mirror Go's ``text/template/parse``:
``ListNode(nodes)``, ``TextNode(text)``, ``ActionNode(pipe)``, ``PipeNode(decl, cmds,
is_assign)``, ``CommandNode(args)``, ``IdentifierNode(ident)`` (a function name),
``VariableNode(ident)`` (``$x.A`` -> ``["$x", "A"]``), ``FieldNode(ident)`` (``.A.B`` ->
``["A", "B"]``), ``ChainNode(node, field)`` (``(pipe).A``), ``DotNode``, ``NilNode``,
``BoolNode(value)``, ``NumberNode(text, is_int, is_uint, is_float, int_value, float_value)``,
``StringNode(quoted, text)``, ``IfNode``/``RangeNode``/``WithNode`` (``BranchNode``: ``pipe``,
``list``, ``else_list``; ``else if`` is an ``else_list`` holding one ``IfNode``),
``TemplateNode(name, pipe)`` (``template`` and ``block``), ``BreakNode``, ``ContinueNode``. Every
node has ``pos`` (character offset in the template text), ``line``, ``copy()`` and ``str()`` (Go's
``String()``, the template source rebuilt from the tree). ``iter_nodes(node)`` walks a subtree,
``children(node)`` lists a node's children.

Go version: the semantics are those of a current Go (Ollama's): ``range`` over an integer,
``{{else with}}``, ``range $i, $v = ...`` and ``encoding/json``'s ``\b``/``\f`` escapes included.

Data model (Python value -> Go value)
-------------------------------------
* ``dict`` -> ``map[string]any``: ``.Key`` looks the key up; a missing key gives the zero value
  of ``any`` (nil: prints ``<no value>``, is false); ``range`` and printing visit keys sorted;
  ``json`` sorts keys.
* ``list``/``tuple`` -> ``[]any``; ``str`` -> ``string`` (``len``/``index``/``slice`` count UTF-8
  bytes, as Go does); ``int`` -> ``int``; ``float`` -> ``float64``; ``bool`` -> ``bool``;
  ``None`` -> a nil ``any``.
* Any other object -> a Go struct (pointer): ``.Field`` reads the attribute ``Field``. Only
  names starting with an upper-case letter are exported; an unknown field is an exec error
  ``can't evaluate field X in type T``. A bound method ``.Method`` is called like a Go method.
  Struct field order (for ``fmt``'s ``{a b}`` form and for JSON) is ``__json_fields__`` when the
  class defines it, else the dataclass fields, else the instance ``__dict__`` order.
  ``__json_fields__`` entries are ``"Attr"`` or ``"Attr:jsonname"`` or ``"Attr:jsonname,omitempty"``
  (``"Attr:-"`` leaves the field out of JSON), mirroring Go struct tags.
* Hooks (all optional, on any value including ``dict``/``list`` subclasses):
  ``go_string(self) -> str`` is Go's ``String()`` method (``fmt`` prints it, e.g. Ollama's
  ``.Tools`` and ``.Function.Arguments`` print as JSON); ``go_json(self)`` is ``MarshalJSON``:
  it returns the value to encode instead, or a ``RawJSON`` string inserted verbatim;
  ``__go_type__`` (class attribute, str) is the Go type name used in error messages and ``%T``;
  ``to_typescript_type(self) -> str`` is ``api.ToolProperty.ToTypeScriptType`` (otherwise an
  object with ``Type``/``AnyOf`` attributes is converted by Ollama's rules).

Left out of Go's language on purpose: complex and imaginary constants (no template uses them),
the ``ParseComments``/custom delimiters/``Funcs`` options (Ollama does not use them), channels and
iterator functions for ``range``, ``%#v`` Go-syntax printing (approximated by ``%v``) and pointer
addresses. Deep ``{{template}}`` recursion stops at Python's recursion limit, not at Go's 100000
(the error reads the same).

Errors name the template and position like Go (``template: NAME:LINE: ...`` for parse errors,
``template: NAME:LINE:COL: executing "NAME" at <NODE>: ...`` at run time); their text can differ
from Go's where Go's message depends on static Go types this data model does not have.

Modules, in Go's package order: ``values`` (errors, sentinels, the value model), ``strconv``,
``fmt``, ``jsonenc`` (``encoding/json``), ``lex``, ``parse`` (nodes and parser), ``funcs``,
``exec``, ``template``.
"""

from __future__ import annotations

from pollama.template.go.fmt import go_sprint, go_sprintf, go_sprintln
from pollama.template.go.jsonenc import go_json
from pollama.template.go.parse import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
    children,
    iter_nodes,
    response_action,
)
from pollama.template.go.template import Template
from pollama.template.go.values import NO_VALUE, RawJSON, TemplateError, go_trim_space

__all__ = [
    "NO_VALUE",
    "ActionNode",
    "BoolNode",
    "BranchNode",
    "BreakNode",
    "ChainNode",
    "CommandNode",
    "ContinueNode",
    "DotNode",
    "FieldNode",
    "IdentifierNode",
    "IfNode",
    "ListNode",
    "NilNode",
    "Node",
    "NumberNode",
    "PipeNode",
    "RangeNode",
    "RawJSON",
    "StringNode",
    "Template",
    "TemplateError",
    "TemplateNode",
    "TextNode",
    "VariableNode",
    "WithNode",
    "children",
    "go_json",
    "go_sprint",
    "go_sprintf",
    "go_sprintln",
    "go_trim_space",
    "iter_nodes",
    "response_action",
]
