"""An Anthropic Messages request → the internal `ChatRequest` (spec ANT-01…ANT-04, ANT-09).

What each field becomes:

- `system` (a string, or text blocks joined as Ollama joins them) → a leading system message;
- `messages`: string content or blocks. `text` and `image` (base64 only) make the message;
  `tool_use` → the assistant's `tool_calls`; `tool_result` → a `role: tool` message with its
  `tool_call_id` and the name of the tool the earlier `tool_use` called, placed before the user
  text of the same message; `thinking` → the message's `thinking`; `redacted_thinking` is
  dropped (encrypted for Claude alone); `server_tool_use` / `web_search_tool_result` from a
  history made elsewhere become a tool call and its result, as in Ollama;
- `tools` (custom tools: `name`, `description`, `input_schema`) → function tools;
  `tool_choice` → the internal OpenAI-style `tool_choice` ("auto", "required" for `any`,
  "none", or a named function) and `disable_parallel_tool_use` → `parallel_tool_calls=False`;
- `thinking` `enabled`/`disabled` → `think` true/false, `adaptive` leaves the model's default,
  `output_config.effort` → a think level when `thinking` does not say (`xhigh` → `high`);
  `display: "omitted"` blanks the thinking text of the answer (the blocks stay);
- `output_config.format` (`json_schema`) → `format`: the answer follows the schema;
- `max_tokens` → `num_predict`, `temperature`, `top_p`, `top_k`, `stop_sequences` → `stop`.

Accepted without effect, each for a reason: `cache_control` (on the request or on blocks:
pollama reuses the KV cache of the longest common prompt prefix of every request anyway),
`metadata` (user tracking), `service_tier`, `inference_geo`, `speed`, `diagnostics` (routing
of Anthropic's service), thinking `budget_tokens` (not enforced, as in Ollama).
Refused with a 400 instead of being dropped: image URLs and files, `document` and other block
types, server tools (web search, code execution, …), `container`, `mcp_servers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pollama.errors import BadRequest
from pollama.inference.requests import ChatRequest, Message
from pollama.server.native.types import validate

_REFUSED_FIELDS = {
    "container": "containers (code execution) are not supported by pollama",
    "mcp_servers": "MCP servers are not supported by pollama: call the tools from the client",
}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "max"}


@dataclass
class Translated:
    """The internal request, and what the answer's shape depends on."""

    chat: ChatRequest
    stream: bool
    omit_thinking: bool  # thinking `display: "omitted"`


def _message(**fields: Any) -> Message:
    """A native message (validated as the native API validates one)."""
    return validate(fields, Message)


# -- the body, for the OpenAPI document (translate() reads the raw JSON and decides) ---------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(_Doc):
    type: Literal["text"]
    text: str


class Base64Source(_Doc):
    type: Literal["base64"]
    media_type: str = Field(description="image/png, image/jpeg, image/gif or image/webp")
    data: str = Field(description="the image, base64-encoded")


class ImageBlock(_Doc):
    type: Literal["image"]
    source: Base64Source = Field(description="base64 only: URL and file sources are a 400")


class ToolUseBlock(_Doc):
    type: Literal["tool_use", "server_tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Doc):
    type: Literal["tool_result"]
    tool_use_id: str = Field(description="the id of an earlier tool_use block")
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool = False


class ThinkingBlock(_Doc):
    type: Literal["thinking"]
    thinking: str


class RedactedThinkingBlock(_Doc):
    type: Literal["redacted_thinking"]


class InputMessage(_Doc):
    role: Literal["user", "assistant"]
    content: str | list[TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock
                        | RedactedThinkingBlock]


class Tool(_Doc):
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any] = Field(description="the JSON schema of the tool's input")
    type: Literal["custom"] | None = Field(None, description="custom tools only: server tools "
                                           "(web search, code execution, ...) are a 400")


class ToolChoice(_Doc):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, description='the tool, with type "tool"')
    disable_parallel_tool_use: bool | None = None


class Thinking(_Doc):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, description="accepted, not enforced (as in Ollama)")
    display: Literal["summarized", "omitted"] | None = None


class OutputFormat(_Doc):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema", description="the JSON schema the answer "
                                    "follows")


class OutputConfig(_Doc):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: OutputFormat | None = None


class CountTokensRequest(_Doc):
    """`/v1/messages/count_tokens`: the conversation whose prompt tokens are counted."""

    model: str = Field(min_length=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None


class MessagesRequest(CountTokensRequest):
    """`/v1/messages` (ANT-01): `cache_control`, `metadata`, `service_tier` are accepted
    without effect; `container` and `mcp_servers` are a 400."""

    max_tokens: int = Field(ge=1, description="the most tokens to generate")
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None


# -- typed reads with Anthropic-style paths in the errors -----------------------------------


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"{where}: expected a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{where}: expected a string")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{where}: expected an integer")
    return value


def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{where}: expected a number")
    return value


def _opt(body: dict[str, Any], key: str) -> Any:
    """A field, with JSON null the same as absent."""
    return body.get(key)


# -- system, messages, blocks ----------------------------------------------------------------


def system_text(system: Any) -> str:
    """`system`: a string, or text blocks concatenated (Ollama's `FromMessagesRequest`)."""
    if system is None or isinstance(system, str):
        return system or ""
    parts = []
    for i, block in enumerate(_list(system, "system")):
        block = _obj(block, f"system.{i}")
        if block.get("type") != "text":
            raise BadRequest(f"system.{i}.type: system blocks must be text blocks")
        parts.append(_str(block.get("text"), f"system.{i}.text"))
    return "".join(parts)


def _image(block: dict[str, Any], where: str) -> str:
    """An image block's base64 data; other sources get Ollama's 400 text."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise BadRequest("invalid image source")
    kind = source.get("type")
    if kind != "base64":
        raise BadRequest(f"invalid image source type: {kind}. Only base64 images are supported.")
    return _str(source.get("data"), f"{where}.source.data")


def _tool_result(block: dict[str, Any], where: str, names: dict[str, str]) -> Message:
    """A `tool_result` block → a `role: tool` message naming the call and its tool."""
    call_id = _str(block.get("tool_use_id"), f"{where}.tool_use_id")
    if call_id not in names:
        raise BadRequest(f"{where}.tool_use_id: no earlier tool_use block has the id "
                         f"{call_id!r}")
    content = block.get("content")
    text: list[str] = []
    images: list[str] = []
    if isinstance(content, str):
        text.append(content)
    elif content is not None:
        for j, part in enumerate(_list(content, f"{where}.content")):
            part = _obj(part, f"{where}.content.{j}")
            kind = part.get("type")
            if kind == "text":
                text.append(_str(part.get("text"), f"{where}.content.{j}.text"))
            elif kind == "image":
                images.append(_image(part, f"{where}.content.{j}"))
            else:
                raise BadRequest(f"{where}.content.{j}.type: {kind!r} blocks are not supported "
                                 "in a tool_result by pollama (text and base64 images are)")
    result = "".join(text)
    if block.get("is_error") is True:
        # the native message has no error flag: the model reads it in the text
        result = f"Error: {result}" if result else "Error"
    return _message(role="tool", content=result, images=images or None, tool_call_id=call_id,
                   tool_name=names[call_id])


def _tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = block.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest("tool_use block missing required 'id' field")
    name = block.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("tool_use block missing required 'name' field")
    arguments = block.get("input")
    arguments = {} if arguments is None else _obj(arguments, f"{where}.input")
    return {"id": call_id, "function": {"name": name, "arguments": arguments}}


def _web_search_text(content: Any) -> str:
    """A `web_search_tool_result` from a history made elsewhere, as the model reads it."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        lines = [f"{r.get('title', '')}\n{r.get('url', '')}" for r in content
                 if isinstance(r, dict)]
        return "\n\n".join(lines)
    if isinstance(content, dict) and content.get("error_code"):
        return f"web search error: {content['error_code']}"
    return ""


def convert_message(msg: Any, i: int, names: dict[str, str]) -> list[Message]:
    """One Anthropic message → native messages (ANT-03). `names` maps the tool_use ids seen so
    far to their tool names; this message's own tool_use blocks are added to it."""
    where = f"messages.{i}"
    msg = _obj(msg, where)
    role = msg.get("role")
    if role not in ("user", "assistant"):
        if role == "system":
            raise BadRequest(f'{where}.role: unexpected role "system". The Messages API '
                             "accepts a top-level `system` parameter, not \"system\" as an "
                             "input message role.")
        raise BadRequest(f'{where}.role: must be "user" or "assistant"')
    content = msg.get("content")
    if isinstance(content, str):
        return [_message(role=role, content=content)]
    blocks = _list(content, f"{where}.content")
    text: list[str] = []
    images: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    results: list[Message] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        block = _obj(block, at)
        kind = block.get("type")
        if kind == "text":
            text.append(_str(block.get("text"), f"{at}.text"))
        elif kind == "image":
            images.append(_image(block, at))
        elif kind in ("tool_use", "server_tool_use"):
            call = _tool_call(block, at)
            names[call["id"]] = call["function"]["name"]
            calls.append(call)
        elif kind == "tool_result":
            results.append(_tool_result(block, at, names))
        elif kind == "web_search_tool_result":
            call_id = _str(block.get("tool_use_id"), f"{at}.tool_use_id")
            results.append(_message(role="tool", content=_web_search_text(block.get("content")),
                                   tool_call_id=call_id, tool_name=names.get(call_id)))
        elif kind == "thinking":
            thinking.append(_str(block.get("thinking"), f"{at}.thinking"))
        elif kind == "redacted_thinking":
            continue  # encrypted for Claude's own use: no other model can read it
        elif kind == "document":
            raise BadRequest(f"{at}: document blocks are not supported by pollama; send the "
                             "document's text in a text block")
        else:
            raise BadRequest(f"{at}.type: {kind!r} blocks are not supported by pollama")
    out: list[Message] = []
    if role == "user":
        out.extend(results)  # tool results answer the previous turn: they come first
    if text or images or calls or thinking:
        out.append(_message(role=role, content="".join(text), images=images or None,
                           tool_calls=calls or None, thinking="".join(thinking) or None))
    if role != "user":
        out.extend(results)
    return out


def convert_messages(messages: Any) -> list[Message]:
    names: dict[str, str] = {}
    out: list[Message] = []
    for i, msg in enumerate(_list(messages, "messages")):
        out.extend(convert_message(msg, i, names))
    return out


# -- tools, tool_choice, thinking ------------------------------------------------------------


def convert_tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(_list(tools, "tools")):
        where = f"tools.{i}"
        tool = _obj(tool, where)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise BadRequest(f"{where}.type: server tools ({kind}) are not supported by pollama; "
                             "define the tool with name, description and input_schema and "
                             "run it in the client")
        name = _str(tool.get("name"), f"{where}.name")
        if not name:
            raise BadRequest(f"{where}.name: must not be empty")
        schema = _obj(tool.get("input_schema"), f"{where}.input_schema")
        function: dict[str, Any] = {"name": name}
        description = _opt(tool, "description")
        if description is not None:
            function["description"] = _str(description, f"{where}.description")
        function["parameters"] = schema
        out.append({"type": "function", "function": function})
    return out


def convert_tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """`tool_choice` → the internal (OpenAI-style) choice and `parallel_tool_calls`."""
    if choice is None:
        return None, None
    choice = _obj(choice, "tool_choice")
    kind = choice.get("type")
    parallel: bool | None = None
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None:
        if not isinstance(disable, bool):
            raise BadRequest("tool_choice.disable_parallel_tool_use: expected a boolean")
        if kind == "none":
            raise BadRequest("tool_choice.disable_parallel_tool_use: not allowed with type none")
        parallel = not disable
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool":
        name = _str(choice.get("name"), "tool_choice.name")
        return {"type": "function", "function": {"name": name}}, parallel
    raise BadRequest('tool_choice.type: must be "auto", "any", "tool" or "none"')


def think_value(thinking: Any, output_config: dict[str, Any]) -> tuple[bool | str | None, bool]:
    """`thinking` and `output_config.effort` → (`think`, whether to omit the thinking text)."""
    think: bool | str | None = None
    omit = False
    if thinking is not None:
        thinking = _obj(thinking, "thinking")
        kind = thinking.get("type")
        if kind == "enabled":
            think = True
            budget = _opt(thinking, "budget_tokens")
            if budget is not None:
                _int(budget, "thinking.budget_tokens")
        elif kind == "disabled":
            think = False
        elif kind != "adaptive":
            raise BadRequest('thinking.type: must be "enabled", "disabled" or "adaptive"')
        display = _opt(thinking, "display")
        if display not in (None, "summarized", "omitted"):
            raise BadRequest('thinking.display: must be "summarized" or "omitted"')
        omit = display == "omitted"
    effort = _opt(output_config, "effort")
    if effort is not None:
        level = _EFFORTS.get(_str(effort, "output_config.effort").strip().lower())
        if level is None:
            raise BadRequest('output_config.effort: must be "low", "medium", "high", "xhigh" '
                             'or "max"')
        if think is None:
            think = level
    return think, omit


def output_format(output_config: dict[str, Any]) -> Any:
    """`output_config.format` → the native `format` (a JSON schema)."""
    fmt = _opt(output_config, "format")
    if fmt is None:
        return None
    fmt = _obj(fmt, "output_config.format")
    if fmt.get("type") != "json_schema":
        raise BadRequest('output_config.format.type: must be "json_schema"')
    return _obj(fmt.get("schema"), "output_config.format.schema")


# -- the whole request -----------------------------------------------------------------------


def _options(body: dict[str, Any], max_tokens: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    for key in ("temperature", "top_p"):
        value = _opt(body, key)
        if value is not None:
            options[key] = _num(value, key)
    top_k = _opt(body, "top_k")
    if top_k is not None:
        options["top_k"] = _int(top_k, "top_k")
    stop = _opt(body, "stop_sequences")
    if stop is not None:
        sequences = [_str(s, f"stop_sequences.{i}")
                     for i, s in enumerate(_list(stop, "stop_sequences"))]
        if sequences:
            options["stop"] = sequences
    return options


def translate(body: Any, *, count_only: bool = False) -> Translated:
    """A `/v1/messages` body (or, with `count_only`, a `/v1/messages/count_tokens` body, which
    has no `max_tokens` and no sampling) → the internal chat request (ANT-01 validation)."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = _opt(body, "model")
    if not model:
        raise BadRequest("model is required")
    model = _str(model, "model")
    max_tokens: int | None = None
    if not count_only:
        raw = _opt(body, "max_tokens")
        if raw is not None:
            max_tokens = _int(raw, "max_tokens")
        if max_tokens is None or max_tokens <= 0:
            raise BadRequest("max_tokens is required and must be positive")
    if not _opt(body, "messages"):
        raise BadRequest("messages is required")
    for key, text in _REFUSED_FIELDS.items():
        if _opt(body, key) is not None:
            raise BadRequest(f"{key}: {text}")
    stream = _opt(body, "stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream: expected a boolean")
    if _opt(body, "metadata") is not None:
        _obj(body["metadata"], "metadata")
    output_config = _obj(_opt(body, "output_config") or {}, "output_config")

    messages: list[Message] = []
    system = system_text(_opt(body, "system"))
    if system:
        messages.append(_message(role="system", content=system))
    converted = convert_messages(body["messages"])
    if not converted:
        raise BadRequest("messages: no message has any content")
    messages.extend(converted)
    tools = convert_tools(_opt(body, "tools"))
    tool_choice, parallel = convert_tool_choice(_opt(body, "tool_choice"))
    think, omit = think_value(_opt(body, "thinking"), output_config)
    chat = validate({
        "model": model, "messages": messages, "tools": tools, "tool_choice": tool_choice,
        "parallel_tool_calls": parallel, "think": think, "format": output_format(output_config),
        "options": None if count_only else _options(body, max_tokens), "stream": bool(stream),
        "_debug_render_only": count_only}, ChatRequest)
    return Translated(chat=chat, stream=bool(stream) and not count_only, omit_thinking=omit)
