"""The OpenAI dialect's other pure translations: completions (OAI-05), embeddings (OAI-06),
errors, and the stateless Responses API (OAI-09): input items, tools, the event sequence."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import pytest

from pollama.errors import BadRequest, PollamaError
from pollama.server.openai.common import parse_request
from pollama.server.openai.completions import (
    CompletionChunks,
    CompletionRequest,
    to_completion,
    to_generate_request,
)
from pollama.server.openai.embeddings import (
    EmbeddingRequest,
    to_embed_request,
    to_embedding_list,
)
from pollama.server.openai.errors import error_body
from pollama.server.openai.responses import (
    ResponseEvents,
    ResponsesRequest,
    convert_input,
    convert_tools,
    to_chat_request,
)


def parsed(kind: Any, **body: Any) -> Any:
    return parse_request(json.dumps(body).encode(), kind)


def test_error_body_types_follow_the_status() -> None:
    assert error_body(400, "x") == {"error": {"message": "x", "type": "invalid_request_error",
                                              "param": None, "code": None}}
    assert error_body(404, "y")["error"]["type"] == "not_found_error"
    assert error_body(500, "z")["error"]["type"] == "api_error"
    assert error_body(503, "z")["error"]["type"] == "api_error"


# -- completions -----------------------------------------------------------------------------


def completion(**body: Any) -> dict[str, Any]:
    req = to_generate_request(parsed(CompletionRequest, model="m", **body))
    return req.model_dump(by_alias=True, exclude_none=True)


def test_completion_request_mapping() -> None:
    out = completion(prompt="p", suffix="s", max_tokens=4, seed=1, stop=["x"], top_p=0)
    assert out["prompt"] == "p" and out["suffix"] == "s" and out["stream"] is False
    assert out["options"] == {"stop": ["x"], "num_predict": 4, "temperature": 1.0, "seed": 1,
                              "frequency_penalty": 0.0, "presence_penalty": 0.0, "top_p": 1.0}
    assert completion(prompt=["one"])["prompt"] == "one"
    lp = completion(prompt="p", logprobs=2)
    assert lp["logprobs"] is True and lp["top_logprobs"] == 2
    assert completion(prompt="p", logprobs=0)["logprobs"] is True
    assert completion(prompt="p")["logprobs"] is False


@pytest.mark.parametrize(("body", "text"), [
    ({"echo": True}, "'echo' is not supported"), ({"best_of": 2}, "'best_of' is not supported"),
    ({"n": 3}, "'n' is not supported"), ({"logit_bias": {"5": 1}}, "'logit_bias'"),
    ({"prompt": ["a", "b"]}, "'prompt' must be a string"),
    ({"prompt": [1, 2]}, "'prompt' must be a string"),
    ({"stop": [1]}, "invalid type for 'stop' field: float64"),
    ({"logprobs": 21}, "logprobs must be between 0 and 20"),
])
def test_completion_refusals(body: dict[str, Any], text: str) -> None:
    with pytest.raises(BadRequest, match=text):
        completion(**{"prompt": "p", **body})


def test_completion_shapes_with_legacy_logprobs() -> None:
    lps = [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1}, {"token": "Yo", "logprob": -2.0}]},
           {"token": " there", "logprob": -0.2, "bytes": []}]
    done = {"model": "m", "response": "Hi there", "done": True, "done_reason": "stop",
            "prompt_eval_count": 1, "eval_count": 2, "logprobs": lps}
    assert to_completion("cmpl-3", 5, done, want_logprobs=True) == {
        "id": "cmpl-3", "object": "text_completion", "created": 5, "model": "m",
        "system_fingerprint": "fp_ollama",
        "choices": [{"text": "Hi there", "index": 0, "finish_reason": "stop", "logprobs": {
            "text_offset": [0, 2], "token_logprobs": [-0.1, -0.2], "tokens": ["Hi", " there"],
            "top_logprobs": [{"Hi": -0.1, "Yo": -2.0}, {}]}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    assert "logprobs" not in to_completion("c", 1, done, want_logprobs=False)["choices"][0]


def test_completion_stream_chunks_and_usage() -> None:
    conv = CompletionChunks("cmpl-1", "m", 4, include_usage=True, want_logprobs=False)
    first = conv.convert({"model": "m", "response": "A", "done": False})
    assert first == [{"id": "cmpl-1", "object": "text_completion", "created": 4,
                      "choices": [{"text": "A", "index": 0, "finish_reason": None}],
                      "model": "m", "system_fingerprint": "fp_ollama",
                      "usage": {"prompt_tokens": 0, "completion_tokens": 0,
                                "total_tokens": 0}}]
    last = conv.convert({"model": "m", "response": "", "done": True, "done_reason": "length",
                         "prompt_eval_count": 2, "eval_count": 1})
    assert last[0]["choices"][0]["finish_reason"] == "length"
    assert last[1]["choices"] == [] and last[1]["usage"] == {
        "prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    plain = CompletionChunks("c", "m", 4, include_usage=False, want_logprobs=False)
    assert all("usage" not in c for c in plain.convert({"response": "", "done": True}))


# -- embeddings ------------------------------------------------------------------------------


def test_embedding_request_mapping_and_errors() -> None:
    req, fmt = to_embed_request(parsed(EmbeddingRequest, model="e", input="", dimensions=4))
    assert req.input == [""] and req.dimensions == 4 and fmt == "float"
    req, fmt = to_embed_request(parsed(EmbeddingRequest, model="e", input=["a", "b"],
                                       encoding_format="base64"))
    assert req.input == ["a", "b"] and fmt == "base64"
    for bad in (None, [], 3):
        with pytest.raises(BadRequest, match=r"^invalid input$"):
            to_embed_request(parsed(EmbeddingRequest, model="e", input=bad))
    with pytest.raises(BadRequest) as err:
        to_embed_request(parsed(EmbeddingRequest, model="e", input="x", encoding_format="hex"))
    assert err.value.message == ("Invalid value for 'encoding_format' = hex. Supported values: "
                                 "['float', 'base64'].")


def test_embedding_list_float_and_base64() -> None:
    native = {"model": "e", "embeddings": [[0.5, -1.0], [0.25, 2.0]], "prompt_eval_count": 6}
    assert to_embedding_list("e", native, "float") == {
        "object": "list", "data": [
            {"object": "embedding", "embedding": [0.5, -1.0], "index": 0},
            {"object": "embedding", "embedding": [0.25, 2.0], "index": 1}],
        "model": "e", "usage": {"prompt_tokens": 6, "total_tokens": 6}}
    encoded = to_embedding_list("e", native, "base64")["data"][1]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.25, 2.0)


# -- responses -------------------------------------------------------------------------------


def test_responses_input_items_to_messages() -> None:
    items = [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "Weather "}, {"type": "input_text",
                                                                  "text": "in Paris?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "think"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather",
         "arguments": '{"city":"Paris"}'},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call_output", "call_id": "c1", "output": "22C"},
    ]
    assert convert_input(items, "Sys") == [
        {"role": "system", "content": "Sys"},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Checking.", "thinking": "think", "tool_calls": [
            {"id": "c1", "function": {"index": 0, "name": "get_weather",
                                      "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "22C", "tool_call_id": "c1", "tool_name": "get_weather"},
    ]
    assert convert_input("hello", None) == [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(("body", "text"), [
    ({"conversation": "conv_1"}, "'conversation' is not supported"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
    ({"input": [{"type": "bogus"}]}, 'unknown input item type: "bogus"'),
    ({"input": [{"content": "x"}]}, "missing required 'type' field"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "file inputs are not currently supported"),
    ({"tools": [{"type": "web_search"}]}, "'web_search' tools are not supported"),
    ({"reasoning": {"effort": "lots"}}, "invalid reasoning value"),
])
def test_responses_refusals(body: dict[str, Any], text: str) -> None:
    with pytest.raises(BadRequest, match=text):
        to_chat_request(parsed(ResponsesRequest, **{"model": "m", "input": "x", **body}))


def test_responses_request_options_tools_and_format() -> None:
    body = parsed(ResponsesRequest, model="m", input="x", max_output_tokens=9,
                  temperature=0, tools=[
                      {"type": "function", "name": "f", "parameters": {"type": "object"}},
                      {"type": "namespace", "name": "ns", "tools": [
                          {"type": "function", "name": "g", "description": "G"}]}],
                  tool_choice={"type": "function", "name": "f"}, parallel_tool_calls=False,
                  text={"format": {"type": "json_schema", "name": "s",
                                   "schema": {"type": "object"}}},
                  reasoning={"effort": "none"}, truncation="disabled")
    req = to_chat_request(body)
    assert req.options == {"temperature": 0, "num_predict": 9}
    assert req.tools == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "ns.g", "description": "G", "parameters": {
            "type": "object", "properties": {}}}}]
    assert req.tool_choice == {"type": "function", "name": "f"}
    assert req.parallel_tool_calls is False and req.format == {"type": "object"}
    assert req.think is False and req.truncate is False and req.stream is False
    assert convert_tools(None) == []


def run_events(body: ResponsesRequest, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    conv = ResponseEvents(body)
    return [e for c in chunks for e in conv.convert(c)]


def msg(content: str = "", done: bool = False, **message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"message": {"role": "assistant", "content": content, **message},
                           "done": done}
    if done:
        out.update(done_reason="stop", prompt_eval_count=5, eval_count=2)
    return out


def test_responses_events_reasoning_text_then_call() -> None:
    body = parsed(ResponsesRequest, model="m", input="x")
    call = {"id": "call_1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}
    events = run_events(body, [msg(thinking="T1"), msg(thinking="T2"), msg("Hi"), msg(" you"),
                               msg("\n", tool_calls=[call]), msg(done=True)])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [(e["type"], e.get("output_index")) for e in events] == [
        ("response.created", None), ("response.in_progress", None),
        ("response.output_item.added", 0), ("response.reasoning_summary_part.added", 0),
        ("response.reasoning_summary_text.delta", 0),
        ("response.reasoning_summary_text.delta", 0),
        ("response.reasoning_summary_text.done", 0), ("response.reasoning_summary_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1), ("response.content_part.added", 1),
        ("response.output_text.delta", 1), ("response.output_text.delta", 1),
        ("response.output_text.delta", 1),
        ("response.output_text.done", 1), ("response.content_part.done", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2), ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.done", 2), ("response.output_item.done", 2),
        ("response.completed", None)]
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["completed_at"] is not None
    assert [o["type"] for o in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "T1T2"}]
    assert final["output"][0]["encrypted_content"] == "T1T2"
    assert final["output"][1]["content"][0]["text"] == "Hi you\n"
    assert {k: final["output"][2][k] for k in ("call_id", "name", "arguments", "status")} == {
        "call_id": "call_1", "name": "f", "arguments": '{"a":1}', "status": "completed"}
    assert final["usage"]["input_tokens"] == 5 and final["usage"]["total_tokens"] == 7
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["id"] == final["id"] and created["id"].startswith("resp_")


def test_responses_whitespace_before_a_call_is_no_message_and_empty_answer_has_one() -> None:
    body = parsed(ResponsesRequest, model="m", input="x")
    call = {"id": "c", "function": {"index": 0, "name": "f", "arguments": {}}}
    events = run_events(body, [msg("\n"), msg(tool_calls=[call]), msg(done=True)])
    assert [o["type"] for o in events[-1]["response"]["output"]] == ["function_call"]
    events = run_events(body, [msg(done=True)])
    output = events[-1]["response"]["output"]
    assert [o["type"] for o in output] == ["message"]
    assert output[0]["content"] == [{"type": "output_text", "text": "", "annotations": [],
                                     "logprobs": []}]


# -- errors in a stream ----------------------------------------------------------------------


async def _native(*items: Any) -> Any:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


def _sse_frames(events: Any, **kwargs: Any) -> list[str]:
    """The frames `sse_response` writes for `events` (one event loop, as in the server)."""
    from pollama.server.streaming import sse_response

    async def read() -> bytes:
        response = await sse_response(events, **kwargs)
        return b"".join([c async for c in response.body_iterator])

    return [f for f in asyncio.run(read()).decode().split("\n\n") if f]


def test_chat_stream_error_after_the_first_chunk_is_an_error_frame() -> None:
    from pollama.server.openai.chat import ChatChunks
    from pollama.server.openai.errors import stream_error

    conv = ChatChunks("c", "m", 1, include_usage=False)
    first = {"message": {"role": "assistant", "content": "A"}, "done": False}
    frames = _sse_frames(conv.run(_native(first, PollamaError("runner died"))),
                         error=stream_error, done="[DONE]")
    assert len(frames) == 2  # the stream ends at the error: no [DONE]
    assert json.loads(frames[0][6:])["choices"][0]["delta"]["content"] == "A"
    assert json.loads(frames[1][6:]) == {"error": {"message": "runner died",
                                                   "type": "api_error", "param": None,
                                                   "code": None}}


def test_chat_error_before_the_first_chunk_keeps_its_status() -> None:
    from pollama.server.openai.chat import ChatChunks
    from pollama.server.streaming import sse_response

    conv = ChatChunks("c", "m", 1, include_usage=False)
    with pytest.raises(BadRequest):
        asyncio.run(sse_response(conv.run(_native(BadRequest("early")))))


def test_responses_stream_error_is_an_error_event_the_sdk_raises() -> None:
    conv = ResponseEvents(parsed(ResponsesRequest, model="m", input="x"))
    first = {"message": {"role": "assistant", "content": "A"}, "done": False}
    last = _sse_frames(conv.run(_native(first, BadRequest("bad grammar"))),
                       event_of=lambda e: e["type"])[-1]
    head, data = last.split("\n")
    event = json.loads(data[6:])
    assert head == "event: error"
    assert event["type"] == "error" and event["message"] == "bad grammar"
    assert event["sequence_number"] == 5  # created, in_progress, item added, part, delta
    assert event["error"] == {"message": "bad grammar", "type": "invalid_request_error",
                              "param": None, "code": None}
