"""The Anthropic dialect's pure translations: request → ChatRequest, answer → Message, native
chunks → SSE events, and the error object."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from pollama.errors import BadRequest, ModelNotFound
from pollama.inference.requests import ChatRequest
from pollama.server.anthropic.errors import error_body, error_type, new_id
from pollama.server.anthropic.request import (
    convert_messages,
    convert_tool_choice,
    convert_tools,
    system_text,
    think_value,
    translate,
)
from pollama.server.anthropic.response import stop_reason, to_message
from pollama.server.anthropic.stream import (
    StreamConverter,
    estimate_input_tokens,
    message_stream_response,
)

BASE = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def dicts(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m.to_dict() for m in translate(body).chat.messages or []]


# -- requests ----------------------------------------------------------------------------------


def test_fields_map_onto_the_chat_request() -> None:
    t = translate({**BASE, "system": "be nice", "temperature": 0.5, "top_p": 0.9, "top_k": 3,
                   "stop_sequences": ["END"], "stream": True, "metadata": {"user_id": "u"},
                   "cache_control": {"type": "ephemeral"}})
    assert t.stream and not t.omit_thinking
    assert t.chat.model == "m" and t.chat.stream is True
    assert t.chat.options == {"num_predict": 8, "temperature": 0.5, "top_p": 0.9, "top_k": 3,
                              "stop": ["END"]}
    assert [m.to_dict() for m in t.chat.messages or []] == [
        {"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]
    assert t.chat.think is None and t.chat.tools is None and t.chat.tool_choice is None
    assert translate(BASE).stream is False and translate(BASE).chat.stream is False


def test_system_blocks_are_joined_and_must_be_text() -> None:
    assert system_text([{"type": "text", "text": "a "}, {"type": "text", "text": "b",
                                                        "cache_control": {}}]) == "a b"
    assert system_text(None) == "" and system_text("x") == "x"
    with pytest.raises(BadRequest, match=r"system\.0\.type"):
        system_text([{"type": "image"}])


@pytest.mark.parametrize("body, text", [
    ({"max_tokens": 8, "messages": BASE["messages"]}, "model is required"),
    ({"model": "m", "messages": BASE["messages"]}, "max_tokens is required and must be positive"),
    ({**BASE, "max_tokens": -1}, "max_tokens is required and must be positive"),
    ({**BASE, "max_tokens": True}, "max_tokens: expected an integer"),
    ({**BASE, "messages": []}, "messages is required"),
    ({**BASE, "messages": [{"role": "user", "content": []}]},
     "messages: no message has any content"),
    ({**BASE, "messages": [{"role": "system", "content": "x"}]}, 'unexpected role "system"'),
    ({**BASE, "temperature": "hot"}, "temperature: expected a number"),
    ({**BASE, "stop_sequences": [1]}, "stop_sequences.0: expected a string"),
    ({**BASE, "stream": "yes"}, "stream: expected a boolean"),
    ({**BASE, "container": "c"}, "container: containers"),
    ({**BASE, "mcp_servers": []}, "mcp_servers: MCP servers are not supported"),
    ({**BASE, "output_config": {"effort": "huge"}}, "output_config.effort: must be"),
    ({**BASE, "output_config": {"format": {"type": "regex"}}}, "output_config.format.type"),
    ({**BASE, "thinking": {"type": "sometimes"}}, "thinking.type: must be"),
    ([1], "request body must be a JSON object"),
])
def test_validation_errors(body: Any, text: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(text)):
        translate(body)


def test_count_tokens_bodies_need_no_max_tokens_and_render_only() -> None:
    t = translate({"model": "m", "messages": BASE["messages"]}, count_only=True)
    assert t.chat.debug_render_only and t.chat.options is None and not t.stream


def test_tool_results_come_first_with_their_tool_name() -> None:
    messages = convert_messages([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "call it", "signature": "sig"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Thanks."},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
            {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
             "content": [{"type": "text", "text": "no "}, {"type": "text", "text": "data"}]}]},
    ])
    assert [m.to_dict() for m in messages] == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me look.", "thinking": "call it", "tool_calls": [
            {"id": "toolu_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "toolu_2", "function": {"name": "get_time", "arguments": {}}}]},
        {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "toolu_2"},
        {"role": "tool", "content": "Error: no data", "tool_name": "get_weather",
         "tool_call_id": "toolu_1"},
        {"role": "user", "content": "Thanks."},
    ]


def test_blocks_images_and_refusals() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "AAAA"}}
    [m] = convert_messages([{"role": "user", "content": [image, {"type": "text", "text": "?"}]}])
    assert m.images == ["AAAA"] and m.content == "?"
    [m] = convert_messages([{"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "opaque"}, {"type": "text", "text": "ok"}]}])
    assert m.to_dict() == {"role": "assistant", "content": "ok"}
    refused = [
        ({"type": "image", "source": {"type": "url", "url": "u"}},
         "invalid image source type: url. Only base64 images are supported."),
        ({"type": "image"}, "invalid image source"),
        ({"type": "document", "source": {}}, "document blocks are not supported"),
        ({"type": "search_result"}, "'search_result' blocks are not supported"),
        ({"type": "tool_use", "name": "f", "input": {}},
         "tool_use block missing required 'id' field"),
        ({"type": "tool_use", "id": "x", "input": {}},
         "tool_use block missing required 'name' field"),
        ({"type": "tool_result", "tool_use_id": "nope"}, "no earlier tool_use block"),
        ({"type": "text", "text": 5}, "messages.0.content.0.text: expected a string"),
    ]
    for block, text in refused:
        with pytest.raises(BadRequest, match=re.escape(text)):
            convert_messages([{"role": "user", "content": [block]}])


def test_tools_and_tool_choice() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    assert convert_tools([{"name": "f", "description": "d", "input_schema": schema,
                           "cache_control": {"type": "ephemeral"}},
                          {"type": "custom", "name": "g", "input_schema": schema}]) == [
        {"type": "function", "function": {"name": "f", "description": "d",
                                          "parameters": schema}},
        {"type": "function", "function": {"name": "g", "parameters": schema}}]
    with pytest.raises(BadRequest, match="server tools"):
        convert_tools([{"type": "bash_20250124", "name": "bash"}])
    with pytest.raises(BadRequest, match=r"tools\.0\.input_schema: expected an object"):
        convert_tools([{"name": "f"}])
    assert convert_tool_choice(None) == (None, None)
    assert convert_tool_choice({"type": "auto"}) == ("auto", None)
    assert convert_tool_choice({"type": "any", "disable_parallel_tool_use": True}) == \
        ("required", False)
    assert convert_tool_choice({"type": "tool", "name": "f",
                                "disable_parallel_tool_use": False}) == \
        ({"type": "function", "function": {"name": "f"}}, True)
    assert convert_tool_choice({"type": "none"}) == ("none", None)
    with pytest.raises(BadRequest, match=r"tool_choice\.name"):
        convert_tool_choice({"type": "tool"})
    with pytest.raises(BadRequest, match="disable_parallel_tool_use"):
        convert_tool_choice({"type": "auto", "disable_parallel_tool_use": "yes"})


def test_thinking_and_effort() -> None:
    assert think_value({"type": "enabled", "budget_tokens": 2048}, {}) == (True, False)
    assert think_value({"type": "disabled"}, {"effort": "high"}) == (False, False)
    assert think_value({"type": "adaptive", "display": "omitted"}, {"effort": "low"}) == \
        ("low", True)
    assert think_value(None, {"effort": " XHigh "}) == ("high", False)
    assert think_value(None, {"effort": "max"}) == ("max", False)
    assert think_value(None, {}) == (None, False)
    with pytest.raises(BadRequest, match="display"):
        think_value({"type": "enabled", "display": "full"}, {})


def test_output_format_becomes_the_native_format() -> None:
    schema = {"type": "object"}
    t = translate({**BASE, "output_config": {"format": {"type": "json_schema",
                                                        "schema": schema}}})
    assert t.chat.format == schema


# -- responses ---------------------------------------------------------------------------------


def test_stop_reasons() -> None:
    assert stop_reason("stop", False) == "end_turn"
    assert stop_reason("length", False) == "max_tokens"
    assert stop_reason("length", True) == "tool_use"
    assert stop_reason("other", False) == "stop_sequence"
    assert stop_reason(None, False) is None


def test_message_blocks_in_order() -> None:
    collapsed = {"model": "m", "message": {
        "role": "assistant", "content": "hello", "thinking": "hmm",
        "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": {"a": 1}}}]},
        "done": True, "done_reason": "stop", "prompt_eval_count": 7, "eval_count": 3}
    message = to_message(collapsed, "msg_1", "m")
    assert message == {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": ""},
            {"type": "text", "text": "hello"},
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 3}}
    omitted = to_message(collapsed, "msg_1", "m", omit_thinking=True)
    assert omitted["content"][0] == {"type": "thinking", "thinking": "", "signature": ""}


# -- streams -----------------------------------------------------------------------------------


def chunk(content: str = "", thinking: str = "", calls: Any = None, done: bool = False,
          **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = calls
    return {"model": "m", "message": message, "done": done, **extra}


def test_converter_opens_and_closes_one_block_per_kind() -> None:
    conv = StreamConverter("msg_1", "m")
    events = []
    call = {"id": "call_1", "function": {"name": "f", "arguments": {"a": "é"}}}
    for c in (chunk(thinking="a"), chunk(thinking="b"), chunk("x"), chunk("y"),
              chunk(calls=[call]),
              chunk(done=True, done_reason="stop", prompt_eval_count=5, eval_count=4)):
        events += conv.process(c)
    shape = [(e["type"], e.get("index"), (e.get("delta") or e.get("content_block") or {})
              .get("type")) for e in events]
    assert shape == [
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None), ("message_delta", None, None),
        ("message_stop", None, None)]
    assert events[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[8]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f",
                                          "input": {}}
    assert json.loads(events[9]["delta"]["partial_json"]) == {"a": "é"}
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2]["usage"] == {"input_tokens": 5, "output_tokens": 4}


def test_converter_without_output_and_with_omitted_thinking() -> None:
    conv = StreamConverter("msg_1", "m")
    assert [e["type"] for e in conv.process(chunk(done=True, done_reason="length"))] == \
        ["message_delta", "message_stop"]
    conv = StreamConverter("msg_1", "m", omit_thinking=True)
    events = conv.process(chunk(thinking="secret")) + conv.process(chunk(done=True))
    assert [e["type"] for e in events] == ["content_block_start", "content_block_stop",
                                           "message_delta", "message_stop"]
    assert "secret" not in json.dumps(events)


def test_input_estimate_counts_the_conversation() -> None:
    small = ChatRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": "hi"}]})
    big = ChatRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": "hi " * 400}]})
    assert estimate_input_tokens(small) == 1 and estimate_input_tokens(big) == 300


async def native(*items: Any) -> AsyncGenerator[dict[str, Any], None]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


def frames(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in data.decode().strip().split("\n\n"):
        event, payload = frame.split("\n")
        out.append((event.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))
    return out


def run_stream(*items: Any) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    req = ChatRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": "hello there"}]})

    async def go() -> tuple[Any, bytes]:
        response = await message_stream_response(native(*items), req,
                                                 StreamConverter("msg_1", "m"), "req_1")
        return response, b"".join([c async for c in response.body_iterator])

    response, data = asyncio.run(go())
    return response, frames(data)


def test_stream_response_frames_and_a_late_error() -> None:
    response, events = run_stream(chunk("Hi"), chunk(" you"),
                                  chunk(done=True, done_reason="stop", prompt_eval_count=9,
                                        eval_count=2))
    assert response.headers["request-id"] == "req_1"
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["id"] == "msg_1" and start["usage"] == {"input_tokens": 2, "output_tokens": 0}

    _, events = run_stream(chunk("Hi"), RuntimeError("runner died"))
    assert [name for name, _ in events][-1] == "error"
    assert events[-1][1]["error"] == {"type": "api_error", "message": "runner died"}
    assert events[-1][1]["request_id"] == "req_1"


def test_an_error_before_the_first_chunk_keeps_its_status() -> None:
    with pytest.raises(ModelNotFound):
        run_stream(ModelNotFound("m"))


# -- errors ------------------------------------------------------------------------------------


def test_error_object_and_ids() -> None:
    assert [error_type(s) for s in (400, 401, 403, 404, 429, 500, 503, 529)] == [
        "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
        "rate_limit_error", "api_error", "overloaded_error", "overloaded_error"]
    body = error_body(404, "model 'x' not found")
    assert body["type"] == "error" and body["error"] == {"type": "not_found_error",
                                                         "message": "model 'x' not found"}
    assert re.fullmatch(r"req_[0-9a-f]{24}", body["request_id"])
    assert re.fullmatch(r"msg_[0-9a-f]{24}", new_id("msg")) and new_id("msg") != new_id("msg")
