"""The OpenAI-compatible API through the real `openai` SDK and LangChain's `ChatOpenAI`
against a real server and the real SmolLM2: every endpoint, field and error a client meets.

Greedy answers (temperature 0, a seed) are compared with what the native `/api/chat` and
`/api/generate` answer for the same request; tool_choice runs sample (temperature 1) with ten
seeds, so a choice holds on every run only because the sampler enforces it.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers import Server
from tests.schema_check import check_schema
from tests.templates import CHATML_THINK, SCHEMAS, TIME, TOOLS, WEATHER, WEATHER_ASK

HTTP_TIMEOUT = 300
ASK = [{"role": "user", "content": "Name a color."}]
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 42}
RUNS = 10


@pytest.fixture(scope="module")
def server():
    srv = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE"}).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="x", timeout=HTTP_TIMEOUT, max_retries=0)



@pytest.fixture(scope="module")
def thinker(server, smol) -> str:
    server.client().create(model="smol-think", from_=smol, template=CHATML_THINK,
                           parameters={"stop": ["<|im_end|>"]})
    return "smol-think"


def native_chat(server, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/api/chat", json={"stream": False, **body},
                   timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def sse_lines(server, path: str, body: dict[str, Any]) -> list[str]:
    with httpx.stream("POST", f"{server.url}{path}", json=body, timeout=HTTP_TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return [line for line in r.iter_lines() if line]


# -- chat completions ------------------------------------------------------------------------


def test_chat_answers_as_the_native_chat_does(server, client, smol):
    answer = client.chat.completions.create(model=smol, messages=ASK, max_tokens=12, **GREEDY)
    native = native_chat(server, model=smol, messages=ASK,
                         options={**GREEDY, "num_predict": 12, "top_p": 1.0})
    choice = answer.choices[0]
    assert choice.message.content == native["message"]["content"] and choice.message.content
    assert choice.message.role == "assistant" and choice.index == 0
    assert choice.finish_reason == native["done_reason"] == "length"
    assert answer.object == "chat.completion" and answer.model == smol
    assert answer.id.startswith("chatcmpl-") and answer.system_fingerprint == "fp_ollama"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == native["prompt_eval_count"]
    assert answer.usage.completion_tokens == native["eval_count"] == 12
    assert answer.usage.total_tokens == 12 + native["prompt_eval_count"]


def test_chat_stream_with_usage_matches_the_whole_answer(server, client, smol):
    whole = client.chat.completions.create(model=smol, messages=ASK, max_tokens=10, **GREEDY)
    chunks = list(client.chat.completions.create(
        model=smol, messages=ASK, max_tokens=10, stream=True,
        stream_options={"include_usage": True}, **GREEDY))
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish, usage = chunks[-2], chunks[-1]
    assert finish.choices[0].finish_reason == "length"
    assert finish.choices[0].delta.content is None
    assert usage.choices == [] and usage.usage is not None
    assert usage.usage.completion_tokens == 10
    assert usage.usage.prompt_tokens == whole.usage.prompt_tokens  # type: ignore[union-attr]
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_wire_format_ends_with_done(server, smol):
    lines = sse_lines(server, "/v1/chat/completions", {
        "model": smol, "messages": ASK, "stream": True, "max_tokens": 3, **GREEDY})
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    finish = json.loads(lines[-2][6:])
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    first = json.loads(lines[0][6:])
    assert list(first) == ["id", "object", "created", "model", "system_fingerprint", "choices"]
    assert first["choices"][0]["delta"]["role"] == "assistant"


def test_chat_stop_seed_and_max_completion_tokens(client, smol):
    def ask(**kw: Any) -> Any:
        return client.chat.completions.create(model=smol, messages=ASK, **kw).choices[0]

    full = ask(max_completion_tokens=16, **GREEDY)
    words = full.message.content.split()
    assert len(words) >= 3
    cut = ask(max_completion_tokens=16, stop=[words[2]], **GREEDY)
    assert cut.finish_reason == "stop" and words[2] not in cut.message.content
    assert full.message.content.startswith(cut.message.content)
    sampled = [ask(max_tokens=12, temperature=1.0, seed=s).message.content for s in (7, 7, 8)]
    assert sampled[0] == sampled[1]  # a seed makes a sampled answer repeatable
    assert ask(max_tokens=12, temperature=1.0, seed=7, top_p=0.5, frequency_penalty=0.5,
               presence_penalty=0.5).message.content


def test_chat_json_schema_and_json_object(client, smol):
    schema = {"type": "object", "properties": {
        "color": {"type": "string", "enum": ["red", "green", "blue"]},
        "shade": {"type": "integer"}}, "required": ["color", "shade"]}
    answer = client.chat.completions.create(
        model=smol, messages=ASK, max_tokens=40, **GREEDY,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}})
    check_schema(json.loads(answer.choices[0].message.content or ""), schema)
    obj = client.chat.completions.create(model=smol, messages=ASK, max_tokens=24, **GREEDY,
                                         response_format={"type": "json_object"})
    assert (obj.choices[0].message.content or "").lstrip().startswith("{")


def test_chat_logprobs_streamed_and_not(client, smol):
    answer = client.chat.completions.create(model=smol, messages=ASK, max_tokens=4,
                                            logprobs=True, top_logprobs=2, **GREEDY)
    content = answer.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == 4
    assert "".join(t.token for t in content) == answer.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and bytes(entry.bytes or []).decode() == entry.token
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.top_logprobs[0].token == entry.token  # greedy: the best one
    chunks = list(client.chat.completions.create(model=smol, messages=ASK, max_tokens=4,
                                                 logprobs=True, stream=True, **GREEDY))
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs
                for t in c.choices[0].logprobs.content or []]
    assert [t.token for t in streamed] == [t.token for t in content]
    assert all(t.top_logprobs == [] for t in streamed)


def test_reasoning_effort_maps_to_think(client, smol, thinker):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=smol, messages=ASK, reasoning_effort="low")
    assert err.value.body["message"] == '"smollm2:135m" does not support thinking'  # type: ignore[index]
    none = client.chat.completions.create(model=smol, messages=ASK, max_tokens=2,
                                          reasoning_effort="none", **GREEDY)
    assert none.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match='invalid reasoning value: "lots"'):
        client.chat.completions.create(model=smol, messages=ASK,
                                       extra_body={"reasoning_effort": "lots"})
    # few-shot history makes the 135M model think the same words each time (GF-11 test)
    history: list[Any] = []
    for color in ("red", "blue", "green", "black"):
        history += [{"role": "user", "content": "Color?"},
                    {"role": "assistant", "reasoning": "I will answer.", "content": color}]
    history.append({"role": "user", "content": "Color?"})
    answer = client.chat.completions.create(model=thinker, messages=history, max_tokens=16,
                                            reasoning_effort="high", **GREEDY)
    message = answer.choices[0].message
    assert message.reasoning == "I will answer."  # type: ignore[attr-defined]
    assert message.content and "I will answer" not in message.content
    chunks = list(client.chat.completions.create(model=thinker, messages=history,
                                                 max_tokens=16, reasoning_effort="high",
                                                 stream=True, **GREEDY))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(getattr(d, "reasoning", None) or "" for d in deltas)
    assert reasoning == "I will answer."
    assert "".join(d.content or "" for d in deltas) == message.content
    assert not any(getattr(d, "reasoning", None) and d.content for d in deltas)  # split


def test_tool_round_trip_messages_reach_the_template(server, client, tooly):
    messages: list[Any] = [
        *WEATHER_ASK,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_x1", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_x1", "content": "22 degrees and sunny"}]
    r = httpx.post(f"{server.url}/v1/chat/completions", timeout=HTTP_TIMEOUT, json={
        "model": tooly, "messages": messages, "tools": TOOLS, "_debug_render_only": True})
    prompt = r.json()["_debug_info"]["rendered_template"]
    assert ('<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris","unit":"celsius"}}'
            in prompt)
    assert "<tool_response>\n22 degrees and sunny\n</tool_response>" in prompt
    assert '"name":"get_time"' in prompt
    answer = client.chat.completions.create(model=tooly, messages=messages, tools=TOOLS,
                                            tool_choice="none", max_tokens=16, **GREEDY)
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls


def test_tool_choice_required_always_calls_a_tool(client, tooly):
    for seed in range(RUNS):
        answer = client.chat.completions.create(
            model=tooly, messages=WEATHER_ASK, tools=TOOLS, tool_choice="required",
            temperature=1.0, seed=seed, max_tokens=48)
        choice = answer.choices[0]
        calls = choice.message.tool_calls or []
        assert calls, f"seed {seed}: no tool call in {choice.message!r}"
        # parallel calls are allowed: the model may still be writing another at max_tokens
        assert choice.finish_reason in ("tool_calls", "length")
        for i, call in enumerate(calls):
            assert call.type == "function" and call.id.startswith("call_")
            assert call.function.name in SCHEMAS
            check_schema(json.loads(call.function.arguments), SCHEMAS[call.function.name])
            assert call.index == i  # type: ignore[attr-defined]
        assert (choice.message.content or "").strip() == ""


def test_tool_choice_named_function_is_the_one_called(client, tooly):
    for seed in range(RUNS):
        answer = client.chat.completions.create(
            model=tooly, messages=WEATHER_ASK, tools=TOOLS, temperature=1.0, seed=seed,
            max_tokens=48, tool_choice={"type": "function", "function": {"name": "get_time"}})
        calls = answer.choices[0].message.tool_calls or []
        assert calls and {c.function.name for c in calls} == {"get_time"}, f"seed {seed}"
        for call in calls:
            check_schema(json.loads(call.function.arguments), TIME)


def test_tool_choice_none_never_calls_a_tool(client, tooly):
    forced = 'root ::= "<tool_call>{\\"name\\": \\"get_time\\", \\"arguments\\": {}}</tool_call>"'
    auto = client.chat.completions.create(model=tooly, messages=WEATHER_ASK, tools=TOOLS,
                                          max_tokens=32, extra_body={"grammar": forced},
                                          **GREEDY)
    assert [c.function.name for c in auto.choices[0].message.tool_calls or []] == ["get_time"]
    for seed in range(RUNS):
        answer = client.chat.completions.create(
            model=tooly, messages=WEATHER_ASK, tools=TOOLS, tool_choice="none",
            temperature=1.0, seed=seed, max_tokens=48,
            extra_body={"grammar": forced} if seed == 0 else None)
        message = answer.choices[0].message
        assert not message.tool_calls, f"seed {seed}: {message!r}"
        assert answer.choices[0].finish_reason in ("stop", "length")


def test_parallel_tool_calls_false_and_streamed_tool_calls(client, tooly):
    one = client.chat.completions.create(
        model=tooly, messages=WEATHER_ASK, tools=TOOLS, tool_choice="required",
        parallel_tool_calls=False, temperature=1.0, seed=3, max_tokens=64)
    assert len(one.choices[0].message.tool_calls or []) == 1
    chunks = list(client.chat.completions.create(
        model=tooly, messages=WEATHER_ASK, tools=TOOLS, tool_choice="required",
        parallel_tool_calls=False, temperature=1.0, seed=5, max_tokens=64, stream=True))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].function and calls[0].function.name in SCHEMAS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"  # one call, the grammar ends
    for tc in calls:
        check_schema(json.loads(tc.function.arguments or ""),  # type: ignore[union-attr]
                     SCHEMAS[tc.function.name])  # type: ignore[union-attr,index]


def test_bad_tool_choice_is_an_openai_400(client, tooly):
    with pytest.raises(openai.BadRequestError, match="not one of the request's tools"):
        client.chat.completions.create(model=tooly, messages=WEATHER_ASK, tools=TOOLS,
                                       tool_choice={"type": "function",
                                                    "function": {"name": "nope"}})


def test_images_to_a_text_model_and_web_urls_are_refused_clearly(client, smol):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    parts: list[Any] = [{"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]
    with pytest.raises(openai.BadRequestError, match="smollm2:135m does not support vision"):
        client.chat.completions.create(model=smol, messages=[{"role": "user", "content": parts}])
    parts[1] = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=smol, messages=[{"role": "user", "content": parts}])
    assert err.value.body["message"] == ("image URLs are not currently supported, please use "  # type: ignore[index]
                                         "base64 encoded data instead")


# -- errors ----------------------------------------------------------------------------------


def test_errors_in_openai_shape(server, client, smol):
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="nope:1", messages=ASK)
    assert nf.value.status_code == 404
    assert nf.value.body == {"message": "model 'nope:1' not found", "type": "not_found_error",
                             "param": None, "code": None}
    with pytest.raises(openai.NotFoundError):
        list(client.chat.completions.create(model="nope:1", messages=ASK, stream=True))
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=smol, messages=[])
    assert bad.value.body == {"message": "[] is too short - 'messages'",  # type: ignore[comparison-overlap]
                              "type": "invalid_request_error", "param": None, "code": None}
    with pytest.raises(openai.BadRequestError, match="'n' is not supported"):
        client.chat.completions.create(model=smol, messages=ASK, n=2)
    for body, text in ((b"{oops", "invalid character 'o' looking for beginning of value"),
                       (b"", "missing request body"),
                       (json.dumps({"model": smol, "messages": ASK, "temperature": "hot"}
                                   ).encode(),
                        "json: cannot unmarshal string into Go struct field "
                        "ChatCompletionRequest.temperature of type float64")):
        r = httpx.post(f"{server.url}/v1/chat/completions", content=body, timeout=HTTP_TIMEOUT)
        assert r.status_code == 400
        assert r.json() == {"error": {"message": text, "type": "invalid_request_error",
                                      "param": None, "code": None}}
    r = httpx.post(f"{server.url}/v1/chat/completions", timeout=HTTP_TIMEOUT,
                   json={"messages": ASK})
    assert r.status_code == 400 and r.json()["error"]["message"] == "model is required"
    r = httpx.get(f"{server.url}/v1/nothing-here", timeout=HTTP_TIMEOUT)
    assert r.status_code == 404 and r.text == "404 page not found"


# -- completions -----------------------------------------------------------------------------


def test_completions_as_native_generate(server, client, smol):
    answer = client.completions.create(model=smol, prompt="The sky is", max_tokens=8,
                                       **GREEDY)
    native = httpx.post(f"{server.url}/api/generate", timeout=HTTP_TIMEOUT, json={
        "model": smol, "prompt": "The sky is", "stream": False,
        "options": {**GREEDY, "num_predict": 8, "top_p": 1.0}}).json()
    assert answer.choices[0].text == native["response"] and answer.choices[0].text
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage and answer.usage.completion_tokens == 8
    chunks = list(client.completions.create(model=smol, prompt="The sky is", max_tokens=8,
                                            stream=True, stream_options={"include_usage": True},
                                            **GREEDY))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == answer.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage
    assert chunks[-1].usage.completion_tokens == 8
    assert chunks[-2].choices[0].finish_reason == "length"


def test_completions_logprobs_suffix_and_refusals(server, client, smol):
    answer = client.completions.create(model=smol, prompt="The sky is", max_tokens=4,
                                       logprobs=2, **GREEDY)
    lp = answer.choices[0].logprobs
    assert lp is not None and lp.tokens and "".join(lp.tokens) == answer.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(4)]
    assert all(len(top) <= 2 and max(top.values()) == v
               for top, v in zip(lp.top_logprobs or [], lp.token_logprobs or [], strict=True))
    with pytest.raises(openai.BadRequestError, match="does not support insert"):
        client.completions.create(model=smol, prompt="def f(", suffix="return x", max_tokens=4)
    server.client().create(model="smol-fim", from_=smol,
                           template="<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>")
    fim = httpx.post(f"{server.url}/v1/completions", timeout=HTTP_TIMEOUT, json={
        "model": "smol-fim", "prompt": "def f(", "suffix": "return x",
        "_debug_render_only": True}).json()
    assert fim["_debug_info"]["rendered_template"] == "<PRE> def f( <SUF>return x <MID>"
    assert client.completions.create(model="smol-fim", prompt="def f(", suffix="return x",
                                     max_tokens=4, **GREEDY).choices[0].text
    for kwargs, text in (({"echo": True}, "'echo' is not supported"),
                         ({"best_of": 2}, "'best_of' is not supported"),
                         ({"n": 2}, "'n' is not supported"),
                         ({"logit_bias": {"50": 10}}, "'logit_bias' is not supported"),
                         ({"stop": ["a", 5]}, "invalid type for 'stop' field: float64")):
        with pytest.raises(openai.BadRequestError, match=text):
            client.completions.create(model=smol, prompt="x", **kwargs)


# -- embeddings (the native embed service is W2-C's w2c-embed branch) ------------------------


def test_embeddings_float_base64_and_dimensions(client, smol):
    floats = client.embeddings.create(model=smol, input=["hello", "world"])
    assert [d.index for d in floats.data] == [0, 1] and floats.model == smol
    vec = floats.data[0].embedding
    assert abs(sum(v * v for v in vec) - 1) < 1e-3  # L2-normalized (EMB-03)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    raw = httpx.post(f"{client.base_url}embeddings", timeout=HTTP_TIMEOUT, json={
        "model": smol, "input": "hello", "encoding_format": "base64"}).json()
    decoded = struct.unpack(f"<{len(vec)}f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(vec, abs=1e-6)
    # the SDK asks for base64 itself and decodes it back to floats
    assert client.embeddings.create(model=smol, input="hello").data[0].embedding == \
        pytest.approx(vec, abs=1e-6)
    short = client.embeddings.create(model=smol, input="hello", dimensions=8).data[0].embedding
    assert len(short) == 8 and abs(sum(v * v for v in short) - 1) < 1e-3
    with pytest.raises(openai.BadRequestError, match="invalid input"):
        client.embeddings.create(model=smol, input=[])
    with pytest.raises(openai.BadRequestError, match="Invalid value for 'encoding_format'"):
        client.embeddings.create(model=smol, input="x",
                                 encoding_format="hex")  # type: ignore[arg-type]


# -- models ----------------------------------------------------------------------------------


def test_models_list_and_retrieve(server, client, smol):
    listed = {m.id: m for m in client.models.list()}
    assert smol in listed and listed[smol].owned_by == "library"
    assert listed[smol].object == "model" and listed[smol].created > 1_600_000_000
    tags = {m["name"] for m in httpx.get(f"{server.url}/api/tags").json()["models"]}
    assert set(listed) == tags
    one = client.models.retrieve(smol)
    assert one.id == smol and one.created == listed[smol].created
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope:1")


# -- responses -------------------------------------------------------------------------------


def test_responses_create_and_stream(client, smol):
    answer = client.responses.create(model=smol, input="Name a color.", max_output_tokens=8,
                                     temperature=0, instructions="Answer in one word.")
    assert answer.status == "completed" and answer.object == "response"
    assert answer.id.startswith("resp_") and answer.instructions == "Answer in one word."
    assert [o.type for o in answer.output] == ["message"] and answer.output_text
    assert answer.usage and 0 < answer.usage.output_tokens <= 8
    with client.responses.stream(model=smol, input="Name a color.", max_output_tokens=8,
                                 temperature=0, instructions="Answer in one word.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output_text == answer.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == answer.output_text
    raw = list(client.responses.create(model=smol, input="Name a color.", stream=True,
                                       max_output_tokens=4, temperature=0))
    assert raw[-1].type == "response.completed"


def test_responses_function_calls_round_trip(client, tooly):
    tools: list[Any] = [{"type": "function", "name": t["function"]["name"],
                         "description": t["function"]["description"],
                         "parameters": t["function"]["parameters"], "strict": False}
                        for t in TOOLS]
    answer = client.responses.create(model=tooly, input=WEATHER_ASK[0]["content"], tools=tools,
                                     tool_choice={"type": "function", "name": "get_weather"},
                                     temperature=0, max_output_tokens=64)
    calls = [o for o in answer.output if o.type == "function_call"]
    assert calls and all(c.name == "get_weather" for c in calls)
    check_schema(json.loads(calls[0].arguments), WEATHER)
    follow_up: list[Any] = [{"role": "user", "content": WEATHER_ASK[0]["content"]}]
    follow_up += [{"type": "function_call", "call_id": c.call_id, "name": c.name,
                   "arguments": c.arguments} for c in calls]
    follow_up += [{"type": "function_call_output", "call_id": c.call_id,
                   "output": "22 degrees and sunny"} for c in calls]
    final = client.responses.create(model=tooly, input=follow_up, tools=tools,
                                    tool_choice="none", temperature=0, max_output_tokens=24)
    assert final.output_text and not [o for o in final.output if o.type == "function_call"]
    with client.responses.stream(model=tooly, input=WEATHER_ASK[0]["content"], tools=tools,
                                 tool_choice="required", temperature=1.0,
                                 max_output_tokens=64) as stream:
        events = list(stream)
        streamed = stream.get_final_response()
    assert [o.type for o in streamed.output if o.type == "function_call"]
    assert any(e.type == "response.function_call_arguments.done" for e in events)


def test_responses_refusals(client, smol):
    with pytest.raises(openai.NotFoundError, match="Previous response with id 'resp_1' not"):
        client.responses.create(model=smol, input="x", previous_response_id="resp_1")
    with pytest.raises(openai.BadRequestError, match="'conversation' is not supported"):
        client.responses.create(model=smol, input="x", conversation="conv_1")
    with pytest.raises(openai.NotFoundError, match="model 'nope:1' not found"):
        client.responses.create(model="nope:1", input="x")


# -- LangChain -------------------------------------------------------------------------------


def test_langchain_chat_openai(server, smol, tooly):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{server.url}/v1", api_key="x", model=smol,  # type: ignore[arg-type]
                     temperature=0, seed=42, max_tokens=8)
    answer = llm.invoke("Name a color.")
    assert isinstance(answer.content, str) and answer.content
    assert answer.usage_metadata and answer.usage_metadata["output_tokens"] == 8
    streamed = list(llm.stream("Name a color."))
    assert "".join(str(c.content) for c in streamed) == answer.content

    @tool
    def get_time(zone: str) -> str:
        """Current time in a time zone."""
        return "12:00"

    caller = ChatOpenAI(base_url=f"{server.url}/v1", api_key="x", model=tooly,  # type: ignore[arg-type]
                        temperature=1.0, seed=1, max_tokens=48).bind_tools(
        [get_time], tool_choice="get_time")
    message = caller.invoke("What time is it in Tokyo?")
    assert [c["name"] for c in message.tool_calls] == ["get_time"]  # type: ignore[attr-defined]
    assert isinstance(message.tool_calls[0]["args"]["zone"], str)  # type: ignore[attr-defined]
