"""`POST /v1/chat/completions`: OpenAI's chat request → a native `ChatRequest` (OAI-01/02), the
native `/api/chat` chunks → a `chat.completion` (OAI-03) or `chat.completion.chunk`s (OAI-04).

Beyond Ollama (which ignores them): `tool_choice` and `parallel_tool_calls` are enforced by the
sampler's grammar, `max_completion_tokens` is honoured, fields that would change the answer and
that pollama cannot honour (`n` > 1, `logit_bias`, audio output, web search) are refused, and a
`grammar` (GBNF, llama-server's extension) may constrain the answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field, WithJsonSchema

from pollama.errors import BadRequest
from pollama.inference.collapse import collapse_chat
from pollama.inference.requests import TOOL_CHOICE, TOOLS, ChatRequest
from pollama.inference.requests import Request as Body
from pollama.server import openapi as doc
from pollama.server.native.models import body_schema
from pollama.server.native.types import validate
from pollama.server.openai.common import (
    EFFORT,
    JSON_SCHEMA_OBJECT,
    NO_LOGIT_BIAS,
    NULL,
    ONLY_ONE,
    REFUSED,
    STOP,
    STREAM_OPTIONS,
    SYSTEM_FINGERPRINT,
    decode_image_url,
    new_id,
    openai_tool_calls,
    parse_arguments,
    parse_request,
    refuse,
    sampling_options,
    schema,
    think_from_effort,
    token_logprobs,
    unix_now,
    usage,
)
from pollama.server.openai.errors import OpenAIRoute, stream_error
from pollama.server.state import State
from pollama.server.streaming import collect, sse_response

router = APIRouter(route_class=OpenAIRoute)


_TEXT_PART = {"type": "object", "properties": {"type": {"const": "text"},
                                              "text": {"type": "string"}},
              "required": ["type", "text"]}
_IMAGE_PART = {"type": "object", "properties": {
    "type": {"const": "image_url"},
    "image_url": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {
        "url": {"type": "string", "description": "a data: URL (base64); web URLs are a 400"}},
        "required": ["url"]}]}}, "required": ["type", "image_url"]}
_MESSAGES = WithJsonSchema({"type": "array", "minItems": 1, "items": {
    "type": "object", "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"anyOf": [{"type": "string"},
                              {"type": "array", "items": {"anyOf": [_TEXT_PART, _IMAGE_PART]}},
                              NULL]},
        "name": {"type": "string"}, "tool_call_id": {"type": "string"},
        "reasoning": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "type": {"const": "function"},
            "function": {"type": "object", "properties": {
                "name": {"type": "string"},
                "arguments": {"type": "string", "description": "a JSON object's text"}},
                "required": ["name"]}}, "required": ["function"]}}},
    "required": ["role"]}})
_RESPONSE_FORMAT = schema({"type": "object", "properties": {
    "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
    "json_schema": {"type": "object", "properties": {"name": {"type": "string"},
                                                     "schema": JSON_SCHEMA_OBJECT,
                                                     "strict": {"type": "boolean"}}}},
    "required": ["type"]})


class ChatCompletionRequest(Body):
    """OpenAI's chat request, the fields pollama reads (unknown fields are ignored)."""

    model_config = ConfigDict(json_schema_extra={"required": ["model", "messages"]})

    model: str = Field("", json_schema_extra={"minLength": 1})
    messages: Annotated[list[dict[str, Any]] | None, _MESSAGES] = None
    stream: bool | None = None
    stream_options: Annotated[dict[str, Any] | None, STREAM_OPTIONS] = None
    max_tokens: int | None = Field(None, json_schema_extra={"minimum": 1})
    max_completion_tokens: int | None = Field(None, json_schema_extra={"minimum": 1})
    seed: int | None = None
    stop: Annotated[Any, STOP] = None
    temperature: float | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 2})
    top_p: float | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 1})
    frequency_penalty: float | None = Field(None,
                                            json_schema_extra={"minimum": -2, "maximum": 2})
    presence_penalty: float | None = Field(None, json_schema_extra={"minimum": -2, "maximum": 2})
    response_format: Annotated[dict[str, Any] | None, _RESPONSE_FORMAT] = None
    tools: Annotated[list[dict[str, Any]] | None, TOOLS] = None
    tool_choice: Annotated[Any, TOOL_CHOICE] = None
    parallel_tool_calls: bool | None = None
    reasoning: Annotated[dict[str, Any] | None, schema({"type": "object", "properties": {
        "effort": EFFORT}})] = None
    reasoning_effort: Annotated[str | None, schema(EFFORT)] = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 20})
    n: Annotated[int | None, ONLY_ONE] = None
    logit_bias: Annotated[dict[str, Any] | None, NO_LOGIT_BIAS] = None
    modalities: Annotated[list[str] | None, schema({"type": "array", "items": {
        "const": "text"}})] = None
    audio: Annotated[dict[str, Any] | None, REFUSED] = None
    web_search_options: Annotated[dict[str, Any] | None, REFUSED] = None
    functions: Annotated[list[Any] | None, REFUSED] = None
    function_call: Annotated[Any, REFUSED] = None
    grammar: str | None = Field(None, description="beyond OpenAI: a GBNF grammar")
    debug_render_only: bool = Field(False, alias="_debug_render_only")


# -- request ---------------------------------------------------------------------------------


def response_format(value: dict[str, Any] | None) -> Any:
    """`response_format` → native `format`: "json" for json_object, the schema for json_schema."""
    if value is None:
        return None
    kind = str(value.get("type", "")).strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if schema is not None else "json"
    if kind in ("text", ""):
        return None
    raise BadRequest(f"invalid response_format type: \"{value.get('type')}\" (must be "
                     '"text", "json_object" or "json_schema")')


def _tool_name(messages: list[dict[str, Any]], call_id: str) -> str:
    """The name of the (last) earlier tool call with this id."""
    for message in reversed(messages):
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("id") == call_id:
                return str((call.get("function") or {}).get("name") or "")
    return ""


def native_tool_calls(calls: Any) -> list[dict[str, Any]]:
    """OpenAI's assistant `tool_calls` → native ones (arguments JSON strings parsed)."""
    if not isinstance(calls, list):
        raise BadRequest("invalid tool calls")
    out = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise BadRequest("invalid tool calls")
        function = call["function"]
        native: dict[str, Any] = {}
        if call.get("id"):
            native["id"] = call["id"]
        native["function"] = {"index": i, "name": function.get("name") or "",
                              "arguments": parse_arguments(function.get("arguments"))}
        out.append(native)
    return out


def _part_image(part: dict[str, Any]) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise BadRequest("invalid message format")
    return decode_image_url(url)


def convert_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages → native ones (OAI-02): each content part its own message."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = str(msg.get("role") or "").lower()
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        tool_name = ""
        if role == "tool":
            tool_name = msg.get("name") or ""
            if not tool_name and msg.get("tool_call_id"):
                tool_name = _tool_name(messages, msg["tool_call_id"])
        content = msg.get("content")
        calls = native_tool_calls(msg["tool_calls"]) if msg.get("tool_calls") else []
        extra: dict[str, Any] = {}
        if calls:
            extra["tool_calls"] = calls
        if tool_name:
            extra["tool_name"] = tool_name
        if msg.get("tool_call_id"):
            extra["tool_call_id"] = msg["tool_call_id"]
        if msg.get("reasoning"):
            extra["thinking"] = msg["reasoning"]
        if isinstance(content, str):
            out.append({"role": role, "content": content, **extra})
        elif isinstance(content, list):
            parts: list[dict[str, Any]] = []
            for part in content:
                if not isinstance(part, dict):
                    raise BadRequest("invalid message format")
                kind = part.get("type")
                if kind == "text":
                    if not isinstance(part.get("text"), str):
                        raise BadRequest("invalid message format")
                    parts.append({"role": role, "content": part["text"]})
                elif kind == "image_url":
                    parts.append({"role": role, "content": "", "images": [_part_image(part)]})
                elif kind == "input_audio":
                    audio = part.get("input_audio")
                    if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
                        raise BadRequest("invalid input_audio format")
                    parts.append({"role": role, "content": "", "images": [audio["data"]]})
                else:
                    raise BadRequest("invalid message format")
            if parts and extra:  # tool calls and the rest go with the last part
                parts[-1].update(extra)
            out.extend(parts)
        elif content is None and calls:
            out.append({"role": role, "content": "", **extra})
        else:
            kind = "<nil>" if content is None else type(content).__name__
            raise BadRequest(f"invalid message content type: {kind}")
    return out


def to_chat_request(body: ChatCompletionRequest) -> ChatRequest:
    """The native request an OpenAI chat request asks for (OAI-01)."""
    if not body.messages:
        raise BadRequest("[] is too short - 'messages'")
    refuse((body.n or 1) != 1, "n", ": it answers one choice per request")
    refuse(bool(body.logit_bias), "logit_bias")
    refuse(body.audio is not None or "audio" in (body.modalities or []), "audio",
           ": it answers with text only")
    refuse(body.web_search_options is not None, "web_search_options")
    refuse(body.functions is not None or body.function_call is not None, "functions",
           "; use tools and tool_choice")
    effort = (body.reasoning or {}).get("effort") if body.reasoning is not None \
        else body.reasoning_effort
    options = sampling_options(
        temperature=body.temperature, top_p=body.top_p,
        max_tokens=body.max_completion_tokens if body.max_completion_tokens is not None
        else body.max_tokens,
        seed=body.seed, stop=body.stop, frequency_penalty=body.frequency_penalty,
        presence_penalty=body.presence_penalty)
    return validate({
        "model": body.model,
        "messages": convert_messages(body.messages),
        "tools": body.tools,
        "tool_choice": body.tool_choice,  # checked and enforced by the inference service
        "parallel_tool_calls": body.parallel_tool_calls,
        "stream": bool(body.stream),
        "format": response_format(body.response_format),
        "grammar": body.grammar,
        "options": options,
        "think": think_from_effort(effort),
        "logprobs": bool(body.logprobs),
        "top_logprobs": body.top_logprobs or 0,
        "_debug_render_only": body.debug_render_only,
    }, ChatRequest)


# -- response --------------------------------------------------------------------------------


def finish_reason(done_reason: str | None, tool_calls: bool) -> str | None:
    reason = done_reason or None
    if reason == "stop" and tool_calls:
        return "tool_calls"
    return reason


def to_chat_completion(cid: str, created: int, native: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed answer (OAI-03) from the collapsed native one."""
    message = native.get("message") or {}
    calls = openai_tool_calls(message.get("tool_calls") or [])
    out_message: dict[str, Any] = {"role": message.get("role", "assistant"),
                                   "content": message.get("content", "")}
    if message.get("thinking"):
        out_message["reasoning"] = message["thinking"]
    if calls:
        out_message["tool_calls"] = calls
    choice: dict[str, Any] = {"index": 0, "message": out_message,
                              "finish_reason": finish_reason(native.get("done_reason"),
                                                             bool(calls))}
    if native.get("logprobs"):
        choice["logprobs"] = {"content": token_logprobs(native["logprobs"])}
    out = {"id": cid, "object": "chat.completion", "created": created,
           "model": native.get("model", ""), "system_fingerprint": SYSTEM_FINGERPRINT,
           "choices": [choice], "usage": usage(native)}
    if "_debug_info" in native:
        out["_debug_info"] = native["_debug_info"]
    return out


class ChatChunks:
    """Native `/api/chat` chunks → `chat.completion.chunk`s (OAI-04), one stream's state."""

    def __init__(self, cid: str, model: str, created: int, include_usage: bool) -> None:
        self.cid = cid
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.first = True
        self.tool_call_sent = False

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.cid, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": choices}

    def _delta_chunk(self, delta: dict[str, Any], logprobs: Any) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
        if logprobs:
            choice["logprobs"] = {"content": token_logprobs(logprobs)}
        return self._chunk([choice])

    def convert(self, native: dict[str, Any]) -> list[dict[str, Any]]:
        message = native.get("message") or {}
        content = message.get("content") or ""
        thinking = message.get("thinking") or ""
        calls = openai_tool_calls(message.get("tool_calls") or [])
        logprobs = native.get("logprobs")
        done = bool(native.get("done"))
        out = []
        trailer = done and not self.first and not (content or thinking or calls or logprobs)
        if not trailer:
            role = {"role": "assistant"} if self.first else {}
            if thinking and (content or calls):  # reasoning first, then the rest
                out.append(self._delta_chunk({**role, "reasoning": thinking}, logprobs))
                delta: dict[str, Any] = {"content": content}
                if calls:
                    delta["tool_calls"] = calls
                out.append(self._delta_chunk(delta, None))
            else:
                delta = {**role, "content": content}
                if thinking:
                    delta["reasoning"] = thinking
                if calls:
                    delta["tool_calls"] = calls
                out.append(self._delta_chunk(delta, logprobs))
            self.first = False
            self.tool_call_sent = self.tool_call_sent or bool(calls)
        if done:
            reason = native.get("done_reason") or "stop"
            if reason == "stop" and self.tool_call_sent:
                reason = "tool_calls"
            out.append(self._chunk([{"index": 0, "delta": {}, "finish_reason": reason}]))
            if self.include_usage:
                out.append({**self._chunk([]), "usage": usage(native)})
        return out

    async def run(self, events: AsyncGenerator[dict[str, Any], None]
                  ) -> AsyncGenerator[dict[str, Any], None]:
        try:
            async for native in events:
                for chunk in self.convert(native):
                    yield chunk
        finally:
            await events.aclose()


# -- route -----------------------------------------------------------------------------------


@router.post("/v1/chat/completions", openapi_extra=body_schema(ChatCompletionRequest),
             responses=doc.openai(400, 404, 500, 503, ok=doc.ChatCompletion, stream=True))
async def chat_completions(request: Request, server: State) -> Response:
    body = parse_request(await request.body(), ChatCompletionRequest)
    req = to_chat_request(body)
    cid = new_id("chatcmpl-")
    created = unix_now()
    events = server.inference.chat(req)
    if not body.stream or body.debug_render_only:
        native = collapse_chat(await collect(events))
        if "_debug_info" in native:
            native.setdefault("model", body.model)
        return JSONResponse(to_chat_completion(cid, created, native))
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    chunks = ChatChunks(cid, body.model, created, include_usage)
    return await sse_response(chunks.run(events), error=stream_error, done="[DONE]")
