"""Ollama's `template.Execute` on top of the Go template interpreter: messages → prompt text.

What a model's Go TEMPLATE sees (spec TPL-02…TPL-09), as Ollama's `template/template.go` builds it:

* Parsing appends `{{ .Response }}` when the template references neither `.Messages` nor
  `.Response` (TPL-02).
* Messages-style templates (they reference `.Messages`) run once with `.System` (every system
  message joined by a blank line), `.Messages` (consecutive same-role messages merged, except
  `tool` ones: TPL-07), `.Tools`, `.Response` (`""`), `.Think`, `.ThinkLevel`, `.IsThinkSet`.
* Legacy templates (`.System`/`.Prompt`/`.Response`) run once per completed turn; the last turn
  runs a copy cut at the first `.Response`, so the prompt ends where the answer starts (TPL-08).
* Fill-in-middle (a prompt and a suffix) runs with `.Prompt`, `.Suffix`, `.Response` (TPL-09).

Messages, tools and tool calls are the structs Ollama hands its templates: `{{ .Tools }}`, each
tool, `.Function.Arguments` and `.Parameters.Properties` print as JSON (Go's `String()`
methods), `json` gives Go's `encoding/json` bytes (sorted map keys, Ollama's field order and
`omitempty` tags), and JSON numbers inside arguments/schemas are float64 as Go decodes them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pollama.errors import PollamaError
from pollama.template.go import (
    ActionNode,
    BranchNode,
    FieldNode,
    IfNode,
    ListNode,
    Node,
    PipeNode,
    RangeNode,
    RawJSON,
    Template,
    TemplateError,
    TemplateNode,
    TextNode,
    VariableNode,
    children,
    go_json,
    go_trim_space,
    response_action,
)

__all__ = [
    "TemplateRenderError",
    "cut_at_response",
    "delete_nodes",
    "identifiers",
    "infer_thinking_tags",
    "parse",
    "parse_tool_call_tag",
    "references",
    "render_go_chat",
    "render_go_generate",
    "template_vars",
    "think_values",
    "thinking_tags",
    "tool_call_tag",
]


class TemplateRenderError(PollamaError):
    """A Go template that does not parse or fails while executing (Ollama answers 500)."""


# -- parsing ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def parse(text: str) -> Template:
    """Parse a TEMPLATE as Ollama's `template.Parse` does, with the auto `{{ .Response }}`."""
    try:
        template = Template.parse(text)
        if not references(template, "Messages") and not references(template, "Response"):
            template = template.with_appended(response_action())
    except TemplateError as err:
        raise TemplateRenderError(str(err)) from None
    return template


@functools.lru_cache(maxsize=64)
def _cut(text: str) -> Template:
    return cut_at_response(parse(text))


def _template(template: str | Template) -> Template:
    return parse(template) if isinstance(template, str) else template


def thinking_tags(template: str | Template) -> tuple[str, str] | None:
    """The opening/closing thinking tags a template wraps `.Thinking` in (TPL-14), or None."""
    try:
        opening, closing = infer_thinking_tags(_template(template))
    except TemplateRenderError:
        return None
    return (opening, closing) if opening and closing else None


def tool_call_tag(template: str | Template) -> str:
    """The text a model writes before its tool calls (GF-20): `<tool_call>`, `[TOOL_CALLS]`, `{`."""
    try:
        return parse_tool_call_tag(_template(template))
    except TemplateRenderError:
        return "{"


# -- Ollama's tree walks (template.go, thinking/template.go, tools/template.go) ---------------


def identifiers(template: Template) -> list[str]:
    """Every field and variable name, as Ollama's ``template.Identifiers`` walks them.

    Walks the root of every associated template; ``.Function.Name`` contributes
    ``Function`` and ``Name``, ``$.Messages`` contributes ``$`` and ``Messages``. Like
    Ollama, a ``{{template "x"}}`` without a pipeline is an error
    (``TemplateError("undefined template specified")``).
    """
    names: list[str] = []
    for t in template.templates():
        if t.root is not None:
            for n in t.root.nodes:
                names.extend(_identifiers(n))
    return names


def template_vars(template: Template) -> list[str]:
    """Ollama's ``Template.Vars``: the identifiers, lower-cased, unique, sorted."""
    return sorted({n.lower() for n in identifiers(template)})


def references(template: Template, name: str) -> bool:
    """Whether the template references ``name`` (``"Messages"`` or ``".Messages"``),
    case-insensitively, as Ollama's ``slices.Contains(vars, "messages")`` checks."""
    return name.lstrip(".").lower() in template_vars(template)


def delete_nodes(template: Template, fn: Callable[[Node], bool]) -> ListNode | None:
    """Ollama's ``deleteNode`` on a copy of the root: walk it, dropping the nodes for which
    ``fn`` returns true (``fn`` sees list, branch, action, pipe and argument nodes)."""
    if template.root is None:
        return None
    result = _delete_node(template.root.copy(), fn)
    return result if isinstance(result, ListNode) else None


def cut_at_response(template: Template) -> Template:
    """The template Ollama executes for the last turn of a legacy prompt (TPL-08).

    Everything after the first ``.Response`` field is removed (the field itself stays),
    recursively through control structures, exactly as Ollama's ``deleteNode``. As in
    Ollama the result is a fresh template: built-in functions only (no ``json``...), no
    ``define``d templates and the default ``missingkey`` option.
    """
    cut = False

    def fn(n: Node) -> bool:
        nonlocal cut
        if isinstance(n, FieldNode) and "Response" in n.ident:
            cut = True
            return False
        return cut

    root = delete_nodes(template, fn) or ListNode(0, tree=template.tree_info())
    return Template.from_tree(root)


def infer_thinking_tags(template: Template) -> tuple[str, str]:
    """Ollama's ``thinking.InferTags`` (TPL-14): the trimmed first/last text around the
    ``{{ .Thinking }}`` inside a ``range`` over ``.Messages``; ``("", "")`` if none."""
    opening = closing = ""
    ancestors: list[Node] = []

    def enter(n: Node) -> None:
        nonlocal opening, closing
        if isinstance(n, FieldNode) and n.ident and n.ident[0] == "Thinking":
            rng = next((a for a in reversed(ancestors) if isinstance(a, RangeNode)), None)
            if rng is None or not _range_uses_field(rng, "Messages"):
                return
            lst = next((a for a in reversed(ancestors) if isinstance(a, ListNode)), None)
            if lst is not None and lst.nodes:
                if isinstance(lst.nodes[0], TextNode):
                    opening = go_trim_space(lst.nodes[0].text)
                if isinstance(lst.nodes[-1], TextNode):
                    closing = go_trim_space(lst.nodes[-1].text)

    def visit(n: Node | None) -> None:
        if n is None:
            return
        ancestors.append(n)
        enter(n)
        for c in children(n):
            visit(c)
        ancestors.pop()

    visit(template.root)
    return opening, closing


def parse_tool_call_tag(template: Template) -> str:
    """Ollama's ``tools.parseTag`` (GF-20): the first non-blank text inside the
    ``{{ if .ToolCalls }}`` block, cut before any ``{`` and trimmed; ``"{"`` if none."""
    if template.root is None:
        return "{"
    tc = _find_tool_call_node(template.root.nodes)
    if tc is None or tc.list is None:
        return "{"
    tn = _find_text_node(tc.list.nodes)
    if tn is None:
        return "{"
    tag = tn.text.replace("\r\n", "\n").split("{", 1)[0]
    tag = go_trim_space(tag)
    return tag or "{"


def _identifiers(n: Node | None) -> list[str]:
    if isinstance(n, ListNode):
        return [i for c in n.nodes for i in _identifiers(c)]
    if isinstance(n, TemplateNode):
        if n.pipe is None:
            raise TemplateError("undefined template specified", phase="parse")
        return _identifiers(n.pipe)
    if isinstance(n, ActionNode):
        if n.pipe is None:
            raise TemplateError("undefined action in template", phase="parse")
        return _identifiers(n.pipe)
    if isinstance(n, BranchNode):
        if n.pipe is None:
            raise TemplateError("undefined branch", phase="parse")
        names = _identifiers(n.pipe)
        for lst in (n.list, n.else_list):
            if lst is not None:
                names.extend(_identifiers(lst))
        return names
    if isinstance(n, PipeNode):
        return [i for c in n.cmds for a in c.args for i in _identifiers(a)]
    if isinstance(n, (FieldNode, VariableNode)):
        return list(n.ident)
    return []


class _CutPanic(TemplateError):
    pass


def _delete_node(n: Node, fn: Callable[[Node], bool]) -> Node | None:
    """Ollama's deleteNode (template.go), node for node."""
    if fn(n):
        return None
    if isinstance(n, ListNode):
        kept = []
        for c in n.nodes:
            r = _delete_node(c, fn)
            if r is not None:
                kept.append(r)
        n.nodes = kept
        return n
    if isinstance(n, BranchNode):
        # Go walks the embedded BranchNode value (the predicate sees it too), then List and
        # ElseList; a deleted list there is a nil-interface conversion panic in Ollama.
        if fn(n):
            raise _CutPanic("interface conversion: parse.Node is nil, not *parse.BranchNode")
        assert n.list is not None
        lst = _delete_node(n.list, fn)
        if lst is None:
            raise _CutPanic("interface conversion: parse.Node is nil, not *parse.ListNode")
        n.list = cast(ListNode, lst)  # deleteNode keeps a list node or drops it
        if n.else_list is not None:
            el = _delete_node(n.else_list, fn)
            if el is None:
                raise _CutPanic("interface conversion: parse.Node is nil, not *parse.ListNode")
            n.else_list = cast(ListNode, el)
        return n
    if isinstance(n, ActionNode):
        assert n.pipe is not None
        p = _delete_node(n.pipe, fn)
        if p is None:
            return None
        n.pipe = cast(PipeNode, p)  # deleteNode keeps a pipe node or drops it
        return n
    if isinstance(n, PipeNode):
        commands = []
        for c in n.cmds:
            args = []
            for a in c.args:
                r = _delete_node(a, fn)
                if r is not None:
                    args.append(r)
            if not args:
                return None
            c.args = args
            commands.append(c)
        if not commands:
            return None
        n.cmds = commands
        return n
    return n





def _range_uses_field(r: RangeNode, field: str) -> bool:
    found = False

    def visit(n: Node) -> None:
        nonlocal found
        if isinstance(n, FieldNode) and n.ident and n.ident[0] == field:
            found = True
        for c in children(n):
            visit(c)

    if r.pipe is not None:
        visit(r.pipe)
    return found


def _find_tool_call_node(nodes: list[Node]) -> IfNode | None:
    def is_tool_calls(n: IfNode) -> bool:
        return any(
            isinstance(a, FieldNode) and "ToolCalls" in a.ident
            for c in (n.pipe.cmds if n.pipe else [])
            for a in c.args
        )

    for n in nodes:
        if isinstance(n, IfNode) and is_tool_calls(n):
            return n
        if isinstance(n, BranchNode):
            for lst in (n.list, n.else_list):
                if lst is not None:
                    found = _find_tool_call_node(lst.nodes)
                    if found is not None:
                        return found
        elif isinstance(n, ListNode):
            found = _find_tool_call_node(n.nodes)
            if found is not None:
                return found
    return None


def _find_text_node(nodes: list[Node]) -> TextNode | None:
    for n in nodes:
        if isinstance(n, TextNode):
            if go_trim_space(n.text) == "":
                continue
            return n
        if isinstance(n, BranchNode):
            for lst in (n.list, n.else_list):
                if lst is not None:
                    found = _find_text_node(lst.nodes)
                    if found is not None:
                        return found
            return None
        if isinstance(n, ListNode):
            found = _find_text_node(n.nodes)
            if found is not None:
                return found
        elif isinstance(n, ActionNode):
            return None
    return None


# -- Go values -------------------------------------------------------------------------------


def _go_number(value: Any) -> Any:
    """A decoded JSON value as Go's `any` holds it: every number a float64."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _go_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_number(v) for v in value]
    return value


class NilSlice(list):  # type: ignore[type-arg]
    """A nil Go slice: prints `[]`, is empty and false, encodes as JSON `null`."""

    def go_json(self) -> Any:
        return None


def _slice(value: list[Any] | None) -> list[Any]:
    return NilSlice() if value is None else value


def _ordered_json(items: list[tuple[str, Any]]) -> RawJSON:
    return RawJSON("{" + ",".join(go_json(k) + ":" + go_json(v) for k, v in items) + "}")


class TemplateArgs(dict):  # type: ignore[type-arg]
    """`templateArgs`: a `map[string]any` whose `String()` is its JSON (`{}` when nil)."""

    __go_type__ = "template.templateArgs"

    def __init__(self, value: dict[str, Any] | None) -> None:
        super().__init__(value or {})
        self.nil = value is None

    def go_string(self) -> str:
        return "{}" if self.nil else go_json(dict(self))

    def go_json(self) -> Any:
        return None if self.nil else dict(self)


class TemplateProperties(TemplateArgs):
    """`templateProperties`: `map[string]api.ToolProperty`, printed as JSON."""

    __go_type__ = "template.templateProperties"


class PropertyType(list):  # type: ignore[type-arg]
    """`api.PropertyType`: one type prints and encodes as a string, several as a list."""

    __go_type__ = "api.PropertyType"

    def go_string(self) -> str:
        if not self:
            return ""
        if len(self) == 1:
            return str(self[0])
        return "[" + " ".join(str(t) for t in self) + "]"

    def go_json(self) -> Any:
        return self[0] if len(self) == 1 else list(self)


class ToolPropertiesMap:
    """`*api.ToolPropertiesMap`: nested properties, encoded in their given order.

    A struct, as in Go (templates cannot range over it); never JSON-empty once set.
    """

    __go_type__ = "*api.ToolPropertiesMap"

    def __init__(self, items: list[tuple[str, ToolProperty]]) -> None:
        self._items = items

    def go_json(self) -> Any:
        return _ordered_json(self._items)


_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}


@dataclass
class ToolProperty:
    """`api.ToolProperty`, the JSON-schema subset Ollama keeps for each parameter."""

    __go_type__ = "api.ToolProperty"
    __json_fields__ = ("AnyOf:anyOf,omitempty", "Type:type,omitempty", "Items:items,omitempty",
                       "Description:description,omitempty", "Enum:enum,omitempty",
                       "Properties:properties,omitempty", "Required:required,omitempty")

    AnyOf: list[ToolProperty] = field(default_factory=NilSlice)
    Type: PropertyType = field(default_factory=PropertyType)
    Items: Any = None
    Description: str = ""
    Enum: list[Any] = field(default_factory=NilSlice)
    Properties: ToolPropertiesMap | None = None
    Required: list[str] = field(default_factory=NilSlice)

    def to_typescript_type(self) -> str:
        """`ToolProperty.ToTypeScriptType`, which Ollama's `toTypeScriptType` calls."""
        if self.AnyOf:
            return " | ".join(p.to_typescript_type() for p in self.AnyOf)
        if not self.Type:
            return "any"
        return " | ".join(_TS_TYPES.get(str(t), "any") for t in self.Type)


@dataclass
class TemplateToolFunctionParameters:
    __go_type__ = "template.templateToolFunctionParameters"
    __json_fields__ = ("Type:type", "Defs:$defs,omitempty", "Items:items,omitempty",
                       "Required:required,omitempty", "Properties:properties")

    Type: str = ""
    Defs: Any = None
    Items: Any = None
    Required: list[str] = field(default_factory=NilSlice)
    Properties: TemplateProperties = field(default_factory=lambda: TemplateProperties(None))


@dataclass
class TemplateToolFunction:
    __go_type__ = "template.templateToolFunction"
    __json_fields__ = ("Name:name", "Description:description", "Parameters:parameters")

    Name: str = ""
    Description: str = ""
    Parameters: TemplateToolFunctionParameters = field(
        default_factory=TemplateToolFunctionParameters)


@dataclass
class TemplateTool:
    """One entry of `.Tools`; `{{ . }}` prints its JSON."""

    __go_type__ = "template.templateTool"
    __json_fields__ = ("Type:type", "Items:items,omitempty", "Function:function")

    Type: str = ""
    Items: Any = None
    Function: TemplateToolFunction = field(default_factory=TemplateToolFunction)

    def go_string(self) -> str:
        return go_json(self)


class TemplateTools(list):  # type: ignore[type-arg]
    """`.Tools`: prints as the JSON array of the tools (`null` when the request had none)."""

    __go_type__ = "template.templateTools"

    def __init__(self, tools: list[TemplateTool] | None = None) -> None:
        super().__init__(tools or [])
        self.nil = tools is None

    def go_string(self) -> str:
        return go_json(self.go_json())

    def go_json(self) -> Any:
        return None if self.nil else list(self)


@dataclass
class TemplateToolCallFunction:
    __go_type__ = "template.templateToolCallFunction"

    Index: int = 0
    Name: str = ""
    Arguments: TemplateArgs = field(default_factory=lambda: TemplateArgs(None))


@dataclass
class TemplateToolCall:
    __go_type__ = "template.templateToolCall"

    ID: str = ""
    Function: TemplateToolCallFunction = field(default_factory=TemplateToolCallFunction)


@dataclass
class TemplateMessage:
    """One entry of `.Messages` (Ollama's `templateMessage`)."""

    __go_type__ = "*template.templateMessage"

    Role: str = ""
    Content: str = ""
    Thinking: str = ""
    Images: list[bytes] = field(default_factory=NilSlice)
    ToolCalls: list[TemplateToolCall] = field(default_factory=NilSlice)
    ToolName: str = ""
    ToolCallID: str = ""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return NilSlice()
    return [v for v in value if isinstance(v, str)]


def _property_type(value: Any) -> PropertyType:
    if isinstance(value, str):
        return PropertyType([value])
    if isinstance(value, list):
        return PropertyType(v for v in value if isinstance(v, str))
    return PropertyType()


def _tool_property(raw: Any) -> ToolProperty:
    """Decode one property as `api.ToolProperty` does (unknown schema keys are dropped)."""
    raw = _dict(raw)
    any_of = raw.get("anyOf")
    props = raw.get("properties")
    enum = raw.get("enum")
    return ToolProperty(
        AnyOf=_slice([_tool_property(p) for p in any_of] if isinstance(any_of, list) else None),
        Type=_property_type(raw.get("type")),
        Items=_go_number(raw.get("items")),
        Description=_str(raw.get("description")),
        Enum=_slice(_go_number(enum) if isinstance(enum, list) else None),
        Properties=(ToolPropertiesMap([(k, _tool_property(v)) for k, v in props.items()])
                    if isinstance(props, dict) else None),
        Required=_strings(raw.get("required")),
    )


def convert_tools(tools: list[Any] | None) -> TemplateTools:
    """Request `tools` → `.Tools` (Ollama's `convertToolsForTemplate`)."""
    if tools is None:
        return TemplateTools(None)
    out = TemplateTools([])
    for raw in tools:
        tool = _dict(raw)
        fn = _dict(tool.get("function"))
        params = _dict(fn.get("parameters"))
        props = params.get("properties")
        out.append(TemplateTool(
            Type=_str(tool.get("type")),
            Items=_go_number(tool.get("items")),
            Function=TemplateToolFunction(
                Name=_str(fn.get("name")),
                Description=_str(fn.get("description")),
                Parameters=TemplateToolFunctionParameters(
                    Type=_str(params.get("type")),
                    Defs=_go_number(params.get("$defs")),
                    Items=_go_number(params.get("items")),
                    Required=_strings(params.get("required")),
                    Properties=TemplateProperties(
                        {k: _tool_property(v) for k, v in props.items()}
                        if isinstance(props, dict) else None),
                ),
            ),
        ))
    return out


def _arguments(value: Any) -> TemplateArgs:
    if isinstance(value, str):  # some clients send the arguments JSON-encoded
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    return TemplateArgs(_go_number(value) if isinstance(value, dict) else None)


def _image(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return base64.b64decode(str(value), validate=False)
    except (binascii.Error, ValueError):
        return str(value).encode()


def _message(m: dict[str, Any]) -> TemplateMessage:
    calls = []
    for raw in m.get("tool_calls") or []:
        call = _dict(raw)
        fn = _dict(call.get("function"))
        index = fn.get("index")
        calls.append(TemplateToolCall(
            ID=_str(call.get("id")),
            Function=TemplateToolCallFunction(
                Index=index if isinstance(index, int) and not isinstance(index, bool) else 0,
                Name=_str(fn.get("name")),
                Arguments=_arguments(fn.get("arguments")),
            ),
        ))
    images = m.get("images")
    return TemplateMessage(
        Role=_str(m.get("role")),
        Content=_str(m.get("content")),
        Thinking=_str(m.get("thinking")),
        Images=[_image(i) for i in images] if images else NilSlice(),
        ToolCalls=calls or NilSlice(),
        ToolName=_str(m.get("tool_name")),
        ToolCallID=_str(m.get("tool_call_id")),
    )


def collate(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Ollama's `collate` (TPL-07): all system texts joined, same-role runs merged (not tool)."""
    systems: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        content = _str(m.get("content"))
        if role == "system":
            systems.append(content)
        if out and out[-1].get("role") == role and role != "tool":
            out[-1]["content"] = _str(out[-1].get("content")) + "\n\n" + content
        else:
            out.append(dict(m))
    return "\n\n".join(systems), out


def think_values(think: bool | str | None) -> dict[str, Any]:
    """`.Think`, `.ThinkLevel`, `.IsThinkSet` from a request's `think` (TPL-04)."""
    if think is None:
        return {"Think": False, "ThinkLevel": "", "IsThinkSet": False}
    if isinstance(think, str):
        return {"Think": think in ("high", "medium", "low", "max"), "ThinkLevel": think,
                "IsThinkSet": True}
    return {"Think": bool(think), "ThinkLevel": "medium" if think else "", "IsThinkSet": True}


# -- execution -------------------------------------------------------------------------------


def _run(template: Template, data: dict[str, Any]) -> str:
    try:
        return template.execute(data)
    except TemplateError as err:
        raise TemplateRenderError(str(err)) from None


def execute(text: str, messages: list[dict[str, Any]], *, tools: list[Any] | None = None,
            think: bool | str | None = None, prompt: str = "", suffix: str = "") -> str:
    """Ollama's `Template.Execute`: FIM, messages-style or legacy turn-by-turn rendering."""
    template = parse(text)
    thinking = think_values(think)
    if prompt and suffix:
        return _run(template, {"Prompt": prompt, "Suffix": suffix, "Response": "", **thinking})
    system, collated = collate(messages)
    if references(template, "Messages"):
        return _run(template, {
            "System": system,
            "Messages": [_message(m) for m in collated],
            "Tools": convert_tools(tools),
            "Response": "",
            **thinking,
        })
    out: list[str] = []
    turn = {"System": "", "Prompt": "", "Response": ""}

    def flush() -> None:
        out.append(_run(template, {**turn, **thinking}))
        turn.update(System="", Prompt="", Response="")

    for m in collated:
        role, content = m.get("role"), _str(m.get("content"))
        if role == "system":
            if turn["Prompt"] or turn["Response"]:
                flush()
            turn["System"] = content
        elif role == "user":
            if turn["Response"]:
                flush()
            turn["Prompt"] = content
        elif role == "assistant":
            turn["Response"] = content
    try:
        last = _cut(text)
    except TemplateError as err:  # Ollama panics here; a 500 is kinder
        raise TemplateRenderError(str(err)) from None
    out.append(_run(last, {**turn, **thinking}))
    return "".join(out)


def render_go_chat(template_text: str, messages: list[dict[str, Any]], *,
                   tools: list[Any] | None = None, think: bool | str | None = None) -> str:
    """The chat prompt a Go TEMPLATE gives for `messages` and `tools` (TPL-04…TPL-08)."""
    return execute(template_text, messages, tools=tools, think=think)


def render_go_generate(template_text: str, messages: list[dict[str, Any]], *, suffix: str = "",
                       think: bool | str | None = None) -> str:
    """/api/generate's direct template execution: FIM with `suffix`, else like chat."""
    if suffix:
        prompt = next((_str(m.get("content")) for m in reversed(messages)
                       if m.get("role") == "user"), "")
        return execute(template_text, [], think=think, prompt=prompt, suffix=suffix)
    return execute(template_text, messages, think=think)
