"""`tool_choice` obeyed, not hoped for (beyond Ollama, which ignores it: ollama/ollama#11171).

A request's choice, in OpenAI's forms (the Anthropic dialect translates into them):

* `"auto"` (the default): the model may answer or call tools; `parallel_tool_calls: false`
  keeps only its first call.
* `"none"`: the prompt shows no tools and no output is read as a call.
* `"required"`: the sampler's grammar only allows the template's tool-call tag followed by a call
  `{"name": <one of the tools>, "arguments": <that tool's parameters schema>}` — one, or
  several when parallel calls are allowed — and nothing else.
* `{"type": "function", "function": {"name": N}}` (or the Responses API's
  `{"type": "function", "name": N}`): the same grammar with tool N only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pollama.errors import BadRequest
from pollama.inference.grammar import bounded_schema_grammar

_ROOT_RULE = re.compile(r"^root ::=", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """What a request allows: `mode` auto/none/required, the tools a forced call may name."""

    mode: str = "auto"
    names: tuple[str, ...] = ()
    parallel: bool = True

    @property
    def forced(self) -> bool:
        return self.mode == "required"

    @property
    def max_calls(self) -> int | None:
        """How many calls an answer may keep (None: any number)."""
        return None if self.parallel else 1

    def grammar(self, tools: list[dict[str, Any]], tag: str) -> str | None:
        """The GBNF a forced choice samples with; None when the model chooses freely."""
        if not self.forced:
            return None
        schemas: list[dict[str, Any]] = []
        for tool in tools:
            fn = tool.get("function") or {}
            if fn.get("name") not in self.names:
                continue
            params = fn.get("parameters")
            if not isinstance(params, dict) or not params:
                params = {"type": "object"}
            schemas.append({"type": "object",
                            "properties": {"name": {"const": fn["name"]}, "arguments": params},
                            "required": ["name", "arguments"]})
        schema: dict[str, Any] = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
        try:
            body = _ROOT_RULE.sub("tool-call ::=", bounded_schema_grammar(schema))
        except ValueError as err:
            raise BadRequest(f"invalid tool parameters: a forced call's parameters must be a "
                             f"JSON schema pollama can enforce ({err})") from None
        opening = "" if tag in ("{", "[") else json.dumps(tag)
        closing = json.dumps("</" + tag[1:]) if re.fullmatch(r"<[\w-]+>", tag) else ""
        block = " ".join(p for p in (opening, '"\\n"?', "tool-call", '"\\n"?',
                                     f"{closing}?" if closing else "") if p)
        repeat = " (\"\\n\"? tool-call-block)*" if self.parallel else ""
        return f"root ::= tool-call-block{repeat}\ntool-call-block ::= {block}\n{body}"


def tool_names(tools: list[dict[str, Any]] | None) -> list[str]:
    return [str(t["function"]["name"]) for t in tools or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
            and t["function"].get("name")]


def resolve_tool_choice(choice: Any, parallel: bool | None,
                        tools: list[dict[str, Any]] | None) -> ToolChoice:
    """A request's `tool_choice` and `parallel_tool_calls`, checked against its `tools`."""
    names = tool_names(tools)
    allow_parallel = parallel is not False
    if choice is None or choice == "auto":
        return ToolChoice("auto", tuple(names), allow_parallel)
    if choice == "none":
        return ToolChoice("none", (), allow_parallel)
    if choice == "required":
        if not names:
            raise BadRequest('tool_choice "required" needs at least one tool in "tools"')
        return ToolChoice("required", tuple(names), allow_parallel)
    if isinstance(choice, dict) and choice.get("type") == "function":
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest('tool_choice {"type": "function"} needs the function\'s "name"')
        if name not in names:
            raise BadRequest(f'tool_choice names "{name}", which is not one of the request\'s '
                             "tools")
        return ToolChoice("required", (name,), allow_parallel)
    raise BadRequest(f"invalid tool_choice: {json.dumps(choice)} (must be \"auto\", \"none\", "
                     '"required" or {"type": "function", "function": {"name": ...}})')
