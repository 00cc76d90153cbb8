"""``Template``: a parsed template, its namespace and its execution."""

from __future__ import annotations

from typing import Any

from pollama.template.go.exec import _State
from pollama.template.go.funcs import _BUILTINS, _OLLAMA_FUNCS, _Func
from pollama.template.go.parse import (
    ListNode,
    Node,
    _Parser,
    _TreeInfo,
)
from pollama.template.go.strconv import _quote
from pollama.template.go.values import MAX_EXEC_DEPTH, NO_VALUE, TemplateError

# ---------------------------------------------------------------------------------------------
# Template
# ---------------------------------------------------------------------------------------------


class _Common:
    """The namespace shared by a template and the templates it defines."""

    __slots__ = ("funcs", "missingkey", "templates")

    def __init__(self, funcs: dict[str, _Func], missingkey: str) -> None:
        self.templates: dict[str, Template] = {}
        self.funcs = funcs
        self.missingkey = missingkey


_MISSINGKEY_OPTIONS = ("zero", "default", "invalid", "error")


class Template:
    """A parsed Go template plus the templates it defines (``{{define}}``/``{{block}}``).

    Build one with ``Template.parse``; ``root`` is the parse tree of this template.
    """

    def __init__(self, name: str, root: ListNode | None, common: _Common, info: _TreeInfo) -> None:
        self.name = name
        self.root = root
        self._common = common
        self._info = info

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, name: str = "", *, missingkey: str = "zero") -> Template:
        """Parse ``text`` as Ollama does (``missingkey=zero``, Ollama's extra functions).

        Raises ``TemplateError`` with Go's message (``template: NAME:LINE: ...``).
        ``missingkey`` is Go's option: ``zero`` (Ollama), ``default``/``invalid`` or ``error``.
        """
        if missingkey not in _MISSINGKEY_OPTIONS:
            raise ValueError(f"unrecognized missingkey option {missingkey!r}")
        funcs = {**_BUILTINS, **_OLLAMA_FUNCS}
        parser = _Parser(name, text, set(funcs))
        trees = parser.parse()
        common = _Common(funcs, missingkey)
        for tname, root in trees.items():
            common.templates[tname] = Template(tname, root, common, parser.info)
        return common.templates[name]

    def _derived(self, root: ListNode) -> Template:
        """A copy of this template (same namespace members, copied) with another root."""
        common = _Common(self._common.funcs, self._common.missingkey)
        for tname, t in self._common.templates.items():
            if tname != self.name:
                common.templates[tname] = Template(tname, t.root, common, t._info)
        new = Template(self.name, root, common, self._info)
        common.templates[self.name] = new
        return new

    # -- execution ----------------------------------------------------------------------------

    def execute(self, data: Any = None) -> str:
        """Render the template with ``data`` as dot (``$``); raises ``TemplateError``."""
        out: list[str] = []
        dot = NO_VALUE if data is None else data
        state = _State(self, dot, out)
        if self.root is None:
            state.errorf(f"{_quote(self.name)} is an incomplete or empty template")
        try:
            state.walk(dot, self.root)
        except RecursionError:
            raise TemplateError(
                f"template: {self.name}: exceeded maximum template depth ({MAX_EXEC_DEPTH})",
                name=self.name,
                phase="exec",
            ) from None
        return "".join(out)

    # -- namespace ----------------------------------------------------------------------------

    def lookup(self, name: str) -> Template | None:
        """The associated template called ``name`` (Go's ``Lookup``)."""
        return self._common.templates.get(name)

    def templates(self) -> list[Template]:
        """This template and every template it defines (Go's ``Templates``)."""
        return list(self._common.templates.values())

    def __str__(self) -> str:
        return str(self.root) if self.root is not None else ""

    def __repr__(self) -> str:
        return f"Template({self.name!r})"

    # -- building new trees ---------------------------------------------------------------------

    def with_appended(self, node: Node) -> Template:
        """A copy whose root has ``node`` appended (Ollama's auto ``{{ .Response }}``)."""
        root = ListNode(self.root.pos if self.root else 0, tree=self._info)
        root.nodes = [*(self.root.nodes if self.root else []), node]
        return self._derived(root)

    @classmethod
    def from_tree(cls, root: ListNode) -> Template:
        """A fresh unnamed template over ``root``: built-in functions only (no ``json``...), no
        ``define``d templates and the default ``missingkey`` option, as Go's
        ``template.New("").AddParseTree("", tree)``."""
        common = _Common(dict(_BUILTINS), "default")
        new = Template("", root, common, _TreeInfo("", ""))
        common.templates[""] = new
        return new

    def tree_info(self) -> _TreeInfo:
        """The parse information this template's nodes refer to (for building new nodes)."""
        return self._info
