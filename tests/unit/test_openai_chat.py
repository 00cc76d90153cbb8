"""The OpenAI chat dialect's pure translation: request → native ChatRequest (OAI-01/02) and
native chunks → chat.completion / chat.completion.chunk objects (OAI-03/04), exact shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pollama.errors import BadRequest
from pollama.server.openai.chat import (
    ChatChunks,
    ChatCompletionRequest,
    convert_messages,
    to_chat_completion,
    to_chat_request,
)
from pollama.server.openai.common import parse_request


def request(**fields: Any) -> ChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return parse_request(json.dumps(body).encode(), ChatCompletionRequest)


def native(**fields: Any) -> dict[str, Any]:
    return to_chat_request(request(**fields)).model_dump(by_alias=True, exclude_none=True)


def test_defaults_temperature_top_p_one_and_stream_false() -> None:
    out = native()
    assert out["options"] == {"temperature": 1.0, "top_p": 1.0}
    assert out["stream"] is False and "think" not in out and "format" not in out


def test_sampling_fields_map_to_options() -> None:
    out = native(max_tokens=5, seed=3, stop="x", temperature=0.2, top_p=0.5,
                 frequency_penalty=0.1, presence_penalty=0.3)
    assert out["options"] == {"stop": ["x"], "num_predict": 5, "temperature": 0.2, "seed": 3,
                              "frequency_penalty": 0.1, "presence_penalty": 0.3, "top_p": 0.5}
    assert native(max_tokens=5, max_completion_tokens=7)["options"]["num_predict"] == 7
    assert native(stop=["a", "b"])["options"]["stop"] == ["a", "b"]
    with pytest.raises(BadRequest, match="invalid type for 'stop' field: float64"):
        native(stop=["a", 1])


def test_response_format_json_object_and_schema() -> None:
    assert native(response_format={"type": "json_object"})["format"] == "json"
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert native(response_format={"type": "json_schema",
                                   "json_schema": {"name": "x", "schema": schema}}
                  )["format"] == schema
    assert "format" not in native(response_format={"type": "text"})
    with pytest.raises(BadRequest, match="invalid response_format type"):
        native(response_format={"type": "yaml"})


@pytest.mark.parametrize(("effort", "think"), [
    ("none", False), ("minimal", "low"), ("low", "low"), ("medium", "medium"),
    ("high", "high"), ("max", "max"), ("xhigh", "max"), ("ultra", "max")])
def test_reasoning_effort_maps_to_think(effort: str, think: Any) -> None:
    assert native(reasoning_effort=effort)["think"] == think
    assert native(reasoning={"effort": effort})["think"] == think


def test_reasoning_object_wins_and_bad_effort_has_ollamas_text() -> None:
    assert native(reasoning={"effort": "low"}, reasoning_effort="high")["think"] == "low"
    with pytest.raises(BadRequest) as err:
        native(reasoning_effort="huge")
    assert err.value.message == ('invalid reasoning value: "huge" (must be "minimal", "low", '
                                 '"medium", "high", "xhigh", "ultra", "max", or "none")')


def test_tool_choice_and_parallel_tool_calls_pass_through() -> None:
    for choice in ("auto", "none", "required"):
        assert native(tool_choice=choice)["tool_choice"] == choice
    named = {"type": "function", "function": {"name": "f"}}
    out = native(tool_choice=named, parallel_tool_calls=False)
    assert out["tool_choice"] == named and out["parallel_tool_calls"] is False


def test_logprobs_and_debug_render() -> None:
    out = native(logprobs=True, top_logprobs=3, _debug_render_only=True)
    assert out["logprobs"] is True and out["top_logprobs"] == 3
    assert out["_debug_render_only"] is True


@pytest.mark.parametrize(("fields", "text"), [
    ({"n": 2}, "'n' is not supported"),
    ({"logit_bias": {"1": 5}}, "'logit_bias' is not supported"),
    ({"modalities": ["text", "audio"]}, "'audio' is not supported"),
    ({"functions": [{"name": "f"}]}, "'functions' is not supported"),
])
def test_fields_that_would_be_ignored_are_refused(fields: dict[str, Any], text: str) -> None:
    with pytest.raises(BadRequest, match=text):
        native(**fields)


def test_missing_messages_and_wrong_types() -> None:
    with pytest.raises(BadRequest, match=r"^\[\] is too short - 'messages'$"):
        native(messages=[])
    with pytest.raises(BadRequest, match=r"cannot unmarshal string into Go struct field "
                       r"ChatCompletionRequest\.temperature of type float64"):
        request(temperature="hot")


def test_message_parts_tool_calls_and_tool_results() -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"},
                                     {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None, "reasoning": "hmm", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
        {"role": "tool", "name": "other", "tool_call_id": "call_9", "content": "x"},
    ]
    assert convert_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "", "thinking": "hmm", "tool_calls": [
            {"id": "call_1", "function": {"index": 0, "name": "get_weather",
                                          "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "22C", "tool_name": "get_weather", "tool_call_id": "call_1"},
        {"role": "tool", "content": "x", "tool_name": "other", "tool_call_id": "call_9"},
    ]


@pytest.mark.parametrize(("message", "text"), [
    ({"role": "user", "content": None}, "invalid message content type: <nil>"),
    ({"role": "user", "content": [{"type": "video"}]}, "invalid message format"),
    ({"role": "user", "content": [{"type": "image_url",
                                   "image_url": {"url": "https://x/y.png"}}]},
     "image URLs are not currently supported, please use base64 encoded data instead"),
    ({"role": "user", "content": [{"type": "image_url", "image_url": "data:text/plain,x"}]},
     "invalid image input"),
    ({"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{oops"}}]},
     "invalid tool call arguments"),
])
def test_message_errors(message: dict[str, Any], text: str) -> None:
    with pytest.raises(BadRequest) as err:
        convert_messages([message])
    assert err.value.message == text


def test_data_url_images_reach_the_native_request() -> None:
    parts = [{"type": "text", "text": "What is it?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    assert convert_messages([{"role": "user", "content": parts}]) == [
        {"role": "user", "content": "What is it?"},
        {"role": "user", "content": "", "images": ["iVBORw0KGgo="]}]


# -- responses -------------------------------------------------------------------------------

CALL = {"id": "call_abc", "function": {"index": 0, "name": "f",
                                       "arguments": {"b": 1, "a": "<x>"}}}


def test_non_streamed_completion_shape() -> None:
    done = {"model": "m", "message": {"role": "assistant", "content": "", "thinking": "t",
                                      "tool_calls": [CALL]},
            "done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 4,
            "logprobs": [{"token": "x", "logprob": -0.5, "bytes": [120]}]}
    assert to_chat_completion("chatcmpl-1", 7, done) == {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "", "reasoning": "t", "tool_calls": [
                {"id": "call_abc", "index": 0, "type": "function", "function": {
                    "name": "f", "arguments": '{"b":1,"a":"\\u003cx\\u003e"}'}}]},
            "finish_reason": "tool_calls",
            "logprobs": {"content": [{"token": "x", "logprob": -0.5, "bytes": [120],
                                      "top_logprobs": []}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    length = {"model": "m", "message": {"role": "assistant", "content": "a"}, "done": True,
              "done_reason": "length"}
    out = to_chat_completion("c", 1, length)
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def chunk(content: str = "", done: bool = False, **message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "m", "message": {"role": "assistant", "content": content,
                                                     **message}, "done": done}
    if done:
        out.update(done_reason="stop", prompt_eval_count=2, eval_count=3)
    return out


def deltas(chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Any]]:
    return [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) if c["choices"]
            else ({"usage": c["usage"]}, None) for c in chunks]


def test_stream_role_first_trailer_skipped_finish_and_usage() -> None:
    conv = ChatChunks("chatcmpl-5", "m", 9, include_usage=True)
    out = [c for n in (chunk("Hel"), chunk("lo"), chunk(done=True)) for c in conv.convert(n)]
    assert all(c["id"] == "chatcmpl-5" and c["created"] == 9 and
               c["object"] == "chat.completion.chunk" and
               c["system_fingerprint"] == "fp_ollama" for c in out)
    assert deltas(out) == [
        ({"role": "assistant", "content": "Hel"}, None), ({"content": "lo"}, None),
        ({}, "stop"),
        ({"usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}, None)]
    assert out[-1]["choices"] == [] and "usage" not in out[0]


def test_stream_empty_answer_still_opens_with_a_role_chunk() -> None:
    conv = ChatChunks("c", "m", 1, include_usage=False)
    assert deltas(conv.convert(chunk(done=True))) == [
        ({"role": "assistant", "content": ""}, None), ({}, "stop")]


def test_stream_splits_thinking_from_content_and_marks_tool_calls() -> None:
    conv = ChatChunks("c", "m", 1, include_usage=False)
    lp = [{"token": "x", "logprob": -1.0, "bytes": [120]}]
    first = conv.convert({**chunk("A", thinking="T"), "logprobs": lp})
    assert deltas(first) == [({"role": "assistant", "reasoning": "T"}, None),
                             ({"content": "A"}, None)]
    assert "logprobs" in first[0]["choices"][0] and "logprobs" not in first[1]["choices"][0]
    calls = conv.convert(chunk(tool_calls=[CALL]))
    assert calls[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "f"
    assert deltas(conv.convert(chunk(done=True))) == [({}, "tool_calls")]


def test_stream_length_is_not_relabelled() -> None:
    conv = ChatChunks("c", "m", 1, include_usage=False)
    conv.convert(chunk(tool_calls=[CALL]))
    assert deltas(conv.convert({**chunk(done=True), "done_reason": "length"})) == [
        ({}, "length")]
