"""Ollama's template.Execute over the Go template interpreter: hand-written model templates.

Every expected string is worked out by hand from Go's text/template rules (`{{-`/`-}}` trim
the white space next to them, `range` over a map visits sorted keys, `{{ .Tools }}` and
`.Function.Arguments` print JSON through their String methods) and Ollama's `Execute`
(collation, the legacy cut at `.Response`, fill-in-middle data).
"""

from __future__ import annotations

from typing import Any

import pytest

from pollama.template.ollama import (
    TemplateRenderError,
    collate,
    convert_tools,
    render_go_chat,
    render_go_generate,
    thinking_tags,
    tool_call_tag,
)
from pollama.template.prompt import PromptTemplate

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string", "description": "The city", "default": "Paris"},
        "unit": {"type": ["string", "null"], "enum": ["c", "f"]}}}}}
WEATHER_JSON = ('{"type":"function","function":{"name":"get_weather","description":'
                '"Get the weather","parameters":{"type":"object","required":["city"],'
                '"properties":{"city":{"type":"string","description":"The city"},'
                '"unit":{"type":["string","null"],"enum":["c","f"]}}}}}')
ADD = {"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}}
ADD_JSON = ('{"type":"function","function":{"name":"add","description":"","parameters":'
            '{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}}}}}')

CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
TOOL_ROUND = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    CALL,
    {"role": "tool", "content": "22C", "tool_name": "get_weather"},
]

# -- ChatML with tools (Qwen/Hermes style) ---------------------------------------------------

CHATML = """\
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

<tools>
{{- range .Tools }}
{{ . }}
{{- end }}
</tools>

Call a function inside <tool_call></tool_call> tags.
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""


def test_chatml_tools_round_trip() -> None:
    assert render_go_chat(CHATML, TOOL_ROUND, tools=[WEATHER]) == (
        "<|im_start|>system\nBe brief.\n\n# Tools\n\n<tools>\n" + WEATHER_JSON + "\n</tools>\n\n"
        "Call a function inside <tool_call></tool_call> tags.<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n")


def test_chatml_without_tools_or_system() -> None:
    messages = [{"role": "user", "content": "Hi"}]
    assert render_go_chat(CHATML, messages) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    # an empty tools list is falsy, as in Go
    assert render_go_chat(CHATML, messages, tools=[]) == render_go_chat(CHATML, messages)


def test_chatml_last_assistant_is_a_prefill() -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]
    assert render_go_chat(CHATML, messages) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHel")


def test_chatml_tags() -> None:
    assert tool_call_tag(CHATML) == "<tool_call>"
    assert thinking_tags(CHATML) is None


# -- Llama 3 with tools ----------------------------------------------------------------------

LLAMA3 = """\
{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

Respond with JSON for a function call: {"name": function name, "parameters": arguments}.
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>
{{- if and $.Tools $last }}

{{ range $.Tools }}
{{- . }}
{{ end }}
{{ .Content }}<|eot_id|>
{{- else }}

{{ .Content }}<|eot_id|>
{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}

{{ range .ToolCalls }}{"name": "{{ .Function.Name }}",
{{- " " }}"parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"""

LLAMA3_SYSTEM = ("<|start_header_id|>system<|end_header_id|>\n\nBe brief.\n\nRespond with JSON "
                 'for a function call: {"name": function name, "parameters": arguments}.'
                 "<|eot_id|>")


def test_llama3_tools_in_the_last_user_message() -> None:
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"}]
    assert render_go_chat(LLAMA3, messages, tools=[WEATHER, ADD]) == (
        LLAMA3_SYSTEM + "<|start_header_id|>user<|end_header_id|>\n\n"
        + WEATHER_JSON + "\n" + ADD_JSON + "\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_llama3_tool_round_trip() -> None:
    assert render_go_chat(LLAMA3, TOOL_ROUND, tools=[WEATHER]) == (
        LLAMA3_SYSTEM + "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "parameters": {"city":"Paris"}}<|eot_id|>'
        "<|start_header_id|>ipython<|end_header_id|>\n\n22C<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_llama3_bare_json_tag() -> None:
    # the text in `{{ if .ToolCalls }}` is blank before the first `{`
    assert tool_call_tag(LLAMA3) == "{"


# -- Mistral with [TOOL_CALLS] ---------------------------------------------------------------

MISTRAL = """\
{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (le (len (slice $.Messages $index)) 2) $.Tools }}[AVAILABLE_TOOLS]
{{- " " }}{{ json $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and (eq (len (slice $.Messages $index)) 1) $.System }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}</s>
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}
{{- end }}]</s>
{{- end }}
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}}[/TOOL_RESULTS]
{{- end }}
{{- end }}"""


def test_mistral_available_tools() -> None:
    messages = [{"role": "system", "content": "Sys"}, {"role": "user", "content": "2+3?"}]
    assert render_go_chat(MISTRAL, messages, tools=[ADD]) == (
        "[AVAILABLE_TOOLS] [" + ADD_JSON + "][/AVAILABLE_TOOLS][INST] Sys\n\n2+3?[/INST]")


def test_mistral_tool_calls_and_results() -> None:
    messages = [
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "add", "arguments": {"a": 2, "b": 3}}},
            {"function": {"name": "add", "arguments": {"b": 1, "a": 1}}}]},
        {"role": "tool", "content": "5"},
        {"role": "tool", "content": "2"},
        {"role": "assistant", "content": "5 and 2."},
        {"role": "user", "content": "Thanks"},
    ]
    # tools only in the last two messages' user turn; JSON numbers are float64 (printed `2`);
    # map keys sorted; the two tool results are not merged
    assert render_go_chat(MISTRAL, messages, tools=[ADD]) == (
        "[INST] 2+3?[/INST]"
        '[TOOL_CALLS] [{"name": "add", "arguments": {"a":2,"b":3}}'
        '{"name": "add", "arguments": {"a":1,"b":1}}]</s>'
        '[TOOL_RESULTS] {"content": 5}[/TOOL_RESULTS]'
        '[TOOL_RESULTS] {"content": 2}[/TOOL_RESULTS]'
        " 5 and 2.</s>"
        "[AVAILABLE_TOOLS] [" + ADD_JSON + "][/AVAILABLE_TOOLS][INST] Thanks[/INST]")


def test_mistral_tag() -> None:
    # Ollama cuts the text at the first `{`: here that leaves the array bracket in the tag
    assert tool_call_tag(MISTRAL) == "[TOOL_CALLS] ["


# -- legacy .System / .Prompt / .Response ----------------------------------------------------

LEGACY = """\
{{ if .System }}<|system|>
{{ .System }}</s>
{{ end }}{{ if .Prompt }}<|user|>
{{ .Prompt }}</s>
{{ end }}<|assistant|>
{{ .Response }}</s>
"""


def test_legacy_multi_turn_is_cut_at_the_last_response() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ]
    assert render_go_chat(LEGACY, messages) == (
        "<|system|>\nS</s>\n<|user|>\nU1</s>\n<|assistant|>\nA1</s>\n"
        "<|user|>\nU2</s>\n<|assistant|>\n")


def test_legacy_new_system_flushes_the_turn() -> None:
    messages = [
        {"role": "user", "content": "U1"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "U2"},
    ]
    assert render_go_chat(LEGACY, messages) == (
        "<|user|>\nU1</s>\n<|assistant|>\n</s>\n"
        "<|system|>\nS2</s>\n<|user|>\nU2</s>\n<|assistant|>\n")


def test_legacy_tools_are_ignored_and_response_is_appended() -> None:
    # neither .Messages nor .Response: Ollama appends {{ .Response }} (TPL-02)
    template = "[{{ .System }}]{{ .Prompt }}|"
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "tool", "content": "ignored"},
        {"role": "user", "content": "c"},
    ]
    assert render_go_chat(template, messages, tools=[ADD]) == "[]a|b[]c|"


def test_default_template() -> None:
    template = PromptTemplate(go_template=None, chat_template=None)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert template.render(messages) == "abc"


def test_legacy_cut_template_has_no_ollama_functions() -> None:
    # as in Ollama, the last turn runs a bare copy without `json`: a template that calls it
    # after `.Response` is cut there, one that calls it before fails
    assert render_go_chat('{{ .Prompt }}{{ .Response }}{{ json "x" }}',
                          [{"role": "user", "content": "p"}]) == "p"
    with pytest.raises(TemplateRenderError, match="json"):
        render_go_chat('{{ json .Prompt }}{{ .Response }}', [{"role": "user", "content": "p"}])


# -- fill in the middle ----------------------------------------------------------------------


@pytest.mark.parametrize(("template", "expected"), [
    ("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>", "<PRE> def f( <SUF>return x <MID>"),
    ("[SUFFIX]{{ .Suffix }}[PREFIX] {{ .Prompt }}", "[SUFFIX]return x[PREFIX] def f("),
    ("{{ .System }}|{{ .Prompt }}|{{ .Suffix }}|{{ .Response }}", "<no value>|def f(|return x|"),
])
def test_fill_in_the_middle(template: str, expected: str) -> None:
    messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "def f("}]
    assert render_go_generate(template, messages, suffix="return x") == expected


def test_generate_without_suffix_renders_like_chat() -> None:
    messages = [{"role": "user", "content": "Hi"}]
    assert render_go_generate(CHATML, messages) == render_go_chat(CHATML, messages)


# -- data ------------------------------------------------------------------------------------


def test_collate() -> None:
    system, out = collate([
        {"role": "system", "content": "s1"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "tool", "content": "t1"},
        {"role": "tool", "content": "t2"},
        {"role": "system", "content": "s2"},
        {"role": "assistant", "content": "x"},
        {"role": "assistant", "content": "y"},
    ])
    assert system == "s1\n\ns2"
    assert [(m["role"], m["content"]) for m in out] == [
        ("system", "s1"), ("user", "a\n\nb"), ("tool", "t1"), ("tool", "t2"),
        ("system", "s2"), ("assistant", "x\n\ny")]


def test_collation_does_not_change_the_callers_messages() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    template = "{{ range .Messages }}{{ .Content }};{{ end }}"
    assert render_go_chat(template, messages) == "a\n\nb;"
    assert render_go_chat(template, messages) == "a\n\nb;"
    assert messages[0]["content"] == "a"


THINK = "{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}{{ range .Messages }}{{ end }}"


@pytest.mark.parametrize(("think", "expected"), [
    (None, "false  false"),
    (True, "true medium true"),
    (False, "false  true"),
    ("high", "true high true"),
    ("low", "true low true"),
])
def test_think_values(think: Any, expected: str) -> None:
    assert render_go_chat(THINK, [{"role": "user", "content": "x"}], think=think) == expected
    legacy = "{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}{{ .Response }}"
    assert render_go_chat(legacy, [{"role": "user", "content": "x"}], think=think) == expected


def test_tool_call_fields() -> None:
    template = ("{{ range .Messages }}{{ range .ToolCalls }}"
                "{{ .ID }}|{{ .Function.Index }}|{{ .Function.Name }}|{{ .Function.Arguments }}|"
                "{{ json .Function.Arguments }}|{{ printf \"%T\" .Function.Arguments.n }}|"
                "{{ range $k, $v := .Function.Arguments }}{{ $k }}={{ $v }};{{ end }}\n"
                "{{ end }}{{ end }}")
    messages = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "function": {"index": 2, "name": "f", "arguments": {"z": "x", "n": 3}}},
        {"function": {"name": "g"}},
    ]}]
    assert render_go_chat(template, messages) == (
        'call_1|2|f|{"n":3,"z":"x"}|{"n":3,"z":"x"}|float64|n=3;z=x;\n'
        "|0|g|{}|null|<nil>|\n")


def test_tool_fields() -> None:
    template = ("{{ range .Tools }}{{ .Type }} {{ .Function.Name }}: {{ .Function.Description }}"
                " {{ .Function.Parameters.Required }}\n"
                "{{ range $name, $p := .Function.Parameters.Properties }}"
                "{{ $name }}|{{ $p.Type }}|{{ $p.Description }}|{{ $p.Enum }}|"
                "{{ toTypeScriptType $p }}\n{{ end }}{{ end }}")
    assert render_go_chat(template + "{{ .Messages }}", [], tools=[WEATHER]) == (
        "function get_weather: Get the weather [city]\n"
        "city|string|The city|[]|string\n"
        "unit|[string null]||[c f]|string | null\n[]")


def test_tools_print_as_json() -> None:
    template = "{{ .Tools }}\n{{ json .Tools }}\n{{ range .Tools }}{{ . }}{{ end }}{{ .Messages }}"
    assert render_go_chat(template, [], tools=[WEATHER]) == (
        f"[{WEATHER_JSON}]\n[{WEATHER_JSON}]\n{WEATHER_JSON}[]")


def test_nested_tool_properties_keep_their_order() -> None:
    tool = {"type": "function", "function": {"name": "f", "description": "<&>", "parameters": {
        "type": "object", "properties": {"p": {"type": "object", "properties": {
            "z": {"type": "integer"}, "a": {"type": "string", "minimum": 1}},
            "required": ["z"]}}}}}
    assert str(convert_tools([tool])[0].go_string()) == (
        '{"type":"function","function":{"name":"f","description":"\\u003c\\u0026\\u003e",'
        '"parameters":{"type":"object","properties":{"p":{"type":"object","properties":'
        '{"z":{"type":"integer"},"a":{"type":"string"}},"required":["z"]}}}}}')


def test_thinking_tags_from_a_template() -> None:
    template = ("{{ range $i, $m := .Messages }}{{ if eq .Role \"assistant\" }}"
                "{{ if .Thinking }}<think>\n{{ .Thinking }}\n</think>\n{{ end }}{{ .Content }}"
                "{{ end }}{{ end }}")
    assert thinking_tags(template) == ("<think>", "</think>")
    assert thinking_tags("{{ .Thinking }}") is None
    assert thinking_tags("{{ broken") is None


def test_errors_become_500s() -> None:
    with pytest.raises(TemplateRenderError) as err:
        render_go_chat("{{ .Messages }}{{ if }}", [])
    assert err.value.status == 500
    assert "missing value for if" in str(err.value)
    with pytest.raises(TemplateRenderError, match="can't evaluate field Nope"):
        render_go_chat("{{ range .Messages }}{{ .Nope }}{{ end }}",
                       [{"role": "user", "content": "x"}])


# -- which template runs (TPL-11, TPL-12) ----------------------------------------------------

JINJA_TOOLS = ("{% for message in messages %}{% if message.role == 'tool' %}<tool_response>"
               "{% endif %}{% if message.tool_calls %}<tool_call>{% endif %}{% endfor %}"
               "{% if tools %}{{ tools | tojson }}{% endif %}")
JINJA_PLAIN = "{% for message in messages %}<|im_start|>{{ message.content }}{% endfor %}"


def test_go_template_capabilities() -> None:
    from pollama.models.info import go_template_capabilities

    assert go_template_capabilities(CHATML) == ["tools"]
    assert go_template_capabilities("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>") == ["insert"]
    think = ("{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
             "{{ .Content }}{{ end }}")
    assert go_template_capabilities(think) == ["thinking"]
    # the tags are the first and last text of the list holding .Thinking (TPL-14)
    loose = "{{ range .Messages }}<think>{{ .Thinking }}</think>{{ .Content }}{{ end }}"
    assert go_template_capabilities(loose) == []
    assert go_template_capabilities("{{ .Prompt }}") == []
    assert go_template_capabilities("{{ if }}") == []


@pytest.mark.parametrize(("chat", "go", "prefer"), [
    (JINJA_TOOLS, "{{ .Prompt }}", True),  # the GGUF template can do more
    (JINJA_PLAIN, CHATML, False),  # the Go template can do more
    (JINJA_TOOLS, "{{ .Tools }}{{ range .Messages }}{{ end }}", True),  # only Jinja round-trips
    (JINJA_TOOLS, CHATML, False),  # both round-trip tools: the Go template stays
    (JINJA_PLAIN, "{{ .Prompt }}", False),
])
def test_prefer_chat_template(chat: str, go: str, prefer: bool) -> None:
    from pollama.models.info import prefer_chat_template

    assert prefer_chat_template(chat, go) is prefer


def test_nil_values_print_like_go() -> None:
    # no tools: a nil templateTools prints `null` through its String method and is false
    template = "{{ .Tools }} {{ json .Tools }} {{ if .Tools }}yes{{ else }}no{{ end }}"
    assert render_go_chat(template + "{{ .Messages }}", []) == "null null no[]"
    # a tool without properties: `properties` is a nil map, encoded as null
    bare = {"type": "function", "function": {"name": "f", "parameters": {}}}
    assert render_go_chat("{{ .Tools }}{{ .Messages }}", [], tools=[bare]) == (
        '[{"type":"function","function":{"name":"f","description":"","parameters":'
        '{"type":"","properties":null}}}][]')
    # nested properties that are set but empty are kept (a non-nil pointer is not omitted)
    nested = {"type": "function", "function": {"name": "f", "parameters": {"properties": {
        "o": {"type": "object", "properties": {}}}}}}
    assert '"o":{"type":"object","properties":{}}' in render_go_chat(
        "{{ .Tools }}{{ .Messages }}", [], tools=[nested])
