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
from dataclasses import dataclass, field
from typing import Any

from pollama.errors import PollamaError
from pollama.template.gotemplate import (
    RawJSON,
    Template,
    TemplateError,
    go_json,
    response_action,
)

__all__ = [
    "TemplateRenderError",
    "parse",
    "render_go_chat",
    "render_go_generate",
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
        if not template.references("Messages") and not template.references("Response"):
            template = template.with_appended(response_action())
    except TemplateError as err:
        raise TemplateRenderError(str(err)) from None
    return template


@functools.lru_cache(maxsize=64)
def _cut(text: str) -> Template:
    return parse(text).cut_at_response()


def _template(template: str | Template) -> Template:
    return parse(template) if isinstance(template, str) else template


def thinking_tags(template: str | Template) -> tuple[str, str] | None:
    """The opening/closing thinking tags a template wraps `.Thinking` in (TPL-14), or None."""
    try:
        opening, closing = _template(template).infer_thinking_tags()
    except TemplateRenderError:
        return None
    return (opening, closing) if opening and closing else None


def tool_call_tag(template: str | Template) -> str:
    """The text a model writes before its tool calls (GF-20): `<tool_call>`, `[TOOL_CALLS]`, `{`."""
    try:
        return _template(template).tool_call_tag()
    except TemplateRenderError:
        return "{"


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
    if template.references("Messages"):
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
