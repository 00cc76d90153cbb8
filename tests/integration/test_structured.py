"""Go TEMPLATEs, tools, JSON-schema formats, thinking, suffix, logprobs and raw grammars.

Everything goes through the official `ollama` client (or plain HTTP where the client has no
field for it) against a real server and the real SmolLM2. A 135M model does not call tools or
think on its own, so those tests constrain its output with a raw GBNF `grammar` (pollama's
addition): the model still writes the text token by token, and the server's real parsers turn
it into `tool_calls` and `thinking`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.helpers import Server, create_from_gguf
from tests.schema_check import check_schema
from tests.templates import CHATML_THINK, CHATML_TOOLS

GREEDY = {"temperature": 0, "seed": 42, "num_predict": 32}
HTTP_TIMEOUT = 300  # pytest-timeout's own limit: a slow machine may take long, not fail


@pytest.fixture(scope="module")
def server():
    """This module's server, its runners' OpenMP threads sleeping at barriers instead of
    spinning: on a busy 2-core machine a spinning thread burns whole time slices waiting for a
    partner that is not running, and a token takes a second instead of 10-30 ms (the ten
    schema answers below are over a thousand tokens)."""
    srv = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE"}).start()
    yield srv
    srv.cleanup()

FIM = "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"


def modelfile(tmp: Path, name: str, template: str) -> Path:
    path = tmp / name
    path.write_text(f'FROM smollm2:135m\nTEMPLATE """{template}"""\nPARAMETER stop <|im_end|>\n')
    return path


@pytest.fixture(scope="module")
def models(server, smol, tmp_path_factory) -> dict[str, str]:
    """Models with hand-written Go TEMPLATEs, created from Modelfiles with the real CLI."""
    tmp = tmp_path_factory.mktemp("modelfiles")
    out = {}
    for name, template in (("smol-tools", CHATML_TOOLS), ("smol-think", CHATML_THINK),
                           ("smol-fim", FIM)):
        done = server.cli("create", name, "-f", str(modelfile(tmp, name, template)))
        assert done.returncode == 0, done.stderr
        out[name] = name
    return out


def rendered(server, path: str, body: dict[str, Any]) -> str:
    r = httpx.post(f"{server.url}{path}", json={**body, "_debug_render_only": True},
                   timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()["_debug_info"]["rendered_template"]


PET = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "species": {"type": "string", "enum": ["cat", "dog", "parrot"]},
        "age": {"type": "integer"},
        "vaccinated": {"type": "boolean"},
        "owner": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 16},
                "contact": {"type": "object", "properties": {
                    "kind": {"type": "string", "enum": ["email", "phone"]},
                    "value": {"type": "string", "maxLength": 24}},
                    "required": ["kind", "value"]},
            },
            "required": ["name", "contact"],
        },
        "toys": {"type": "array", "maxItems": 3, "items": {
            "type": "object",
            "properties": {"toy": {"type": "string", "maxLength": 12},
                           "colors": {"type": "array", "maxItems": 2, "items": {
                               "type": "string", "enum": ["red", "green", "blue"]}}},
            "required": ["toy", "colors"]}},
    },
    "required": ["name", "species", "age", "vaccinated", "owner", "toys"],
}


# -- Go TEMPLATE models ----------------------------------------------------------------------


def test_go_template_model_answers_and_shows_its_template(server, models):
    client = server.client()
    shown = client.show("smol-tools")
    assert shown.template == CHATML_TOOLS
    assert "tools" in shown.capabilities and "thinking" not in shown.capabilities
    cli = server.cli("show", "smol-tools", "--template")
    assert cli.returncode == 0 and cli.stdout.rstrip("\n") == CHATML_TOOLS
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Name a color."}]
    assert rendered(server, "/api/chat", {"model": "smol-tools", "messages": messages}) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a color.<|im_end|>\n"
        "<|im_start|>assistant\n")
    answer = client.chat(model="smol-tools", messages=messages, options=GREEDY)
    assert answer.message.content.strip() and "<|im_" not in answer.message.content
    assert client.show("smol-think").capabilities == ["completion", "thinking"]
    assert client.show("smol-fim").capabilities == ["completion", "insert"]


def test_go_template_off_prefers_the_gguf_template(smollm2_path):
    """OLLAMA_GO_TEMPLATE=0: the GGUF's Jinja template runs, and the Go one's tools go too."""
    srv = Server(extra_env={"OLLAMA_GO_TEMPLATE": "0"}).start()
    try:
        create_from_gguf(srv, "smollm2:135m", smollm2_path)
        client = srv.client()
        client.create(model="smol-tools", from_="smollm2:135m", template=CHATML_TOOLS)
        assert client.show("smol-tools").capabilities == ["completion"]
        prompt = rendered(srv, "/api/chat", {"model": "smol-tools", "messages": [
            {"role": "user", "content": "Hi"}]})
        assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named "
                                 "SmolLM")  # the Jinja template's default system prompt
        with pytest.raises(ollama.ResponseError) as err:
            client.chat(model="smol-tools", messages=[{"role": "user", "content": "Hi"}],
                        tools=[get_weather])
        assert err.value.status_code == 400
    finally:
        srv.cleanup()


def test_generate_template_and_system_overrides(server, models):
    body = {"model": "smol-tools", "prompt": "hi", "system": "S",
            "template": "{{ .System }}|{{ .Prompt }}|"}
    assert rendered(server, "/api/generate", body) == "S|hi|"
    # the model's own template, used like chat, with the request's system
    assert rendered(server, "/api/generate", {"model": "smol-tools", "prompt": "hi",
                                              "system": "S"}) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n")
    answer = server.client().generate(model="smol-tools", prompt="Say hi.", system="Be brief.",
                                      template="{{ .System }} {{ .Prompt }}", options=GREEDY)
    assert answer.response.strip()


# -- format ----------------------------------------------------------------------------------


def test_format_schema_is_valid_ten_times_out_of_ten(server, smol):
    client = server.client()
    prompt = [{"role": "user", "content": "Describe a pet and its owner as JSON."}]
    for seed in range(10):
        answer = client.chat(model=smol, messages=prompt, format=PET,
                             options={"temperature": 1.0, "seed": seed, "num_predict": 256})
        assert answer.done_reason == "stop", answer.message.content
        check_schema(json.loads(answer.message.content), PET)


def test_format_values_with_quotes_and_backslashes(server, smol):
    """A const/enum value or property name holding `"` or `\\` (llama-cpp-python's converter
    left backslashes unescaped, and such a schema was a 400 `failed to parse grammar`)."""
    values = ['say "hi"', "C:\\temp", '<img src="x">']
    schema = {"type": "object", "properties": {
        'the "quoted" key': {"type": "string", "enum": values}},
        "required": ['the "quoted" key']}
    for seed in range(3):
        answer = server.client().generate(model=smol, prompt="Pick one.", format=schema,
                                          options={"temperature": 1.0, "seed": seed,
                                                   "num_predict": 64})
        assert json.loads(answer.response)['the "quoted" key'] in values


def test_format_on_generate_streamed_and_json(server, smol):
    client = server.client()
    chunks = list(client.generate(model=smol, prompt="A pet as JSON:", format=PET, stream=True,
                                  options={"temperature": 0.7, "seed": 3, "num_predict": 256}))
    check_schema(json.loads("".join(c.response for c in chunks)), PET)
    answer = client.generate(model=smol, prompt="One fruit and its color as JSON:",
                             format="json", options={"temperature": 0, "num_predict": 128})
    assert answer.done_reason == "stop", answer.response
    assert isinstance(json.loads(answer.response), dict)


def test_format_applies_after_thinking(server, models):
    """GF-11: the first pass thinks freely, the schema constrains the answer after it."""
    history: list[dict[str, Any]] = []
    for color in ("red", "blue", "green", "black"):
        history += [{"role": "user", "content": "Color?"},
                    {"role": "assistant", "thinking": "I will answer.",
                     "content": json.dumps({"color": color})}]
    history.append({"role": "user", "content": "Color?"})
    schema = {"type": "object", "properties": {
        "shade": {"type": "string", "enum": ["dark", "light"]}, "level": {"type": "integer"}},
        "required": ["shade", "level"]}
    client = server.client()
    free = client.chat(model="smol-think", messages=history, think=True, options=GREEDY)
    assert free.message.thinking == "I will answer."
    assert "shade" not in free.message.content  # unconstrained, the model copies its examples
    answer = client.chat(model="smol-think", messages=history, think=True, format=schema,
                         options=GREEDY)
    assert answer.message.thinking == "I will answer."  # not constrained by the schema
    check_schema(json.loads(answer.message.content), schema)
    streamed = list(client.chat(model="smol-think", messages=history, think=True,
                                format=schema, options=GREEDY, stream=True))
    assert "".join(c.message.thinking or "" for c in streamed) == "I will answer."
    assert "".join(c.message.content for c in streamed) == answer.message.content


# -- tools -----------------------------------------------------------------------------------


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
      city: The name of the city

    Returns:
      str: The weather there
    """
    return f"It is 22 degrees and sunny in {city}."


# what the client sends for `tools=[get_weather]` (built from the signature and docstring)
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string", "description": "The name of the city"}}}}}

CALL_GRAMMAR = r'''root ::= "<tool_call>\n" call "\n</tool_call>"
call ::= "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"" [A-Z] [a-z]{1,12} "\"}}"
'''


def call_the_weather_tool(server, model: str) -> tuple[list[dict[str, Any]], str]:
    """Ask for the weather with the tool offered, as an application would; the grammar only
    makes the call certain, the server still parses the model's text into `tool_calls`.
    Returns the conversation with the call and the tool's result, and the city asked for."""
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    response = server.client().chat(model=model, messages=messages, tools=[get_weather],
                                    options={**GREEDY, "grammar": CALL_GRAMMAR})
    calls = response.message.tool_calls
    assert response.message.content == "" and calls and len(calls) == 1
    call = calls[0]
    assert call.function.name == "get_weather" and set(call.function.arguments) == {"city"}
    result = {"get_weather": get_weather}[call.function.name](**call.function.arguments)
    messages += [response.message.model_dump(exclude_none=True),
                 {"role": "tool", "content": result, "tool_name": call.function.name}]
    return messages, call.function.arguments["city"]


def test_tools_round_trip_with_the_client(server, models):
    messages, city = call_the_weather_tool(server, "smol-tools")
    prompt = rendered(server, "/api/chat", {"model": "smol-tools", "tools": [WEATHER_TOOL],
                                            "messages": messages})
    assert (f'<|im_start|>assistant\n<tool_call>\n{{"name": "get_weather", "arguments": '
            f'{{"city":"{city}"}}}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n'
            f"It is 22 degrees and sunny in {city}.\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n") in prompt
    assert '"description":"The name of the city"' in prompt
    final = server.client().chat(model="smol-tools", messages=messages, tools=[get_weather],
                                 options=GREEDY)
    assert final.message.content.strip() and not final.message.tool_calls


# A Hermes-style Jinja chat template with tools, as GGUFs from Hugging Face carry (written for
# this test), put into a copy of the SmolLM2 GGUF: the model runs on it with no Go TEMPLATE.
JINJA_TOOLS = """\
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}You may call functions. Their signatures:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
To call one, write <tool_call>{"name": <name>, "arguments": <arguments>}</tool_call>.<|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' %}<|im_start|>user
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{{ message.content or '' }}
{%- for call in message.tool_calls or [] %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


@pytest.fixture(scope="module")
def jinja_tools(server, smollm2_path, tmp_path_factory):
    gguf = tmp_path_factory.mktemp("jinja") / "smollm2-jinja-tools.gguf"
    made = subprocess.run([str(Path(sys.executable).parent / "gguf-new-metadata"),
                           "--chat-template", JINJA_TOOLS, "--force", str(smollm2_path),
                           str(gguf)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    create_from_gguf(server, "smol-jinja-tools", gguf)
    return "smol-jinja-tools"


def test_tools_round_trip_on_a_gguf_jinja_template(server, jinja_tools):
    client = server.client()
    shown = client.show(jinja_tools)
    assert "tools" in shown.capabilities and not shown.template.startswith("{{")
    messages, city = call_the_weather_tool(server, jinja_tools)
    prompt = rendered(server, "/api/chat", {"model": jinja_tools, "tools": [WEATHER_TOOL],
                                            "messages": messages})
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in prompt
    assert (f'<|im_start|>assistant\n<tool_call>\n{{"name": "get_weather", "arguments": '
            f'{{"city": "{city}"}}}}\n</tool_call><|im_end|>\n<|im_start|>user\n'
            f"<tool_response>\nIt is 22 degrees and sunny in {city}.\n</tool_response>"
            "<|im_end|>\n<|im_start|>assistant\n") in prompt
    final = client.chat(model=jinja_tools, messages=messages, tools=[get_weather],
                        options=GREEDY)
    assert final.message.content.strip() and not final.message.tool_calls


def test_tool_calls_stream_with_ids_and_indexes(server, models):
    grammar = ('root ::= "Checking. " call call\n'
               r'call ::= "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \""'
               ' [A-Z] [a-z]{1,10} "\\"}}</tool_call>"\n')
    body = {"model": "smol-tools", "tools": [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}}}}],
        "messages": [{"role": "user", "content": "Weather in Paris and in Rome?"}],
        "options": {**GREEDY, "num_predict": 64, "grammar": grammar}}
    with httpx.stream("POST", f"{server.url}/api/chat", json=body, timeout=HTTP_TIMEOUT) as r:
        chunks = [json.loads(line) for line in r.iter_lines() if line]
    content = "".join(c["message"]["content"] for c in chunks)
    calls = [tc for c in chunks for tc in c["message"].get("tool_calls", [])]
    assert content == "Checking. "
    assert [c["function"]["index"] for c in calls] == [0, 1]
    assert all(c["id"].startswith("call_") and len(c["id"]) == 13 for c in calls)
    assert all(list(c["function"]) == ["index", "name", "arguments"] for c in calls)
    # the text streamed before the first call was complete, each call in its own chunk
    first_call = next(i for i, c in enumerate(chunks) if c["message"].get("tool_calls"))
    assert "".join(c["message"]["content"] for c in chunks[:first_call]) == "Checking. "
    assert sum(1 for c in chunks if c["message"].get("tool_calls")) == 2
    whole = httpx.post(f"{server.url}/api/chat", json={**body, "stream": False},
                       timeout=HTTP_TIMEOUT)
    message = whole.json()["message"]
    assert message["content"] == "Checking. "
    assert [c["function"]["arguments"] for c in message["tool_calls"]] == [
        c["function"]["arguments"] for c in calls]


def test_malformed_tool_call_is_text(server, models):
    grammar = 'root ::= "<tool_call>{\\"name\\": \\"get_weather\\", \\"arguments\\": {oops"'
    answer = server.client().chat(
        model="smol-tools", messages=[{"role": "user", "content": "Weather?"}],
        tools=[get_weather], options={**GREEDY, "grammar": grammar})
    assert not answer.message.tool_calls
    assert answer.message.content == '<tool_call>{"name": "get_weather", "arguments": {oops'


# -- thinking --------------------------------------------------------------------------------

THINK_GRAMMAR = r'''root ::= "<think>" [a-z ]{8,40} "</think>\n\n" [A-Z] [a-z ]{4,30} "."
'''


def test_thinking_is_split_streamed_and_not(server, models):
    client = server.client()
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    options = {**GREEDY, "num_predict": 64, "grammar": THINK_GRAMMAR}
    answer = client.chat(model="smol-think", messages=messages, think=True, options=options)
    assert answer.message.thinking and answer.message.content
    assert "<think>" not in answer.message.thinking + answer.message.content
    assert "</think>" not in answer.message.thinking + answer.message.content
    assert answer.message.content[0].isupper()  # the white space after </think> was eaten
    streamed = list(client.chat(model="smol-think", messages=messages, think=True,
                                options=options, stream=True))
    kinds = ["thinking" if c.message.thinking else "content" for c in streamed
             if c.message.thinking or c.message.content]
    assert kinds == sorted(kinds, reverse=True)  # all thinking first, then all content
    assert "".join(c.message.thinking or "" for c in streamed) == answer.message.thinking
    assert "".join(c.message.content for c in streamed) == answer.message.content
    # think omitted on a thinking model means true (GEN-13); false means no split
    default = client.chat(model="smol-think", messages=messages, options=options)
    assert default.message.thinking == answer.message.thinking
    off = client.chat(model="smol-think", messages=messages, think=False, options=options)
    assert not off.message.thinking and off.message.content.startswith("<think>")


def test_think_levels_reach_the_template(server, models):
    messages = [{"role": "user", "content": "Hi"}]
    for think, line in (("high", "reasoning: high"), (True, "reasoning: medium"),
                        (False, "reasoning: off")):
        prompt = rendered(server, "/api/chat", {"model": "smol-think", "messages": messages,
                                                "think": think})
        assert prompt.startswith(f"<|im_start|>system\n{line}<|im_end|>\n")


def test_generate_thinking_with_a_prefilled_tag(server, models):
    """A raw prompt ending in the opening tag starts the parser inside the thinking."""
    grammar = r'root ::= [a-z ]{8,30} "</think>" [A-Z] [a-z ]{4,20} "."' + "\n"
    answer = server.client().generate(
        model="smol-think", raw=True, think=True,
        prompt="<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n<think>",
        options={**GREEDY, "grammar": grammar})
    assert answer.thinking and answer.response and "</think>" not in answer.response


def test_old_thinking_is_dropped_from_deepseek_r1_histories(server, smol):
    """CHAT-04: for qwen3-family and deepseek-r1 models, earlier answers lose their <think>
    blocks in the prompt; the answer after the last user message keeps it; others keep all."""
    client = server.client()
    client.copy("smollm2:135m", "deepseek-r1:test")
    messages = [{"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "<think>old reasoning</think>\n\nHello!"},
                {"role": "user", "content": "And now?"},
                {"role": "assistant", "content": "<think>current reasoning</think>Now."}]
    r1 = rendered(server, "/api/chat", {"model": "deepseek-r1:test", "messages": messages})
    assert "old reasoning" not in r1 and "Hello!" in r1
    assert "current reasoning" in r1
    other = rendered(server, "/api/chat", {"model": "smollm2:135m", "messages": messages})
    assert "old reasoning" in other


# -- suffix, logprobs, raw grammar -----------------------------------------------------------


def test_suffix_fill_in_the_middle(server, models):
    body = {"model": "smol-fim", "prompt": "def add(a, b):", "suffix": "    return c"}
    assert rendered(server, "/api/generate", body) == "<PRE> def add(a, b): <SUF>    return c <MID>"
    answer = server.client().generate(model="smol-fim", prompt="def add(a, b):",
                                      suffix="    return c", options=GREEDY)
    assert answer.done


def test_logprobs_shapes(server, smol):
    client = server.client()
    # no repeat penalty: the greedy pick is then the top raw logit the logprobs describe
    greedy = {**GREEDY, "repeat_penalty": 1.0}
    chunks = list(client.generate(model=smol, prompt="Hello", logprobs=True, top_logprobs=3,
                                  stream=True, options=greedy))
    streamed = [lp for c in chunks for lp in (c.logprobs or [])]
    assert streamed and len(streamed) == chunks[-1].eval_count
    for lp in streamed:
        assert isinstance(lp.token, str) and lp.logprob <= 0
        assert len(lp.top_logprobs) == 3
        assert lp.top_logprobs[0].logprob >= lp.top_logprobs[-1].logprob
        assert lp.logprob == pytest.approx(lp.top_logprobs[0].logprob)  # greedy
    whole = httpx.post(f"{server.url}/api/generate", json={
        "model": smol, "prompt": "Hello", "logprobs": True, "stream": False,
        "options": greedy}, timeout=HTTP_TIMEOUT).json()
    assert [lp["token"] for lp in whole["logprobs"]] == [lp.token for lp in streamed]
    for lp in whole["logprobs"]:
        assert set(lp) == {"token", "logprob", "bytes"}  # no top_logprobs asked for
        assert bytes(lp["bytes"]).decode("utf-8", "replace") == lp["token"]
    chat = httpx.post(f"{server.url}/api/chat", json={
        "model": smol, "messages": [{"role": "user", "content": "Hi"}], "logprobs": True,
        "top_logprobs": 2, "stream": False, "options": GREEDY}, timeout=HTTP_TIMEOUT).json()
    assert len(chat["logprobs"]) == chat["eval_count"]
    for lp in chat["logprobs"]:
        assert list(lp) == ["token", "logprob", "bytes", "top_logprobs"]
        assert [list(t) for t in lp["top_logprobs"]] == [["token", "logprob", "bytes"]] * 2
    assert "".join(lp["token"] for lp in chat["logprobs"]) == chat["message"]["content"]


def test_raw_grammar_option_and_field(server, smol):
    client = server.client()
    answer = client.generate(model=smol, prompt="Is the sky blue?", options={
        **GREEDY, "grammar": 'root ::= ("yes" | "no") "."\n'})
    assert answer.response in ("yes.", "no.")
    r = httpx.post(f"{server.url}/api/chat", json={
        "model": smol, "messages": [{"role": "user", "content": "Count."}], "stream": False,
        "grammar": 'root ::= [1-3] ("," [1-3]){2}', "options": GREEDY}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and len(r.json()["message"]["content"].split(",")) == 3


# -- errors ----------------------------------------------------------------------------------


def test_errors(server, smol, models):
    client = server.client()
    user = [{"role": "user", "content": "x"}]
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=smol, messages=user, think=True)
    assert err.value.status_code == 400
    assert err.value.error == '"smollm2:135m" does not support thinking'
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model=smol, prompt="x", think="high")
    assert err.value.error == '"smollm2:135m" does not support thinking'
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=smol, messages=user, tools=[get_weather])
    assert err.value.status_code == 400
    assert err.value.error == "registry.ollama.ai/library/smollm2:135m does not support tools"
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="smol-tools", prompt="def f(", suffix="return 1")
    assert err.value.status_code == 400
    assert err.value.error == "registry.ollama.ai/library/smol-tools:latest does not support insert"
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model=smol, prompt="x", think="maybe")
    assert err.value.error == ('invalid think value: "maybe" (must be "high", "medium", "low", '
                               '"max", true, or false)')

    def post(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{server.url}/api/generate", json={"model": smol, "prompt": "x",
                                                             "stream": False, **body},
                          timeout=HTTP_TIMEOUT)

    r = post({"options": {"grammar": "root ::= foo"}})
    assert r.status_code == 400
    assert r.json() == {"error": 'invalid grammar: undefined rule "foo" at line 1 column 10'}
    r = post({"grammar": 'answer ::= "a"'})
    assert r.json() == {"error": 'invalid grammar: the grammar has no "root" rule'}
    r = post({"grammar": 'root ::= "a'})
    assert r.status_code == 400 and r.json()["error"].startswith("invalid grammar: ")
    r = post({"grammar": 'root ::= "a"', "format": "json"})
    assert r.json() == {"error": "format and grammar cannot be used together"}
    r = post({"options": {"grammar": 7}})
    assert r.json() == {"error": 'option "grammar" must be of type string'}


@pytest.mark.parametrize(("grammar", "error"), [
    ('root ::= "a" | "b"\n', None),
    ('root ::= (\n  "a"\n  | "b"\n)+ # comment\n\nx ::= [^\\x00-\\x1F]{2,} "\\u00e9"?\n', None),
    ('root ::= "x" <[1]>', None),  # token syntax: left to llama.cpp
    ('root ::= my_rule\nmy_rule ::= "a"', "expecting newline or end at line 1 column 12"),
    ('root ::= "a" | "b"\n  | "c"', "expecting a rule name at line 2 column 3"),
    ('root ::= "a', "unexpected end of input at line 1 column 12"),
    ('root ::= "\\q"', "unknown escape at line 1 column 11"),
    ('root ::= * "a"', "expecting an item before '*' at line 1 column 10"),
    ("root ::= [a-", "unexpected end of input at line 1 column 13"),
    ('root = "a"', "expecting ::= at line 1 column 6"),
    ("root ::= foo", 'undefined rule "foo" at line 1 column 10'),
    ('answer ::= "a"', 'the grammar has no "root" rule'),
    (" \n", "the grammar is empty"),
])
def test_grammar_checker(grammar: str, error: str | None):
    """The server's GBNF check agrees with llama.cpp's parser and says where it stopped."""
    from pollama.errors import BadRequest
    from pollama.inference.grammar import check_grammar

    if error is None:
        check_grammar(grammar)
    else:
        with pytest.raises(BadRequest) as err:
            check_grammar(grammar)
        assert str(err.value) == f"invalid grammar: {error}"
