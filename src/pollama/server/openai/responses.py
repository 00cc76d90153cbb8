"""`POST /v1/responses` (OAI-09): Responses input items → a native `ChatRequest`, the
native `/api/chat` chunks → a `response` object, or the Responses stream events (each with its
`sequence_number`) that the `openai` SDK's `responses.create(stream=True)` and
`responses.stream()` read. `GET` and `DELETE /v1/responses/{id}` read and remove stored ones.

Output items, in the order the answer produces them: a `reasoning` item (the thinking, also as
`encrypted_content` so a client can send it back), `message` items (text), `function_call`
items.

Stored responses (beyond Ollama, which stores nothing) live in the server's conversation
database (`pollama.conversations`, table `responses`): each row keeps the response object and
the history a later request continues from: the previous response's history, this request's
input items (as native messages, images inline) and its output; `instructions` are not carried
over, as in OpenAI's API. `store` defaults to true, OpenAI's default, when the store is on
(OLLAMA_CONVERSATIONS), to false when it is off; `store: true` with the store off is a 400. A
response is stored when it completes (one that fails or is cut off is not). `previous_response_id`
continues from a stored response (404 when there is none); deleting a response leaves the ones
continuing from it intact (each keeps its own history). `conversation`, `item_reference` and
`background` are refused with a 400, as are hosted tools (web/file search…) pollama cannot run.
Beyond Ollama: `tool_choice` and `parallel_tool_calls` are enforced, `truncation` is honoured.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field

from pollama.conversations import ConversationStore
from pollama.errors import BadRequest, NotFound, PollamaError
from pollama.inference.collapse import collapse_chat
from pollama.inference.requests import TOOL_CHOICE, ChatRequest
from pollama.inference.requests import Request as Body
from pollama.server import openapi as doc
from pollama.server.native.models import body_schema
from pollama.server.native.types import validate
from pollama.server.openai.common import (
    EFFORT,
    JSON_SCHEMA_OBJECT,
    REFUSED,
    decode_image_url,
    openai_tool_calls,
    parse_arguments,
    parse_request,
    refuse,
    schema,
    think_from_effort,
    unix_now,
)
from pollama.server.openai.errors import OpenAIRoute, error_body, error_type
from pollama.server.state import CONVERSATIONS_OFF, State
from pollama.server.streaming import collect as collect_all
from pollama.server.streaming import error_text, sse_response

router = APIRouter(route_class=OpenAIRoute)
_STORED = {400: "stored responses are off (OLLAMA_CONVERSATIONS=0)",
           500: "deliberate: the conversation database could not be written (disk full)"}

STATELESS = (": pollama keeps no OpenAI conversations or items; continue a stored response "
             "with `previous_response_id`, or send the whole conversation in `input`")


_PART = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["input_text", "output_text", "input_image", "refusal"]},
    "text": {"type": "string"}, "refusal": {"type": "string"},
    "image_url": {"type": "string", "description": "a data: URL (base64)"}},
    "required": ["type"]}
_CONTENT = {"anyOf": [{"type": "string"}, {"type": "array", "items": _PART}]}
_INPUT_ITEM = {"anyOf": [
    {"type": "object", "properties": {
        "type": {"const": "message"},
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
        "content": _CONTENT}, "required": ["role", "content"]},
    {"type": "object", "properties": {
        "type": {"const": "function_call"}, "call_id": {"type": "string"},
        "name": {"type": "string"},
        "arguments": {"type": "string", "description": "a JSON object's text"}},
     "required": ["type", "call_id", "name", "arguments"]},
    {"type": "object", "properties": {
        "type": {"const": "function_call_output"}, "call_id": {"type": "string"},
        "output": _CONTENT}, "required": ["type", "call_id", "output"]},
    {"type": "object", "properties": {
        "type": {"const": "reasoning"}, "encrypted_content": {"type": "string"},
        "summary": {"type": "array", "items": {"type": "object", "properties": {
            "text": {"type": "string"}}}}}, "required": ["type"]}]}
_TOOLS = schema({"type": "array", "items": {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["function", "namespace"],
             "description": "function tools (grouped by namespace); hosted tools are a 400"},
    "name": {"type": "string"}, "description": {"type": "string"},
    "parameters": JSON_SCHEMA_OBJECT,
    "tools": {"type": "array", "items": {"type": "object"}}}, "required": ["type", "name"]}})
_TEXT = schema({"type": "object", "properties": {"format": {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
    "schema": JSON_SCHEMA_OBJECT}, "required": ["type"]}}})


class ResponsesRequest(Body):
    model_config = ConfigDict(json_schema_extra={"required": ["model"]})

    model: str = Field("", json_schema_extra={"minLength": 1})
    input: Annotated[Any, schema({"type": "string"}, {"type": "array",
                                                      "items": _INPUT_ITEM})] = None
    instructions: str | None = None
    tools: Annotated[list[dict[str, Any]] | None, _TOOLS] = None
    tool_choice: Annotated[Any, TOOL_CHOICE] = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    temperature: float | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 2})
    top_p: float | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 1})
    max_output_tokens: int | None = Field(None, json_schema_extra={"minimum": 1})
    reasoning: Annotated[dict[str, Any] | None, schema({"type": "object", "properties": {
        "effort": EFFORT, "summary": {"type": "string"}}})] = None
    text: Annotated[dict[str, Any] | None, _TEXT] = None
    truncation: Annotated[str | None, schema({"type": "string",
                                              "enum": ["auto", "disabled"]})] = None
    previous_response_id: str | None = Field(None, description="continue a stored response")
    conversation: Annotated[Any, REFUSED] = None
    background: Annotated[bool | None, schema({"type": "boolean", "const": False})] = None
    max_tool_calls: Annotated[int | None, REFUSED] = None
    top_logprobs: Annotated[int | None, schema({"type": "integer", "const": 0})] = None
    store: bool | None = Field(None, description="keep the response (default: when the "
                               "conversation store is on)")


def _item_id(prefix: str) -> str:
    return f"{prefix}_{random.randrange(999999)}"


# -- request ---------------------------------------------------------------------------------


def content_of(parts: Any) -> tuple[str, list[str]]:
    """A message's content (a string or input parts) → its text and images."""
    if isinstance(parts, str):
        return parts, []
    if parts is None:
        return "", []
    if not isinstance(parts, list):
        raise BadRequest("content must be a string or array")
    text, images = "", []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            text += str(part.get("text") or "")
        elif kind == "input_image":
            if not part.get("image_url"):
                raise BadRequest("input_image needs an image_url (a data URL): pollama keeps "
                                 "no uploaded files")
            images.append(decode_image_url(str(part["image_url"])))
        elif kind == "input_file":
            raise BadRequest("file inputs are not currently supported")
        elif kind == "refusal":
            text += str(part.get("refusal") or "")
        else:
            raise BadRequest(f"unknown content type: {kind}")
    return text, images


def convert_input(items: Any, instructions: str | None) -> list[dict[str, Any]]:
    """Instructions and input items → native messages (OAI-09)."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        if items:
            messages.append({"role": "user", "content": items})
        return messages
    if items is None:
        return messages
    if not isinstance(items, list):
        raise BadRequest("input must be a string or array")
    names: dict[str, str] = {}
    pending_thinking = ""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"input[{i}]: input item must be an object")
        kind = item.get("type") or ("message" if item.get("role") else "")
        if kind == "reasoning":
            pending_thinking = item.get("encrypted_content") or "".join(
                str(s.get("text") or "") for s in item.get("summary") or []
                if isinstance(s, dict))
        elif kind == "message":
            role = str(item.get("role") or "").lower()
            role = "system" if role == "developer" else role
            text, images = content_of(item.get("content"))
            msg: dict[str, Any] = {"role": role, "content": text}
            if images:
                msg["images"] = images
            if role == "assistant" and pending_thinking:
                msg["thinking"], pending_thinking = pending_thinking, ""
            # An assistant message replayed between a function_call and its output stays in
            # the call's message, so the tool result follows the call it answers.
            following = items[i + 1] if i + 1 < len(items) else None
            answered = following.get("call_id") if isinstance(following, dict) and \
                following.get("type") == "function_call_output" else None
            last = messages[-1] if messages else None
            if role == "assistant" and answered and last and last["role"] == "assistant" and \
                    any(c.get("id") == answered for c in last.get("tool_calls") or []):
                if last["content"] and text:
                    last["content"] += "\n"
                last["content"] += text
                if images:
                    last.setdefault("images", []).extend(images)
                if msg.get("thinking"):
                    last["thinking"] = msg["thinking"]
                continue
            messages.append(msg)
        elif kind == "function_call":
            name = str(item.get("name") or "")
            call_id = str(item.get("call_id") or "")
            names[call_id] = name
            arguments = item.get("arguments")
            try:
                args = parse_arguments(arguments)
            except BadRequest:
                raise BadRequest(f"failed to parse function call arguments: {arguments}") \
                    from None
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": ""}
                messages.append(last)
            calls = last.setdefault("tool_calls", [])
            calls.append({"id": call_id, "function": {"index": len(calls), "name": name,
                                                      "arguments": args}})
            if pending_thinking:
                last["thinking"], pending_thinking = pending_thinking, ""
        elif kind == "function_call_output":
            output = item.get("output")
            text, images = (output, []) if isinstance(output, str) else content_of(output)
            call_id = str(item.get("call_id") or "")
            msg = {"role": "tool", "content": text, "tool_call_id": call_id}
            if names.get(call_id):
                msg["tool_name"] = names[call_id]
            if images:
                msg["images"] = images
            messages.append(msg)
        elif kind == "item_reference":
            raise BadRequest("item_reference input items are not supported" + STATELESS)
        elif kind == "web_search_call":
            continue  # history metadata: the assistant message after it carries the result
        elif not kind:
            raise BadRequest(f"input[{i}]: input item missing required 'type' field")
        else:
            raise BadRequest(f'input[{i}]: unknown input item type: "{kind}"')
    if pending_thinking:
        messages.append({"role": "assistant", "content": "", "thinking": pending_thinking})
    return messages


def convert_tools(tools: list[dict[str, Any]] | None, prefix: str = "") -> list[dict[str, Any]]:
    """Responses tools (flat `function` declarations, `namespace` groups) → native tools."""
    out: list[dict[str, Any]] = []
    for tool in tools or []:
        kind = tool.get("type")
        name = str(tool.get("name") or "")
        if kind == "namespace":
            out.extend(convert_tools(tool.get("tools"), f"{prefix}{name}." if name else prefix))
        elif kind == "function":
            function: dict[str, Any] = {"name": prefix + name}
            if tool.get("description"):
                function["description"] = tool["description"]
            function["parameters"] = tool.get("parameters") or {"type": "object",
                                                                "properties": {}}
            out.append({"type": "function", "function": function})
        else:
            raise BadRequest(f"'{kind}' tools are not supported by pollama: it runs function "
                             "tools only")
    return out


def text_format(text: dict[str, Any] | None) -> Any:
    fmt = (text or {}).get("format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_schema":
        return fmt.get("schema") if fmt.get("schema") is not None else "json"
    if kind == "json_object":
        return "json"
    if kind in ("text", None):
        return None
    raise BadRequest(f'invalid text.format type: "{kind}" (must be "text", "json_object" or '
                     '"json_schema")')


def to_chat_request(body: ResponsesRequest,
                    history: list[dict[str, Any]] | None = None) -> ChatRequest:
    """The native request; `history` is what a previous response left (its messages)."""
    refuse(body.conversation is not None, "conversation", STATELESS)
    refuse(bool(body.background), "background")
    refuse(body.max_tool_calls is not None, "max_tool_calls")
    refuse(bool(body.top_logprobs), "top_logprobs", " on /v1/responses; use /v1/chat/completions")
    if body.truncation not in (None, "auto", "disabled"):
        raise BadRequest(f'invalid truncation: "{body.truncation}" (must be "auto" or '
                         '"disabled")')
    options: dict[str, Any] = {"temperature": 1.0 if body.temperature is None
                               else body.temperature}
    if body.top_p is not None:
        options["top_p"] = body.top_p
    if body.max_output_tokens is not None:
        options["num_predict"] = body.max_output_tokens
    system = [{"role": "system", "content": body.instructions}] if body.instructions else []
    messages = [*system, *(history or []), *convert_input(body.input, None)]
    return validate({
        "model": body.model, "messages": messages, "tools": convert_tools(body.tools) or None,
        "tool_choice": body.tool_choice,  # the inference service reads both forms
        "parallel_tool_calls": body.parallel_tool_calls, "stream": bool(body.stream),
        "format": text_format(body.text), "options": options,
        "think": think_from_effort((body.reasoning or {}).get("effort")),
        "truncate": None if body.truncation is None else body.truncation == "auto"}, ChatRequest)


# -- response --------------------------------------------------------------------------------


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponseEvents:
    """Native chat chunks → Responses stream events and, at the end, the response object."""

    def __init__(self, body: ResponsesRequest, *, store: bool = False) -> None:
        self.body = body
        self.store = store
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created = unix_now()
        self.seq = 0
        self.started = False
        self.output: list[dict[str, Any]] = []  # finished items, in output order
        self.reasoning: dict[str, Any] | None = None  # the open reasoning item
        self.message: dict[str, Any] | None = None  # the open message item
        self.pending = ""  # whitespace not yet shown (it may only precede a tool call)
        self.calls = 0
        self.final: dict[str, Any] | None = None

    def _event(self, kind: str, **data: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return event

    def response(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.body
        reasoning = None
        if body.reasoning and (body.reasoning.get("effort") or body.reasoning.get("summary")):
            reasoning = {"effort": body.reasoning.get("effort"),
                         "summary": body.reasoning.get("summary")}
        fmt = (body.text or {}).get("format") or {"type": "text"}
        return {
            "id": self.id, "object": "response", "created_at": self.created,
            "completed_at": unix_now() if status == "completed" else None,
            "status": status, "incomplete_details": None, "model": body.model,
            "previous_response_id": body.previous_response_id,
            "instructions": body.instructions or None,
            "output": list(self.output) if status == "completed" else [],
            "error": None, "tools": body.tools or [],
            "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
            "truncation": body.truncation or "disabled",
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "text": {"format": fmt},
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "presence_penalty": 0, "frequency_penalty": 0, "top_logprobs": 0,
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "reasoning": reasoning, "usage": usage,
            "max_output_tokens": body.max_output_tokens, "max_tool_calls": None,
            "store": self.store, "background": False, "service_tier": "default", "metadata": {},
            "safety_identifier": None, "prompt_cache_key": None}

    # -- items -----------------------------------------------------------------------------

    def _thinking(self, text: str) -> list[dict[str, Any]]:
        out = []
        if self.reasoning is None:
            self.reasoning = {"id": _item_id("rs"), "index": len(self.output), "text": ""}
            item = {"id": self.reasoning["id"], "type": "reasoning", "summary": []}
            out.append(self._event("response.output_item.added",
                                   output_index=self.reasoning["index"], item=item))
            out.append(self._event("response.reasoning_summary_part.added",
                                   item_id=self.reasoning["id"],
                                   output_index=self.reasoning["index"], summary_index=0,
                                   part={"type": "summary_text", "text": ""}))
        self.reasoning["text"] += text
        out.append(self._event("response.reasoning_summary_text.delta",
                               item_id=self.reasoning["id"],
                               output_index=self.reasoning["index"], summary_index=0,
                               delta=text))
        return out

    def _end_thinking(self) -> list[dict[str, Any]]:
        if self.reasoning is None:
            return []
        r, self.reasoning = self.reasoning, None
        summary = {"type": "summary_text", "text": r["text"]}
        item = {"id": r["id"], "type": "reasoning", "summary": [summary],
                "encrypted_content": r["text"]}
        self.output.append(item)
        return [self._event("response.reasoning_summary_text.done", item_id=r["id"],
                            output_index=r["index"], summary_index=0, text=r["text"]),
                self._event("response.reasoning_summary_part.done", item_id=r["id"],
                            output_index=r["index"], summary_index=0, part=summary),
                self._event("response.output_item.done", output_index=r["index"], item=item)]

    def _text(self, text: str, *, force: bool = False) -> list[dict[str, Any]]:
        out = self._end_thinking()
        if self.message is None:
            self.pending += text
            if not self.pending.strip() and not force:
                return out
            text, self.pending = self.pending, ""
            self.message = {"id": _item_id("msg"), "index": len(self.output), "text": ""}
            out.append(self._event("response.output_item.added",
                                   output_index=self.message["index"],
                                   item={"id": self.message["id"], "type": "message",
                                         "status": "in_progress", "role": "assistant",
                                         "content": []}))
            out.append(self._event("response.content_part.added",
                                   item_id=self.message["id"],
                                   output_index=self.message["index"], content_index=0,
                                   part=_text_part("")))
            if not text:
                return out
        self.message["text"] += text
        out.append(self._event("response.output_text.delta", item_id=self.message["id"],
                               output_index=self.message["index"], content_index=0,
                               delta=text, logprobs=[]))
        return out

    def _end_text(self) -> list[dict[str, Any]]:
        if self.message is None:
            return []
        m, self.message = self.message, None
        part = _text_part(m["text"])
        item = {"id": m["id"], "type": "message", "status": "completed", "role": "assistant",
                "content": [part]}
        self.output.append(item)
        return [self._event("response.output_text.done", item_id=m["id"],
                            output_index=m["index"], content_index=0, text=m["text"],
                            logprobs=[]),
                self._event("response.content_part.done", item_id=m["id"],
                            output_index=m["index"], content_index=0, part=part),
                self._event("response.output_item.done", output_index=m["index"], item=item)]

    def _tool_calls(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = self._end_thinking() + self._end_text()
        self.pending = ""  # whitespace before a call is no message
        for call in openai_tool_calls(calls):
            index = len(self.output)
            item_id = _item_id("fc")
            args = call["function"]["arguments"]
            added = {"id": item_id, "type": "function_call", "status": "in_progress",
                     "call_id": call["id"], "name": call["function"]["name"], "arguments": ""}
            item = {**added, "status": "completed", "arguments": args}
            self.output.append(item)
            self.calls += 1
            out += [self._event("response.output_item.added", output_index=index, item=added),
                    self._event("response.function_call_arguments.delta", item_id=item_id,
                                output_index=index, delta=args),
                    self._event("response.function_call_arguments.done", item_id=item_id,
                                output_index=index, arguments=args),
                    self._event("response.output_item.done", output_index=index, item=item)]
        return out

    def convert(self, native: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        if not self.started:
            self.started = True
            out.append(self._event("response.created", response=self.response("in_progress")))
            out.append(self._event("response.in_progress",
                                   response=self.response("in_progress")))
        message = native.get("message") or {}
        if message.get("thinking"):
            out += self._thinking(message["thinking"])
        if message.get("content"):
            out += self._text(message["content"])
        if message.get("tool_calls"):
            out += self._tool_calls(message["tool_calls"])
        if native.get("done"):
            out += self._end_thinking()
            if self.message is None and (self.pending or not self.calls):
                out += self._text("", force=True)  # an answer always has its message
            out += self._end_text()
            prompt = int(native.get("prompt_eval_count") or 0)
            answer = int(native.get("eval_count") or 0)
            usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                     "output_tokens": answer, "output_tokens_details": {"reasoning_tokens": 0},
                     "total_tokens": prompt + answer}
            self.final = self.response("completed", usage)
            out.append(self._event("response.completed", response=self.final))
        return out

    async def run(self, events: AsyncGenerator[dict[str, Any], None],
                  on_final: Callable[[dict[str, Any]], Awaitable[None]] | None = None
                  ) -> AsyncGenerator[dict[str, Any], None]:
        """The stream events; `on_final(response)` runs before `response.completed` is sent."""
        sent = False
        try:
            async for native in events:
                converted = self.convert(native)
                if self.final is not None and on_final is not None:
                    await on_final(self.final)
                    on_final = None
                for event in converted:
                    sent = True
                    yield event
        except Exception as err:
            if not sent:
                raise  # before the first byte: an HTTP status with OpenAI's error body
            status = err.status if isinstance(err, PollamaError) else 500
            text = error_text(err)
            # OpenAI's `error` event, with the `error` object the SDK raises APIError from
            yield self._event("error", code=error_type(status), message=text, param=None,
                              **error_body(status, text))
        finally:
            await events.aclose()


def _output_messages(native: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer as the native assistant message a later turn sends back."""
    message = native.get("message") or {}
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    for key in ("thinking", "tool_calls"):
        if message.get(key):
            out[key] = message[key]
    return [out]


@router.post("/v1/responses", openapi_extra=body_schema(ResponsesRequest),
             responses=doc.openai(400, 404, 500, 503, ok=doc.OpenAIResponse, stream=True, why={
                 500: "deliberate: the model runner failed to load or died, or the "
                      "conversation database could not be written (disk full)"}))
async def responses(request: Request, server: State) -> Response:
    body = parse_request(await request.body(), ResponsesRequest)
    store = body.store if body.store is not None else server.conversations is not None
    if body.store and server.conversations is None:
        raise BadRequest("store: " + CONVERSATIONS_OFF.replace("send the whole history in "
                                                               "messages", "set store to false"))
    history: list[dict[str, Any]] = []
    previous = body.previous_response_id
    if previous is not None:
        try:
            _, history = await server.db(lambda s: s.response(previous))
        except NotFound:
            raise NotFound(f"Previous response with id '{previous}' not found.") from None
    req = to_chat_request(body, history)
    converter = ResponseEvents(body, store=store)
    events = server.inference.chat(req)
    turn = [m for m in (req.messages or []) if m is not None][len(history) + (
        1 if body.instructions else 0):]
    chunks: list[dict[str, Any]] = []

    async def save(response: dict[str, Any]) -> None:
        if not store:
            return
        kept = [*history, *(m.to_dict() for m in turn), *_output_messages(collapse_chat(chunks))]
        await server.db(lambda s: s.save_response(response, kept))

    async def collect() -> AsyncGenerator[dict[str, Any], None]:
        try:
            async for chunk in events:
                chunks.append(chunk)
                yield chunk
        finally:
            await events.aclose()

    if not body.stream:
        native = collapse_chat(await collect_all(collect()))
        converter.convert(native)
        if converter.final is not None:
            await save(converter.final)
        return JSONResponse(converter.final)
    return await sse_response(converter.run(collect(), save), event_of=lambda e: e["type"])


def _stored(store: ConversationStore, response_id: str) -> dict[str, Any]:
    return store.response(response_id)[0]


@router.get("/v1/responses/{response_id}",
            responses=doc.openai(400, 404, ok=doc.OpenAIResponse, why=_STORED, plain_404=True))
async def retrieve(response_id: str, server: State) -> dict[str, Any]:
    return await server.db(lambda s: _stored(s, response_id))


@router.delete("/v1/responses/{response_id}",
               responses=doc.openai(400, 404, 500, ok=doc.DeletedResponse, why=_STORED,
                                    plain_404=True))
async def delete(response_id: str, server: State) -> dict[str, Any]:
    await server.db(lambda s: s.delete_response(response_id))
    return {"id": response_id, "object": "response.deleted", "deleted": True}
