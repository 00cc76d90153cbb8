"""The parse tree (Go's ``text/template/parse`` nodes) and the parser."""

from __future__ import annotations

import copy
import dataclasses
import math
from bisect import bisect_right
from collections.abc import Iterator
from typing import Any, NoReturn

from pollama.template.go.lex import (
    _ASSIGN,
    _BLOCK,
    _BOOL,
    _BREAK,
    _CHAR,
    _CHAR_CONSTANT,
    _COMPLEX,
    _CONTINUE,
    _DECLARE,
    _DEFINE,
    _DOT,
    _ELSE,
    _END,
    _EOF,
    _ERROR,
    _FIELD,
    _IDENTIFIER,
    _IF,
    _LEFT_DELIM,
    _LEFT_PAREN,
    _NIL,
    _NUMBER,
    _PIPE,
    _RANGE,
    _RAW_STRING,
    _RIGHT_DELIM,
    _RIGHT_PAREN,
    _SPACE,
    _STRING,
    _TEMPLATE,
    _TEXT,
    _VARIABLE,
    _WITH,
    _Item,
    _Lexer,
)
from pollama.template.go.strconv import (
    _parse_go_float,
    _parse_go_int,
    _quote,
    _unquote,
    _unquote_char,
)
from pollama.template.go.values import TemplateError, _utf8, go_trim_space

# ---------------------------------------------------------------------------------------------
# Parse tree
# ---------------------------------------------------------------------------------------------


class _TreeInfo:
    """What a node needs to report its position: the top-level template name and text."""

    __slots__ = ("_newlines", "parse_name", "text")

    def __init__(self, parse_name: str, text: str) -> None:
        self.parse_name = parse_name
        self.text = text
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]

    def location(self, pos: int) -> tuple[int, int]:
        """(1-based line, 0-based byte column) of a character offset, as Go's ErrorContext."""
        k = bisect_right(self._newlines, pos - 1)
        line_start = self._newlines[k - 1] + 1 if k else 0
        return k + 1, len(_utf8(self.text[line_start:pos]))

    def __deepcopy__(self, memo: dict[int, Any]) -> _TreeInfo:
        return self


@dataclasses.dataclass(eq=False)
class Node:
    """Base of the parse-tree nodes (Go's ``parse.Node``).

    ``pos`` is the character offset of the node in the template text; ``str(node)`` is Go's
    ``Node.String()`` (template source re-created from the tree).
    """

    pos: int
    tree: _TreeInfo | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def copy(self) -> Node:
        """A deep copy of the subtree."""
        return copy.deepcopy(self)

    @property
    def line(self) -> int:
        """1-based line of the node (1 for nodes built outside the parser)."""
        return self.tree.location(self.pos)[0] if self.tree else 1


@dataclasses.dataclass(eq=False)
class ListNode(Node):
    """A sequence of nodes (template body, branch body)."""

    nodes: list[Node] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclasses.dataclass(eq=False)
class TextNode(Node):
    """Literal text between actions (already trimmed by ``{{-``/``-}}``)."""

    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(eq=False)
class PipeNode(Node):
    """A pipeline: optional declarations (``$x :=`` / ``$x =``) and ``|``-separated commands."""

    decl: list[VariableNode] = dataclasses.field(default_factory=list)
    cmds: list[CommandNode] = dataclasses.field(default_factory=list)
    is_assign: bool = False

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + " := "
        return s + " | ".join(str(c) for c in self.cmds)


@dataclasses.dataclass(eq=False)
class ActionNode(Node):
    """A non-control action ``{{ pipeline }}``: prints the value unless it declares variables."""

    pipe: PipeNode | None = None

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclasses.dataclass(eq=False)
class CommandNode(Node):
    """One command of a pipeline: a function, field, variable, constant or (sub-pipeline)."""

    args: list[Node] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        parts = []
        for a in self.args:
            parts.append(f"({a})" if isinstance(a, PipeNode) else str(a))
        return " ".join(parts)


@dataclasses.dataclass(eq=False)
class IdentifierNode(Node):
    """A function name."""

    ident: str = ""

    def __str__(self) -> str:
        return self.ident


@dataclasses.dataclass(eq=False)
class VariableNode(Node):
    """``$``, ``$x`` or ``$x.Field.Chain``: ``ident`` is ``["$x", "Field", "Chain"]``."""

    ident: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclasses.dataclass(eq=False)
class DotNode(Node):
    """The cursor ``.``."""

    def __str__(self) -> str:
        return "."


@dataclasses.dataclass(eq=False)
class NilNode(Node):
    """The untyped ``nil`` constant."""

    def __str__(self) -> str:
        return "nil"


@dataclasses.dataclass(eq=False)
class FieldNode(Node):
    """``.A.B``: ``ident`` is ``["A", "B"]``."""

    ident: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclasses.dataclass(eq=False)
class ChainNode(Node):
    """``(pipeline).A.B`` or ``fn.A``: fields applied to the value of ``node``."""

    node: Node | None = None
    field: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        base = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return base + "".join("." + f for f in self.field)


@dataclasses.dataclass(eq=False)
class BoolNode(Node):
    """``true`` or ``false``."""

    value: bool = False

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclasses.dataclass(eq=False)
class NumberNode(Node):
    """A numeric or character constant, with every Go interpretation that fits."""

    text: str = ""
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    int_value: int = 0
    float_value: float = 0.0

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(eq=False)
class StringNode(Node):
    """A string constant: ``quoted`` as written, ``text`` after unquoting."""

    quoted: str = ""
    text: str = ""

    def __str__(self) -> str:
        return self.quoted


@dataclasses.dataclass(eq=False)
class BranchNode(Node):
    """Common part of ``if``, ``range`` and ``with``; ``else_list`` is ``None`` without else.

    ``{{ else if ... }}`` / ``{{ else with ... }}`` are represented, as in Go, by an
    ``else_list`` holding a single nested ``IfNode`` / ``WithNode``.
    """

    pipe: PipeNode | None = None
    list: ListNode | None = None
    else_list: ListNode | None = None
    keyword: str = dataclasses.field(default="", init=False, repr=False)

    def __str__(self) -> str:
        s = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


@dataclasses.dataclass(eq=False)
class IfNode(BranchNode):
    """``{{if pipeline}} list {{else}} else_list {{end}}``."""

    keyword: str = dataclasses.field(default="if", init=False, repr=False)


@dataclasses.dataclass(eq=False)
class RangeNode(BranchNode):
    """``{{range [$i, $v :=] pipeline}} list {{else}} else_list {{end}}``."""

    keyword: str = dataclasses.field(default="range", init=False, repr=False)


@dataclasses.dataclass(eq=False)
class WithNode(BranchNode):
    """``{{with pipeline}} list {{else}} else_list {{end}}`` (dot becomes the value)."""

    keyword: str = dataclasses.field(default="with", init=False, repr=False)


@dataclasses.dataclass(eq=False)
class TemplateNode(Node):
    """``{{template "name" pipeline}}`` (``pipe`` is ``None`` without a pipeline); ``block``
    also produces one (and defines the template)."""

    name: str = ""
    pipe: PipeNode | None = None

    def __str__(self) -> str:
        s = "{{template " + _quote(self.name)
        if self.pipe is not None:
            s += " " + str(self.pipe)
        return s + "}}"


@dataclasses.dataclass(eq=False)
class BreakNode(Node):
    """``{{break}}`` inside a range."""

    def __str__(self) -> str:
        return "{{break}}"


@dataclasses.dataclass(eq=False)
class ContinueNode(Node):
    """``{{continue}}`` inside a range."""

    def __str__(self) -> str:
        return "{{continue}}"


@dataclasses.dataclass(eq=False)
class _EndNode(Node):
    def __str__(self) -> str:
        return "{{end}}"


@dataclasses.dataclass(eq=False)
class _ElseNode(Node):
    def __str__(self) -> str:
        return "{{else}}"


def response_action() -> ActionNode:
    """A fresh ``{{ .Response }}`` action, the node Ollama appends to templates (TPL-02)."""
    return ActionNode(
        0, pipe=PipeNode(0, cmds=[CommandNode(0, args=[FieldNode(0, ident=["Response"])])])
    )


def _is_empty_tree(n: Node | None) -> bool:
    if n is None:
        return True
    if isinstance(n, ListNode):
        return all(_is_empty_tree(c) for c in n.nodes)
    if isinstance(n, TextNode):
        return go_trim_space(n.text) == ""
    return False


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------

_OPERAND_START = (
    _BOOL,
    _CHAR_CONSTANT,
    _COMPLEX,
    _DOT,
    _FIELD,
    _IDENTIFIER,
    _NUMBER,
    _NIL,
    _RAW_STRING,
    _STRING,
    _VARIABLE,
    _LEFT_PAREN,
)


class _Parser:
    """Builds the trees of one template text (the main one and every define/block)."""

    def __init__(self, name: str, text: str, funcs: set[str]) -> None:
        self.parse_name = name
        self.items = _Lexer(text).run()
        self.info = _TreeInfo(name, text)
        self.funcs = funcs
        self.i = 0
        self.maxread = 0
        self.trees: dict[str, ListNode] = {}
        # per-tree state (saved and restored around define/block bodies)
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.action_line = 0

    # -- tokens -------------------------------------------------------------------------------

    def _fetch(self, idx: int) -> _Item:
        idx = min(idx, len(self.items) - 1)
        self.maxread = max(self.maxread, idx)
        return self.items[idx]

    def next(self) -> _Item:
        tok = self._fetch(self.i)
        self.i += 1
        return tok

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> _Item:
        return self._fetch(self.i)

    def next_non_space(self) -> _Item:
        while True:
            tok = self.next()
            if tok.typ != _SPACE:
                return tok

    def peek_non_space(self) -> _Item:
        tok = self.next_non_space()
        self.backup()
        return tok

    # -- errors -------------------------------------------------------------------------------

    def errorf(self, msg: str) -> NoReturn:
        line = self.items[min(self.maxread, len(self.items) - 1)].line
        raise TemplateError(
            f"template: {self.parse_name}:{line}: {msg}",
            name=self.parse_name,
            line=line,
            phase="parse",
        )

    def unexpected(self, tok: _Item, context: str) -> NoReturn:
        if tok.typ == _ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != tok.line:
                extra = f" in action started at {self.parse_name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf(f"{tok.val}{extra}")
        self.errorf(f"unexpected {tok} in {context}")

    def expect(self, typ: int, context: str) -> _Item:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.unexpected(tok, context)
        return tok

    def expect_one_of(self, t1: int, t2: int, context: str) -> _Item:
        tok = self.next_non_space()
        if tok.typ != t1 and tok.typ != t2:
            self.unexpected(tok, context)
        return tok

    def unquote(self, s: str) -> str:
        try:
            return _unquote(s)
        except ValueError as e:
            self.errorf(str(e))

    # -- trees --------------------------------------------------------------------------------

    def add(self, name: str, root: ListNode) -> None:
        existing = self.trees.get(name)
        if existing is None or _is_empty_tree(existing):
            self.trees[name] = root
            return
        if not _is_empty_tree(root):
            self.errorf(f"template: multiple definition of template {_quote(name)}")

    def _sub_tree(self) -> tuple[list[str], int, int]:
        saved = (self.vars, self.range_depth, self.action_line)
        self.vars, self.range_depth, self.action_line = ["$"], 0, 0
        return saved

    def parse(self) -> dict[str, ListNode]:
        root = ListNode(self.peek().pos, tree=self.info)
        while self.peek().typ != _EOF:
            if self.peek().typ == _LEFT_DELIM:
                save = self.i
                self.next()
                if self.next_non_space().typ == _DEFINE:
                    self.parse_definition()
                    continue
                self.i = save
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                self.errorf(f"unexpected {n}")
            root.nodes.append(n)
        self.add(self.parse_name, root)
        return self.trees

    def parse_definition(self) -> None:
        context = "define clause"
        saved = self._sub_tree()
        tok = self.expect_one_of(_STRING, _RAW_STRING, context)
        name = self.unquote(tok.val)
        self.expect(_RIGHT_DELIM, context)
        root, end = self.item_list()
        if not isinstance(end, _EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add(name, root)
        self.vars, self.range_depth, self.action_line = saved

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos, tree=self.info)
        while self.peek_non_space().typ != _EOF:
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        tok = self.next_non_space()
        if tok.typ == _TEXT:
            return TextNode(tok.pos, text=tok.val, tree=self.info)
        if tok.typ == _LEFT_DELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(tok, "input")

    def action(self) -> Node:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == _BLOCK:
            return self.block_control()
        if typ in (_BREAK, _CONTINUE):
            word = "break" if typ == _BREAK else "continue"
            t2 = self.next_non_space()
            if t2.typ != _RIGHT_DELIM:
                self.unexpected(t2, "{{" + word + "}}")
            if self.range_depth == 0:
                self.errorf("{{" + word + "}} outside {{range}}")
            cls = BreakNode if typ == _BREAK else ContinueNode
            return cls(tok.pos, tree=self.info)
        if typ == _ELSE:
            return self.else_control()
        if typ == _END:
            return _EndNode(self.expect(_RIGHT_DELIM, "end").pos, tree=self.info)
        if typ == _IF:
            return self.control(IfNode, "if")
        if typ == _RANGE:
            return self.control(RangeNode, "range")
        if typ == _TEMPLATE:
            return self.template_control()
        if typ == _WITH:
            return self.control(WithNode, "with")
        self.backup()
        pos = self.peek().pos
        return ActionNode(pos, pipe=self.pipeline("command", _RIGHT_DELIM), tree=self.info)

    def control(self, cls: type[BranchNode], context: str) -> BranchNode:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, _RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, _ElseNode):
                if context == "if" and self.peek().typ == _IF:
                    self.next()
                    else_list = ListNode(nxt.pos, tree=self.info)
                    else_list.nodes.append(self.control(IfNode, "if"))
                elif context == "with" and self.peek().typ == _WITH:
                    self.next()
                    else_list = ListNode(nxt.pos, tree=self.info)
                    else_list.nodes.append(self.control(WithNode, "with"))
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return cls(pipe.pos, pipe=pipe, list=lst, else_list=else_list, tree=self.info)
        finally:
            del self.vars[mark:]

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (_IF, _WITH):
            return _ElseNode(peek.pos, tree=self.info)
        tok = self.expect(_RIGHT_DELIM, "else")
        return _ElseNode(tok.pos, tree=self.info)

    def block_control(self) -> Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, _RIGHT_DELIM)
        saved = self._sub_tree()
        root, end = self.item_list()
        if not isinstance(end, _EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add(name, root)
        self.vars, self.range_depth, self.action_line = saved
        return TemplateNode(tok.pos, name=name, pipe=pipe, tree=self.info)

    def template_control(self) -> Node:
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != _RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, _RIGHT_DELIM)
        return TemplateNode(tok.pos, name=name, pipe=pipe, tree=self.info)

    def template_name(self, tok: _Item, context: str) -> str:
        if tok.typ in (_STRING, _RAW_STRING):
            return self.unquote(tok.val)
        self.unexpected(tok, context)

    def pipeline(self, context: str, end: int) -> PipeNode:
        pipe = PipeNode(self.peek_non_space().pos, tree=self.info)
        while True:  # declarations
            v = self.peek_non_space()
            if v.typ != _VARIABLE:
                break
            save = self.i
            self.next()
            nxt = self.peek_non_space()
            if nxt.typ in (_ASSIGN, _DECLARE):
                pipe.is_assign = nxt.typ == _ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, ident=v.val.split("."), tree=self.info))
                self.vars.append(v.val)
                break
            if nxt.typ == _CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, ident=v.val.split("."), tree=self.info))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (_VARIABLE, _RIGHT_DELIM, _RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            self.i = save
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.typ in _OPERAND_START:
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos, tree=self.info)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == _SPACE:
                continue
            if tok.typ in (_RIGHT_DELIM, _RIGHT_PAREN):
                self.backup()
            elif tok.typ != _PIPE:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == _FIELD:
            chain = ChainNode(self.peek().pos, node=node, tree=self.info)
            while self.peek().typ == _FIELD:
                chain.field.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, ident=str(chain)[1:].split("."), tree=self.info)
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, ident=str(chain).split("."), tree=self.info)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {_quote(str(node))}")
            return chain
        return node

    def term(self) -> Node | None:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == _IDENTIFIER:
            if tok.val not in self.funcs:
                self.errorf(f"function {_quote(tok.val)} not defined")
            return IdentifierNode(tok.pos, ident=tok.val, tree=self.info)
        if typ == _DOT:
            return DotNode(tok.pos, tree=self.info)
        if typ == _NIL:
            return NilNode(tok.pos, tree=self.info)
        if typ == _VARIABLE:
            v = VariableNode(tok.pos, ident=tok.val.split("."), tree=self.info)
            if v.ident[0] not in self.vars:
                self.errorf(f"undefined variable {_quote(v.ident[0])}")
            return v
        if typ == _FIELD:
            return FieldNode(tok.pos, ident=tok.val[1:].split("."), tree=self.info)
        if typ == _BOOL:
            return BoolNode(tok.pos, value=tok.val == "true", tree=self.info)
        if typ in (_CHAR_CONSTANT, _COMPLEX, _NUMBER):
            return self.number(tok)
        if typ == _LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", _RIGHT_PAREN)
        if typ in (_STRING, _RAW_STRING):
            return StringNode(tok.pos, quoted=tok.val, text=self.unquote(tok.val), tree=self.info)
        self.backup()
        return None

    def number(self, tok: _Item) -> NumberNode:
        text = tok.val
        n = NumberNode(tok.pos, text=text, tree=self.info)
        if tok.typ == _CHAR_CONSTANT:
            try:
                decoded, j = _unquote_char(text, 1, "'")
            except (ValueError, IndexError):
                self.errorf("invalid syntax")
            if text[j:] != "'":
                self.errorf(f"malformed character constant: {text}")
            r = ord(decoded)
            n.is_int = n.is_uint = n.is_float = True
            n.int_value = r
            n.float_value = float(r)
            return n
        if tok.typ == _COMPLEX or text.endswith("i"):
            self.errorf(f"complex number constants are not supported: {_quote(text)}")
        u = _parse_go_int(text, signed=False)
        i = _parse_go_int(text, signed=True)
        if u is not None:
            n.is_uint = True
        if i is not None:
            n.is_int = True
            n.int_value = i
            if i == 0:
                n.is_uint = True
        if n.is_int:
            n.is_float = True
            n.float_value = float(n.int_value)
        elif n.is_uint and u is not None:
            n.is_float = True
            n.float_value = float(u)
        else:
            f = _parse_go_float(text)
            if f is not None:
                if not any(c in text for c in ".eEpP"):
                    self.errorf(f"integer overflow: {_quote(text)}")
                n.is_float = True
                n.float_value = f
                if math.isfinite(f) and f == int(f):
                    if -(2**63) <= f < 2**63:
                        n.is_int = True
                        n.int_value = int(f)
                    if 0 <= f < 2**64:
                        n.is_uint = True
        if not (n.is_int or n.is_uint or n.is_float):
            self.errorf(f"illegal number syntax: {_quote(text)}")
        return n


def children(n: Node) -> list[Node]:
    """The child nodes of ``n``: a list's nodes, a branch's pipe, list and else list, an
    action's or template call's pipe, a pipe's commands, a command's arguments (the order
    Ollama's ``thinking.templateVisit`` walks them)."""
    if isinstance(n, ListNode):
        return list(n.nodes)
    if isinstance(n, BranchNode):
        return [c for c in (n.pipe, n.list, n.else_list) if c is not None]
    if isinstance(n, (ActionNode, TemplateNode)):
        return [n.pipe] if n.pipe is not None else []
    if isinstance(n, PipeNode):
        return list(n.cmds)
    if isinstance(n, CommandNode):
        return list(n.args)
    return []


def iter_nodes(n: Node | None) -> Iterator[Node]:
    """Every node of a subtree, depth first, parents before children (lists, branch pipes and
    bodies, action/template pipes, commands, arguments and the operand of a chain)."""
    if n is None:
        return
    yield n
    if isinstance(n, ChainNode) and n.node is not None:
        yield from iter_nodes(n.node)
    for c in children(n):
        yield from iter_nodes(c)
