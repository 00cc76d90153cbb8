"""Ollama-shaped data for the Go template tests (template.go's templateMessage, templateTool...)
and the `render` helper.

Expected strings follow Go's text/template semantics (Ollama uses Go's package with
``missingkey=zero``); the model templates are written by hand in the shape of Ollama's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pollama.template.go import Template, go_json

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


# Model templates in the shape of Ollama's (shared by the model and walk tests).

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
