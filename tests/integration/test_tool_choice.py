"""`tool_choice` obeyed through the native `/api/chat` (beyond Ollama), and the tokenizer endpoints.

SmolLM2 with a hand-written ChatML tools template (`smol-tools`) answers with different seeds
and a temperature that lets it wander: a choice holds on every run only if the sampler enforces
it. The OpenAI and Anthropic dialects translate into the same fields (their own tests).
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import Server
from tests.schema_check import check_schema
from tests.templates import SCHEMAS, TIME, TOOLS, WEATHER_ASK

HTTP_TIMEOUT = 300
ASK = WEATHER_ASK
RUNS = 10


@pytest.fixture(scope="module")
def server():
    srv = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE"}).start()
    yield srv
    srv.cleanup()


def chat(server, **body):
    r = httpx.post(f"{server.url}/api/chat", json={"stream": False, **body},
                   timeout=HTTP_TIMEOUT)
    return r


def options(seed: int) -> dict:
    return {"temperature": 1.0, "seed": seed, "num_predict": 48}


def test_required_always_calls_a_tool_with_valid_arguments(server, tooly):
    for seed in range(RUNS):
        r = chat(server, model=tooly, messages=ASK, tools=TOOLS, tool_choice="required",
                 options=options(seed))
        assert r.status_code == 200, r.text
        message = r.json()["message"]
        calls = message.get("tool_calls") or []
        assert calls, f"seed {seed}: no tool call in {message!r}"
        for call in calls:
            fn = call["function"]
            check_schema(fn["arguments"], SCHEMAS[fn["name"]])
        assert message["content"].strip() == ""


def test_named_function_is_the_one_called(server, tooly):
    for seed in range(RUNS):
        r = chat(server, model=tooly, messages=ASK, tools=TOOLS, options=options(seed),
                 tool_choice={"type": "function", "function": {"name": "get_time"}})
        assert r.status_code == 200, r.text
        calls = r.json()["message"].get("tool_calls") or []
        assert calls and {c["function"]["name"] for c in calls} == {"get_time"}
        for call in calls:
            check_schema(call["function"]["arguments"], TIME)


def test_none_never_calls_a_tool(server, tooly):
    # A grammar that makes the model write a well-formed call: with tool_choice "auto" the
    # server reads it as one; with "none" it stays text, and the prompt shows no tools.
    call = 'root ::= "<tool_call>{\\"name\\": \\"get_time\\", \\"arguments\\": {}}</tool_call>"'
    auto = chat(server, model=tooly, messages=ASK, tools=TOOLS, grammar=call,
                options=options(0)).json()["message"]
    assert [c["function"]["name"] for c in auto["tool_calls"]] == ["get_time"]
    for seed in range(RUNS):
        r = chat(server, model=tooly, messages=ASK, tools=TOOLS, tool_choice="none",
                 options=options(seed), **({"grammar": call} if seed == 0 else {}))
        assert r.status_code == 200, r.text
        message = r.json()["message"]
        assert not message.get("tool_calls"), f"seed {seed}: {message!r}"
    rendered = httpx.post(f"{server.url}/api/chat", timeout=HTTP_TIMEOUT, json={
        "model": tooly, "messages": ASK, "tools": TOOLS, "tool_choice": "none",
        "_debug_render_only": True}).json()["_debug_info"]["rendered_template"]
    assert "get_weather" not in rendered


def test_parallel_tool_calls_false_keeps_one_call(server, tooly):
    two = ('root ::= "<tool_call>{\\"name\\": \\"get_time\\", \\"arguments\\": {}}</tool_call>'
           '<tool_call>{\\"name\\": \\"get_weather\\", \\"arguments\\": {}}</tool_call>"')
    both = chat(server, model=tooly, messages=ASK, tools=TOOLS, grammar=two,
                options=options(0)).json()["message"]["tool_calls"]
    assert [c["function"]["name"] for c in both] == ["get_time", "get_weather"]
    one = chat(server, model=tooly, messages=ASK, tools=TOOLS, grammar=two,
               parallel_tool_calls=False, options=options(0)).json()["message"]["tool_calls"]
    assert [c["function"]["name"] for c in one] == ["get_time"]
    forced = chat(server, model=tooly, messages=ASK, tools=TOOLS, tool_choice="required",
                  parallel_tool_calls=False, options=options(3)).json()["message"]
    assert len(forced["tool_calls"]) == 1


def test_streamed_required_call_arrives_as_tool_calls(server, tooly):
    # the official client has no tool_choice parameter: plain HTTP, NDJSON lines
    with httpx.stream("POST", f"{server.url}/api/chat", timeout=HTTP_TIMEOUT, json={
            "model": tooly, "messages": ASK, "tools": TOOLS, "tool_choice": "required",
            "options": options(5)}) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
    assert calls and lines[-1]["done"] is True
    assert "".join(line["message"]["content"] for line in lines).strip() == ""


@pytest.mark.parametrize("choice, text", [
    ("always", 'invalid tool_choice: "always"'),
    ({"type": "function", "function": {"name": "nope"}},
     'tool_choice names "nope", which is not one of the request\'s tools'),
    ({"type": "function"}, "needs the function's \"name\""),
])
def test_bad_tool_choice_is_a_400(server, tooly, choice, text):
    r = chat(server, model=tooly, messages=ASK, tools=TOOLS, tool_choice=choice)
    assert r.status_code == 400 and text in r.json()["error"]


def test_required_without_tools_or_with_format_is_a_400(server, tooly):
    r = chat(server, model=tooly, messages=ASK, tool_choice="required")
    assert r.status_code == 400 and "needs at least one tool" in r.json()["error"]
    r = chat(server, model=tooly, messages=ASK, tools=TOOLS, tool_choice="required",
             format="json")
    assert r.status_code == 400
    assert r.json()["error"] == "a required tool_choice cannot be combined with format or grammar"


# -- /api/tokenize and /api/detokenize ---------------------------------------------------------


def test_tokenize_round_trips_and_parses_special_tokens(server, smol):
    text = "<|im_start|>user\nHello, world!<|im_end|>"
    r = httpx.post(f"{server.url}/api/tokenize", json={"model": smol, "content": text},
                   timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == smol and body["total_duration"] > 0
    tokens = body["tokens"]
    assert all(isinstance(t, int) for t in tokens)
    plain = httpx.post(f"{server.url}/api/tokenize", json={"model": smol, "content": "user"},
                       timeout=HTTP_TIMEOUT).json()["tokens"]
    assert len(tokens) < len(text) // 2  # <|im_start|> is one token, not eleven characters
    assert plain and set(plain) <= set(tokens)
    back = httpx.post(f"{server.url}/api/detokenize", json={"model": smol, "tokens": tokens},
                      timeout=HTTP_TIMEOUT)
    assert back.status_code == 200 and back.json()["content"] == text


def test_token_count_matches_what_generate_reads(server, smol):
    prompt = "The quick brown fox jumps over the lazy dog."
    tokens = httpx.post(f"{server.url}/api/tokenize", json={"model": smol, "content": prompt},
                        timeout=HTTP_TIMEOUT).json()["tokens"]
    done = httpx.post(f"{server.url}/api/generate", timeout=HTTP_TIMEOUT, json={
        "model": smol, "prompt": prompt, "raw": True, "stream": False,
        "options": {"num_predict": 1, "temperature": 0, "num_ctx": 1024}}).json()
    assert done["prompt_eval_count"] == len(tokens)


@pytest.mark.parametrize("path, body, status, text", [
    ("/api/tokenize", {"content": "x"}, 400, "model is required"),
    ("/api/tokenize", {"model": "nope:1", "content": "x"}, 404, "model 'nope:1' not found"),
    ("/api/tokenize", {"model": "smollm2:135m", "content": 5}, 400, "cannot unmarshal number"),
    ("/api/detokenize", {"model": "smollm2:135m", "tokens": [1, 10**9]}, 400,
     "token id 1000000000 is out of range"),
    ("/api/detokenize", {"model": "smollm2:135m", "tokens": "1"}, 400, "cannot unmarshal"),
])
def test_tokenizer_endpoints_refuse_bad_input(server, smol, path, body, status, text):
    r = httpx.post(f"{server.url}{path}", json=body, timeout=HTTP_TIMEOUT)
    assert r.status_code == status, r.text
    assert text in r.json()["error"]
