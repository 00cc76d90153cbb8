"""Execution of a parse tree (Go's ``text/template`` ``state``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from pollama.template.go.fmt import _has_stringer, go_sprint
from pollama.template.go.funcs import _BUILTINS, _Func, _IfaceIndex
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
)
from pollama.template.go.strconv import _quote
from pollama.template.go.values import (
    _MISSING,
    MAX_EXEC_DEPTH,
    MAX_EXEC_STEPS,
    MAX_OUTPUT,
    NO_VALUE,
    TemplateError,
    _Break,
    _CallError,
    _Continue,
    _go_type_name,
    _is_exported,
    _kind,
    _sorted_keys,
    _struct_attrs,
    _truth,
)

if TYPE_CHECKING:
    from pollama.template.go.template import Template


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


class _Budget:
    """What one execution may still do (shared by the templates it calls)."""

    __slots__ = ("chars", "steps")

    def __init__(self) -> None:
        self.steps = MAX_EXEC_STEPS
        self.chars = MAX_OUTPUT


class _State:
    """One execution of a template (Go's ``state``)."""

    def __init__(self, tmpl: Template, dot: Any, out: list[str], depth: int = 0,
                 budget: _Budget | None = None) -> None:
        self.tmpl = tmpl
        self.vars: list[list[Any]] = [["$", dot, False]]  # name, value, interface-typed
        self.out = out
        self.depth = depth
        self.budget = budget or _Budget()
        self.node: Node | None = None
        self.missingkey = tmpl._common.missingkey
        self.funcs = tmpl._common.funcs
        # the current range element when it came out of a []any / map[string]any: its static
        # Go type is interface {} (only used to word "can't evaluate field" errors like Go)
        self.iface_dot: Any = _MISSING
        self.last_from_map = False  # did the last field evaluation read a map?

    # -- errors and variables -----------------------------------------------------------------

    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, msg: str) -> NoReturn:
        name = self.tmpl.name
        node = self.node
        if node is None:
            raise TemplateError(f"template: {name}: {msg}", name=name, phase="exec")
        info = node.tree or self.tmpl._info
        line, col = info.location(node.pos)
        raise TemplateError(
            f"template: {info.parse_name}:{line}:{col}: executing {_quote(name)} at <{node}>: "
            f"{msg}",
            name=name,
            line=line,
            col=col,
            phase="exec",
        )

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                var[2] = False
                return
        self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str) -> Any:
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        self.errorf(f"undefined variable: {name}")

    # -- walking ------------------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.budget.chars -= len(text)
        if self.budget.chars < 0:
            self.errorf(f"the output exceeds {MAX_OUTPUT} characters")
        self.out.append(text)

    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        self.budget.steps -= 1
        if self.budget.steps < 0:
            self.errorf(f"exceeded {MAX_EXEC_STEPS} execution steps")
        if isinstance(node, TextNode):
            self.write(node.text)
        elif isinstance(node, ActionNode):
            assert node.pipe is not None
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, IfNode):
            self.walk_if_or_with(False, dot, node)
        elif isinstance(node, WithNode):
            self.walk_if_or_with(True, dot, node)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        else:
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, is_with: bool, dot: Any, node: BranchNode) -> None:
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                assert node.list is not None
                if is_with:  # with's dot is the pipeline's (concrete) value
                    saved_iface, self.iface_dot = self.iface_dot, _MISSING
                    try:
                        self.walk(val, node.list)
                    finally:
                        self.iface_dot = saved_iface
                else:
                    self.walk(dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, r: RangeNode) -> None:
        self.at(r)
        assert r.pipe is not None and r.list is not None
        pipe, body = r.pipe, r.list  # narrowed, for the closure below
        outer = self.mark()
        try:
            val = self.eval_pipeline(dot, r.pipe)
            mark = self.mark()
            decl = r.pipe.decl

            def one(index: Any, elem: Any) -> None:
                elem_iface = any_elems and _kind(elem) != "struct"
                if decl:
                    if pipe.is_assign:
                        self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
                    else:
                        self.vars[-1][1:] = [elem, elem_iface]
                if len(decl) > 1:
                    if pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.vars[-2][1:] = [index, False]
                saved_iface = self.iface_dot
                self.iface_dot = elem if elem_iface else _MISSING
                try:
                    self.walk(elem, body)
                except _Continue:
                    pass
                finally:
                    self.iface_dot = saved_iface
                    self.pop(mark)

            kind = _kind(val)
            any_elems = type(val) in (list, tuple, dict)
            try:
                if kind == "slice":
                    if len(val):
                        for i, elem in enumerate(val):
                            one(i, elem)
                        return
                elif kind == "map":
                    if len(val):
                        for k in _sorted_keys(val):
                            one(k, val[k])
                        return
                elif kind == "int":
                    if len(decl) > 1:
                        self.errorf(
                            f"can't use {go_sprint(val)} to iterate over more than one variable"
                        )
                    if val > 0:
                        for i in range(val):
                            one(NO_VALUE, i)
                        return
                elif kind != "invalid":
                    self.errorf(f"range can't iterate over {go_sprint(val)}")
            except _Break:
                return
            if r.else_list is not None:
                self.walk(dot, r.else_list)
        finally:
            self.pop(outer)

    def walk_template(self, dot: Any, t: TemplateNode) -> None:
        self.at(t)
        tmpl = self.tmpl.lookup(t.name)
        if tmpl is None or tmpl.root is None:
            self.errorf(f"template {_quote(t.name)} not defined")
        if self.depth >= MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")
        dot = self.eval_pipeline(dot, t.pipe)
        new = _State(tmpl, dot, self.out, self.depth + 1, self.budget)
        new.walk(dot, tmpl.root)

    def print_value(self, node: Node, val: Any) -> None:
        self.at(node)
        if val is NO_VALUE:
            self.write("<no value>")
            return
        if _kind(val) == "func" and not _has_stringer(val):
            self.errorf(f"can't print {node} of type {_go_type_name(val)}")
        self.write(go_sprint(val))

    # -- evaluation ---------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any:
        if pipe is None:
            return NO_VALUE
        self.at(pipe)
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface{}: dig down to the invalid value
                value = NO_VALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value, False])
        return value

    def not_a_function(self, args: list[Node] | None, final: Any) -> None:
        if (args is not None and len(args) > 1) or final is not _MISSING:
            assert args is not None
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {_quote(str(first))}")

    def ideal_constant(self, n: NumberNode) -> Any:
        self.at(n)
        text = n.text
        is_hex_int = (
            len(text) > 2
            and text[0] == "0"
            and text[1] in "xX"
            and not any(c in "pP" for c in text)
        )
        if n.is_float and not is_hex_int and text[:1] != "'" and any(c in ".eEpP" for c in text):
            return n.float_value
        if n.is_int:
            return n.int_value
        if n.is_uint:
            self.errorf(f"{text} overflows int")
        return NO_VALUE

    def eval_field_node(
        self, dot: Any, field: FieldNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(field)
        iface = self.iface_dot is not _MISSING and dot is self.iface_dot
        return self.eval_field_chain(dot, dot, field, field.ident, args, final, iface)

    def eval_chain_node(
        self, dot: Any, chain: ChainNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(chain)
        if not chain.field:
            self.errorf("internal error: no fields in evalChainNode")
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        assert chain.node is not None
        pipe = self.eval_arg(dot, "", chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.field, args, final)

    def eval_variable_node(
        self, dot: Any, var: VariableNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(
        self,
        dot: Any,
        receiver: Any,
        node: Node,
        ident: list[str],
        args: list[Node] | None,
        final: Any,
        iface: bool = False,
    ) -> Any:
        # iface: the receiver came out of a map[string]any: its static Go type is interface {}
        for name in ident[:-1]:
            from_map = _kind(receiver) == "map"
            receiver = self.eval_field(dot, name, node, None, _MISSING, receiver, iface)
            iface = from_map
        return self.eval_field(dot, ident[-1], node, args, final, receiver, iface)

    def eval_field(
        self,
        dot: Any,
        name: str,
        node: Node,
        args: list[Node] | None,
        final: Any,
        receiver: Any,
        iface: bool = False,
    ) -> Any:
        if receiver is NO_VALUE:
            if self.missingkey == "error":
                self.errorf(f"nil data; no entry for key {_quote(name)}")
            return NO_VALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        kind = _kind(receiver)
        if kind == "map":
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            self.last_from_map = True
            if name in receiver:
                return receiver[name]
            if self.missingkey == "zero":
                return None
            if self.missingkey == "error":
                self.errorf(f"map has no entry for key {_quote(name)}")
            return NO_VALUE
        if kind == "struct":
            self.last_from_map = False
            if _is_exported(name):
                attr = getattr(receiver, name, _MISSING)
                if attr is not _MISSING:
                    if inspect.ismethod(attr):
                        return self.eval_method(dot, attr, node, name, args, final)
                    if has_args:
                        self.errorf(f"{name} has arguments but cannot be invoked as function")
                    return attr
            elif hasattr(receiver, name) and name in _struct_attrs(receiver):
                self.errorf(
                    f"{name} is an unexported field of struct type {_go_type_name(receiver)}"
                )
        typ = "interface {}" if iface else _go_type_name(receiver)
        self.errorf(f"can't evaluate field {name} in type {typ}")

    def eval_method(
        self,
        dot: Any,
        method: Callable[..., Any],
        node: Node,
        name: str,
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        arg_nodes = args[1:] if args else []
        argv = [self.eval_arg(dot, "A", a) for a in arg_nodes]
        if final is not _MISSING:
            argv.append(self.validate_type(final, "A"))
        try:
            sig = inspect.signature(method)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            params = list(sig.parameters.values())
            variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
            fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            if variadic and len(argv) < len(fixed):
                self.errorf(
                    f"wrong number of args for {name}: want at least {len(fixed)} got {len(argv)}"
                )
            if not variadic and len(argv) != len(fixed):
                self.errorf(f"wrong number of args for {name}: want {len(fixed)} got {len(argv)}")
        try:
            return method(*argv)
        except Exception as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")

    def eval_function(
        self,
        dot: Any,
        node: IdentifierNode,
        cmd: Node,
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        self.at(node)
        name = node.ident
        fn = self.funcs.get(name)
        if fn is None:
            self.errorf(f"{_quote(name)} is not a defined function")
        return self.eval_call(dot, fn, cmd, name, args, final)

    def eval_call(
        self,
        dot: Any,
        fn: _Func,
        node: Node,
        name: str,
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        arg_nodes = args[1:] if args is not None else []
        num_in = len(arg_nodes) + (final is not _MISSING)
        num_fixed = len(fn.params)
        if fn.variadic is not None:
            if num_in < num_fixed:
                self.errorf(
                    f"wrong number of args for {name}: want at least {num_fixed} "
                    f"got {len(arg_nodes)}"
                )
        elif num_in != num_fixed:
            self.errorf(f"wrong number of args for {name}: want {num_fixed} got {num_in}")

        if name in ("and", "or") and fn is _BUILTINS[name]:
            v: Any = NO_VALUE
            for a in arg_nodes:
                v = self.eval_arg(dot, "V", a)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = self.validate_type(final, "V")
            return v

        def kind_at(i: int) -> str:
            return fn.params[i] if i < num_fixed else (fn.variadic or "A")

        argv = [self.eval_arg(dot, kind_at(i), a) for i, a in enumerate(arg_nodes)]
        if name == "slice" and fn is _BUILTINS[name]:
            # Go's slice does not unwrap interface-typed indexes (index does)
            for i, a in enumerate(arg_nodes[1:], start=1):
                if self.arg_is_iface(dot, a, argv[i]):
                    argv[i] = _IfaceIndex(argv[i])
        if final is not _MISSING:
            argv.append(self.validate_type(final, kind_at(num_in - 1)))
        try:
            return fn.impl(*argv)
        except _CallError as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")

    def arg_is_iface(self, dot: Any, node: Node, value: Any) -> bool:
        """Whether an argument just evaluated has the static Go type interface {}."""
        if value is NO_VALUE:
            return False
        if isinstance(node, (FieldNode, ChainNode)) or (
            isinstance(node, VariableNode) and len(node.ident) > 1
        ):
            return self.last_from_map
        if isinstance(node, VariableNode):
            return next((v[2] for v in reversed(self.vars) if v[0] == node.ident[0]), False)
        if isinstance(node, DotNode):
            return self.iface_dot is not _MISSING and dot is self.iface_dot
        return False

    def validate_type(self, value: Any, kind: str) -> Any:
        """Go's validateType for the parameter kinds V, A, S ("" = untyped)."""
        if kind == "S":
            if value is NO_VALUE:
                self.errorf("invalid value; expected string")
            if not isinstance(value, str):
                self.errorf(f"wrong type for value; expected string; got {_go_type_name(value)}")
            return value
        if kind == "A" and value is NO_VALUE:
            return None
        return value

    def eval_arg(self, dot: Any, kind: str, n: Node) -> Any:
        self.at(n)
        if isinstance(n, DotNode):
            return self.validate_type(dot, kind)
        if isinstance(n, NilNode):
            if kind == "S":
                self.errorf("cannot assign nil to string")
            return None if kind == "A" else NO_VALUE
        if isinstance(n, FieldNode):
            return self.validate_type(self.eval_field_node(dot, n, [n], _MISSING), kind)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, n, None, _MISSING), kind)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), kind)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, None, _MISSING), kind)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, n, None, _MISSING), kind)
        if kind == "S":
            if isinstance(n, StringNode):
                return n.text
            self.errorf(f"expected string; found {n}")
        if isinstance(n, BoolNode):
            return n.value
        if isinstance(n, NumberNode):
            return self.ideal_constant(n)
        if isinstance(n, StringNode):
            return n.text
        self.errorf(f"can't handle assignment of {n} to empty interface argument")
