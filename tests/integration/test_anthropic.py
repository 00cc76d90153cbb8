"""The Anthropic-compatible API (`/v1/messages`, `/v1/messages/count_tokens`) through the real
`anthropic` SDK against a real server and SmolLM2.

Most checks compare with what the native `/api/chat` does for the same conversation: the same
greedy text, the same prompt token count (`usage.input_tokens` and `count_tokens` against
`prompt_eval_count`), so a field the translation drops or misplaces changes a number. This SDK
version has no `temperature`/`top_k`/`top_p` arguments: clients send them in `extra_body`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx
import pytest

from tests.helpers import Server
from tests.schema_check import check_schema
from tests.templates import CHATML_THINK, SCHEMAS, TIME, WEATHER, WEATHER_ASK
from tests.templates import TOOLS as NATIVE_TOOLS

HTTP_TIMEOUT = 300
GREEDY = {"temperature": 0}
ASK = [{"role": "user", "content": "Write one sentence about the sea."}]
# The shared tools in Anthropic's shape.
TOOLS = [{"name": t["function"]["name"], "description": t["function"]["description"],
          "input_schema": t["function"]["parameters"]} for t in NATIVE_TOOLS]
RUNS = 10
EPHEMERAL = {"type": "ephemeral"}
# CHATML_THINK, and the answer opened with <think> when thinking is on: a 135M model does not
# start a thinking on its own, so the template starts it and the model writes the thinking.
THINK_PREFILL = CHATML_THINK.replace(
    '{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant\n{{ end }}',
    '{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant\n'
    '{{ if $.Think }}<think>\n{{ end }}{{ end }}')


@pytest.fixture(scope="module")
def server():
    srv = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE"}).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def client(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0,
                               timeout=HTTP_TIMEOUT)



@pytest.fixture(scope="module")
def thinker(server, smol) -> str:
    assert THINK_PREFILL != CHATML_THINK
    server.client().create(model="smol-think", from_=smol, template=THINK_PREFILL,
                           parameters={"stop": ["<|im_end|>"]})
    return "smol-think"


def native_chat(server, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/api/chat", json={"stream": False, **body},
                   timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


# -- create ------------------------------------------------------------------------------------


def test_create_answers_as_native_chat_does(server, client, smol):
    msg = client.messages.create(model=smol, max_tokens=16, system="Answer briefly.",
                                 messages=ASK, extra_body=GREEDY)
    native = native_chat(server, model=smol, options={**GREEDY, "num_predict": 16},
                         messages=[{"role": "system", "content": "Answer briefly."}, *ASK])
    assert re.fullmatch(r"msg_[0-9a-f]{24}", msg.id)
    assert msg.type == "message" and msg.role == "assistant" and msg.model == smol
    assert [b.type for b in msg.content] == ["text"]
    assert text_of(msg) == native["message"]["content"] != ""
    assert msg.usage.input_tokens == native["prompt_eval_count"]
    assert msg.usage.output_tokens == native["eval_count"]
    expected = {"stop": "end_turn", "length": "max_tokens"}[native["done_reason"]]
    assert msg.stop_reason == expected and msg.stop_sequence is None


def test_max_tokens_ends_with_max_tokens(client, smol):
    msg = client.messages.create(model=smol, max_tokens=1, messages=ASK, extra_body=GREEDY)
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 1


def test_system_blocks_content_blocks_cache_control_and_metadata(server, client, smol):
    # system blocks are joined as Ollama joins them; cache_control and metadata change nothing
    msg = client.messages.create(
        model=smol, max_tokens=8, extra_body=GREEDY, metadata={"user_id": "someone"},
        system=[{"type": "text", "text": "You are terse. "},
                {"type": "text", "text": "You like boats.", "cache_control": EPHEMERAL}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Write one sentence "},
            {"type": "text", "text": "about the sea.", "cache_control": EPHEMERAL}]}])
    native = native_chat(server, model=smol, options={**GREEDY, "num_predict": 8}, messages=[
        {"role": "system", "content": "You are terse. You like boats."}, *ASK])
    assert msg.usage.input_tokens == native["prompt_eval_count"]
    assert text_of(msg) == native["message"]["content"]


def test_sampling_fields_reach_the_sampler(client, smol):
    greedy = text_of(client.messages.create(model=smol, max_tokens=16, messages=ASK,
                                            extra_body=GREEDY))
    # at temperature 1 the answer is random, unless top_k 1 (or a tiny top_p) keeps one token
    for extra in ({"temperature": 1.0, "top_k": 1}, {"temperature": 1.0, "top_p": 1e-9}):
        msg = client.messages.create(model=smol, max_tokens=16, messages=ASK, extra_body=extra)
        assert text_of(msg) == greedy, extra


def test_stop_sequences_cut_the_answer(client, smol):
    full = text_of(client.messages.create(model=smol, max_tokens=24, messages=ASK,
                                          extra_body=GREEDY))
    words = full.split()
    assert len(words) >= 4, full
    stop = " " + words[2]
    cut = client.messages.create(model=smol, max_tokens=24, messages=ASK, extra_body=GREEDY,
                                 stop_sequences=[stop])
    assert text_of(cut) == full[:full.index(stop)]
    # beyond Ollama (end_turn): the answer says which of the request's sequences ended it
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == stop
    with client.messages.stream(model=smol, max_tokens=24, messages=ASK, extra_body=GREEDY,
                                stop_sequences=["never-written", stop]) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "stop_sequence" and streamed.stop_sequence == stop
    # the native API keeps Ollama's fields: no stop_sequence there
    native = httpx.post(f"{client.base_url}".removesuffix("/") + "/api/chat", timeout=300,
                        json={"model": smol, "messages": [{"role": "user", "content": "Hi"}],
                              "stream": False, "options": {**GREEDY, "stop": [stop]}}).json()
    assert "stop_sequence" not in native and native["done"] is True


def test_json_schema_output_format(client, smol):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    msg = client.messages.create(model=smol, max_tokens=32, messages=ASK, extra_body=GREEDY,
                                 output_config={"format": {"type": "json_schema",
                                                           "schema": schema}})
    check_schema(json.loads(text_of(msg)), schema)


# -- streaming ---------------------------------------------------------------------------------


def test_stream_helper_accumulates_the_same_message(client, smol):
    made = client.messages.create(model=smol, max_tokens=16, messages=ASK, extra_body=GREEDY)
    with client.messages.stream(model=smol, max_tokens=16, messages=ASK,
                                extra_body=GREEDY) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == text_of(final) == text_of(made)
    assert final.stop_reason == made.stop_reason
    assert final.usage.input_tokens == made.usage.input_tokens
    assert final.usage.output_tokens == made.usage.output_tokens
    assert re.fullmatch(r"msg_[0-9a-f]{24}", final.id) and final.id != made.id


def test_raw_stream_event_order(server, client, smol):
    events = list(client.messages.create(model=smol, max_tokens=8, messages=ASK,
                                         extra_body=GREEDY, stream=True))
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert events[0].message.content == [] and events[0].message.usage.output_tokens == 0
    body = types[1:-2]
    assert body[0] == "content_block_start" and body[-1] == "content_block_stop"
    assert set(body[1:-1]) == {"content_block_delta"}
    assert events[1].content_block.type == "text" and events[1].index == 0
    assert all(e.index == 0 for e in events[1:-2])
    assert events[-2].delta.stop_reason == "max_tokens" and events[-2].usage.output_tokens == 8
    # on the wire: each frame's event name is its data's type
    with httpx.stream("POST", f"{server.url}/v1/messages", timeout=HTTP_TIMEOUT, json={
            "model": smol, "max_tokens": 8, "messages": ASK, "stream": True, **GREEDY}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["request-id"].startswith("req_")
        frames = r.read().decode().strip().split("\n\n")
    names = []
    for frame in frames:
        event, data = frame.split("\n")
        name = event.removeprefix("event: ")
        assert json.loads(data.removeprefix("data: "))["type"] == name
        names.append(name)
    assert names == types


# -- thinking ----------------------------------------------------------------------------------


def test_thinking_is_dropped_on_a_model_without_thinking(client, smol):
    plain = client.messages.create(model=smol, max_tokens=8, messages=ASK, extra_body=GREEDY)
    for kwargs in ({"thinking": {"type": "enabled", "budget_tokens": 1024}},
                   {"output_config": {"effort": "high"}}):
        msg = client.messages.create(model=smol, max_tokens=8, messages=ASK, extra_body=GREEDY,
                                     **kwargs)
        assert text_of(msg) == text_of(plain) and [b.type for b in msg.content] == ["text"]


def test_thinking_blocks_in_create_and_stream(client, thinker):
    on = {"type": "enabled", "budget_tokens": 1024}
    msg = client.messages.create(model=thinker, max_tokens=8, messages=ASK, thinking=on,
                                 extra_body=GREEDY)
    assert msg.content[0].type == "thinking" and msg.content[0].thinking.strip()
    assert msg.content[0].signature == ""
    with client.messages.stream(model=thinker, max_tokens=8, messages=ASK, thinking=on,
                                extra_body=GREEDY) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds  # the helper's event for each thinking_delta
    assert [b.type for b in final.content] == [b.type for b in msg.content]
    assert final.content[0].thinking == msg.content[0].thinking
    omitted = client.messages.create(model=thinker, max_tokens=8, messages=ASK,
                                     thinking={**on, "display": "omitted"}, extra_body=GREEDY)
    assert omitted.content[0].type == "thinking" and omitted.content[0].thinking == ""
    off = client.messages.create(model=thinker, max_tokens=8, messages=ASK,
                                 thinking={"type": "disabled"}, extra_body=GREEDY)
    assert [b.type for b in off.content] == ["text"]


def test_thinking_sent_back_reaches_the_prompt(client, thinker):
    history = [*ASK, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "The sea is large and blue.", "signature": ""},
        {"type": "text", "text": "The sea is blue."}]},
        {"role": "user", "content": "And the sky?"}]
    without = [*ASK, {"role": "assistant", "content": "The sea is blue."},
               {"role": "user", "content": "And the sky?"}]
    a = client.messages.count_tokens(model=thinker, messages=history)
    b = client.messages.count_tokens(model=thinker, messages=without)
    assert a.input_tokens > b.input_tokens


# -- tools -------------------------------------------------------------------------------------


def test_tool_use_round_trip(server, client, tooly):
    msg = client.messages.create(model=tooly, max_tokens=48, messages=WEATHER_ASK, tools=TOOLS,
                                 tool_choice={"type": "tool", "name": "get_weather"},
                                 extra_body=GREEDY)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert uses and all(u.name == "get_weather" for u in uses)
    check_schema(uses[0].input, WEATHER)
    with client.messages.stream(model=tooly, max_tokens=48, messages=WEATHER_ASK, tools=TOOLS,
                                tool_choice={"type": "tool", "name": "get_weather"},
                                extra_body=GREEDY) as stream:
        final = stream.get_final_message()
    streamed = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in streamed] == [(u.name, u.input) for u in uses]
    assert final.stop_reason == "tool_use"

    use = uses[0]
    history = [*WEATHER_ASK, {"role": "assistant", "content": [use.model_dump()]},
               {"role": "user", "content": [
                   {"type": "tool_result", "tool_use_id": use.id,
                    "content": [{"type": "text", "text": "18 degrees, sunny"}]},
                   {"type": "text", "text": "Thanks. Summarize it."}]}]
    answer = client.messages.create(model=tooly, max_tokens=16, messages=history, tools=TOOLS,
                                    extra_body=GREEDY)
    assert answer.stop_reason in ("end_turn", "max_tokens", "tool_use")
    # the same conversation in native form: the result comes first, as a tool message (the
    # same greedy answer: the same prompt; the count alone would not see the order)
    native = native_chat(server, model=tooly, tools=NATIVE_TOOLS,
                         options={**GREEDY, "num_predict": 16}, messages=[
        *WEATHER_ASK,
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": use.id, "function": {"name": use.name, "arguments": use.input}}]},
        {"role": "tool", "content": "18 degrees, sunny", "tool_call_id": use.id,
         "tool_name": use.name},
        {"role": "user", "content": "Thanks. Summarize it."}])
    assert answer.usage.input_tokens == native["prompt_eval_count"]
    assert text_of(answer) == native["message"]["content"] != ""
    counted = client.messages.count_tokens(model=tooly, messages=history, tools=TOOLS)
    assert counted.input_tokens == native["prompt_eval_count"]


def test_tool_choice_any_always_calls_a_tool(client, tooly):
    for run in range(RUNS):
        msg = client.messages.create(model=tooly, max_tokens=48, messages=WEATHER_ASK,
                                     tools=TOOLS, tool_choice={"type": "any"},
                                     extra_body={"temperature": 1.0})
        uses = [b for b in msg.content if b.type == "tool_use"]
        assert uses and msg.stop_reason == "tool_use", f"run {run}: {msg.content!r}"
        for use in uses:
            check_schema(use.input, SCHEMAS[use.name])


def test_tool_choice_tool_always_calls_that_tool(client, tooly):
    for run in range(RUNS):
        msg = client.messages.create(model=tooly, max_tokens=48, messages=WEATHER_ASK,
                                     tools=TOOLS, tool_choice={"type": "tool", "name": "get_time",
                                                               "disable_parallel_tool_use": True},
                                     extra_body={"temperature": 1.0})
        uses = [b for b in msg.content if b.type == "tool_use"]
        assert [u.name for u in uses] == ["get_time"], f"run {run}: {msg.content!r}"
        check_schema(uses[0].input, TIME)


def test_tool_choice_none_never_calls_a_tool(client, tooly):
    answers = set()
    for run in range(RUNS):
        msg = client.messages.create(model=tooly, max_tokens=32, messages=WEATHER_ASK,
                                     tools=TOOLS, tool_choice={"type": "none"},
                                     extra_body={"temperature": 1.0})
        assert [b.type for b in msg.content] == ["text"], f"run {run}: {msg.content!r}"
        assert msg.stop_reason != "tool_use"
        answers.add(text_of(msg))
    assert len(answers) > 1  # the runs sampled differently
    # and the model is not shown the tools
    hidden = client.messages.count_tokens(model=tooly, messages=WEATHER_ASK, tools=TOOLS,
                                          tool_choice={"type": "none"})
    bare = client.messages.count_tokens(model=tooly, messages=WEATHER_ASK)
    shown = client.messages.count_tokens(model=tooly, messages=WEATHER_ASK, tools=TOOLS)
    assert hidden.input_tokens == bare.input_tokens < shown.input_tokens


def test_tool_choice_naming_an_unknown_tool_is_a_bad_request(client, tooly):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=tooly, max_tokens=8, messages=WEATHER_ASK, tools=TOOLS,
                               tool_choice={"type": "tool", "name": "nope"})
    assert "nope" in err.value.body["error"]["message"]


# -- count_tokens ------------------------------------------------------------------------------


def test_count_tokens_is_the_prompt_the_model_reads(server, client, tooly):
    system = "You are a weather bot."
    counted = client.messages.count_tokens(model=tooly, system=system, messages=WEATHER_ASK,
                                           tools=TOOLS)
    native = native_chat(server, model=tooly, tools=NATIVE_TOOLS,
                         options={**GREEDY, "num_predict": 1},
                         messages=[{"role": "system", "content": system}, *WEATHER_ASK])
    assert counted.input_tokens == native["prompt_eval_count"] > 0
    made = client.messages.create(model=tooly, max_tokens=1, system=system,
                                  messages=WEATHER_ASK, tools=TOOLS, extra_body=GREEDY)
    assert made.usage.input_tokens == counted.input_tokens


# -- errors ------------------------------------------------------------------------------------


def check_error(body: Any, kind: str, message: str) -> None:
    assert body["type"] == "error"
    assert body["error"] == {"type": kind, "message": message}
    assert re.fullmatch(r"req_[0-9a-f]{24}", body["request_id"])


def test_unknown_model_is_not_found(client):
    for call in (lambda: client.messages.create(model="nope:1", max_tokens=8, messages=ASK),
                 lambda: client.messages.create(model="nope:1", max_tokens=8, messages=ASK,
                                                stream=True),
                 lambda: client.messages.count_tokens(model="nope:1", messages=ASK)):
        with pytest.raises(anthropic.NotFoundError) as err:
            call()
        check_error(err.value.body, "not_found_error", "model 'nope:1' not found")
        assert err.value.request_id == err.value.body["request_id"]


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}}


@pytest.mark.parametrize("body, message", [
    ({"max_tokens": 8, "messages": ASK}, "model is required"),
    ({"model": "smollm2:135m", "messages": ASK}, "max_tokens is required and must be positive"),
    ({"model": "smollm2:135m", "max_tokens": 0, "messages": ASK},
     "max_tokens is required and must be positive"),
    ({"model": "smollm2:135m", "max_tokens": 8, "messages": []}, "messages is required"),
    ({"model": "smollm2:135m", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]},
     "invalid image source type: url. Only base64 images are supported."),
    ({"model": "smollm2:135m", "max_tokens": 8, "messages": [{"role": "user", "content": [
        IMAGE, {"type": "text", "text": "What is this?"}]}]},
     "registry.ollama.ai/library/smollm2:135m does not support vision"),
    ({"model": "smollm2:135m", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "x"}}]}]},
     "messages.0.content.0: document blocks are not supported by pollama; send the document's "
     "text in a text block"),
    ({"model": "smollm2:135m", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]},
     "messages.0.content.0.tool_use_id: no earlier tool_use block has the id 'toolu_1'"),
    ({"model": "smollm2:135m", "max_tokens": 8, "messages": ASK,
      "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "tools.0.type: server tools (web_search_20250305) are not supported by pollama; define "
     "the tool with name, description and input_schema and run it in the client"),
    ({"model": "smollm2:135m", "max_tokens": 8, "messages": ASK, "tool_choice": {"type": "x"}},
     'tool_choice.type: must be "auto", "any", "tool" or "none"'),
    ({"model": "smollm2:135m", "max_tokens": "8", "messages": ASK},
     "max_tokens: expected an integer"),
])
def test_bad_requests_are_invalid_request_errors(server, smol, body, message):
    r = httpx.post(f"{server.url}/v1/messages", json=body, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400, r.text
    check_error(r.json(), "invalid_request_error", message)
    assert r.headers["request-id"] == r.json()["request_id"]


def test_count_tokens_refuses_what_create_refuses(client, smol):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.count_tokens(model=smol, messages=[{"role": "user", "content": [
            IMAGE, {"type": "text", "text": "What is this?"}]}])
    assert err.value.body["error"]["message"] == ("registry.ollama.ai/library/smollm2:135m "
                                                  "does not support vision")
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.count_tokens(model="", messages=ASK)
    check_error(err.value.body, "invalid_request_error", "model is required")


def test_sdk_raises_bad_request_error(client, smol):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=smol, max_tokens=0, messages=ASK)
    check_error(err.value.body, "invalid_request_error",
                "max_tokens is required and must be positive")
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=smol, max_tokens=8, messages=ASK, stream=True,
                               system=[{"type": "image", "source": {}}])  # type: ignore[list-item]


def test_empty_and_malformed_bodies(server):
    for raw, message in ((b"", "missing request body"), (b"[1]",
                                                         "request body must be a JSON object")):
        r = httpx.post(f"{server.url}/v1/messages", content=raw, timeout=HTTP_TIMEOUT)
        assert r.status_code == 400
        check_error(r.json(), "invalid_request_error", message)
    r = httpx.post(f"{server.url}/v1/messages", content=b"{", timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("invalid JSON body")
