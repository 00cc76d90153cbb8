"""What generate and chat take: Ollama's GenerateRequest, ChatRequest and Message, field for field.

The native API parses its bodies straight into these (`server/native/types.parse_body`); other
dialects (OpenAI, Anthropic) translate their requests into them. `None` means "not sent".
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from pollama.formats import options as opts

# -- what the OpenAPI document says of fields typed loosely here (validation stays as typed:
# the services check these values with Ollama's texts) -----------------------------------------

_NULL = {"type": "null"}
KEEP_ALIVE = WithJsonSchema({"anyOf": [
    {"type": "string", "pattern": r"^[+-]?(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+$",
     "description": 'a Go duration: "5m", "1h30m", "0" unloads, negative keeps forever'},
    {"type": "number", "description": "seconds; 0 unloads, negative keeps forever"}, _NULL]})
THINK = WithJsonSchema({"anyOf": [
    {"type": "boolean"}, {"type": "string", "enum": ["high", "medium", "low", "max"]}, _NULL]})
FORMAT = WithJsonSchema({"anyOf": [
    {"type": "string", "enum": ["", "json"]},
    {"type": "object", "description": "a JSON schema the answer follows"}, _NULL]})
OPTIONS = WithJsonSchema({"anyOf": [opts.json_schema(), _NULL]})
IMAGES = WithJsonSchema({"anyOf": [{"type": "array", "items": {
    "type": "string", "contentEncoding": "base64",
    "description": "PNG, JPEG, GIF or WebP bytes, base64-encoded"}}, _NULL]})
TOOL_CHOICE = WithJsonSchema({"anyOf": [
    {"type": "string", "enum": ["auto", "none", "required"]},
    {"type": "object", "properties": {
        "type": {"const": "function"},
        "function": {"type": "object", "properties": {"name": {"type": "string"}},
                     "required": ["name"]}},
     "required": ["type", "function"]}, _NULL]})
TOOLS = WithJsonSchema({"anyOf": [{"type": "array", "items": {
    "type": "object", "properties": {
        "type": {"const": "function"},
        "function": {"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1}, "description": {"type": "string"},
            "parameters": {"type": "object", "description": "a JSON schema"}},
            "required": ["name"]}},
    "required": ["type", "function"]}}, _NULL]})
TOOL_CALLS = WithJsonSchema({"anyOf": [{"type": "array", "items": {
    "type": "object", "properties": {
        "id": {"type": "string"},
        "function": {"type": "object", "properties": {
            "index": {"type": "integer", "minimum": 0}, "name": {"type": "string"},
            "arguments": {"type": "object"}}, "required": ["name", "arguments"]}},
    "required": ["function"]}}, _NULL]})
EMBED_INPUT = WithJsonSchema({"anyOf": [
    {"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}, _NULL]})


def require_model(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of a request whose `model` is required (the route answers a 400 or
    404 without one; the field defaults to "" so the route, not pydantic, says so)."""
    schema["required"] = ["model"]
    schema["properties"]["model"]["minLength"] = 1


class Request(BaseModel):
    """A request body: unknown fields ignored, JSON types strict (Go's encoding/json)."""

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)


class Message(Request):
    """One chat message; `role` is lower-cased as Ollama's Message.UnmarshalJSON does."""

    model_config = ConfigDict(json_schema_extra={"required": ["role"]})

    role: Annotated[str, WithJsonSchema({"type": "string", "enum": [
        "system", "user", "assistant", "tool"]})] = Field(
        "", description="system, user, assistant or tool (any case)")
    content: str | None = Field("", description="the message text")
    thinking: str | None = Field(None, description="the model's thinking, for assistant turns")
    images: Annotated[list[str] | None, IMAGES] = Field(None, description="base64-encoded images")
    tool_calls: Annotated[list[dict[str, Any]] | None, TOOL_CALLS] = Field(
        None, description="tools the model called")
    tool_name: str | None = Field(None, description="name of the tool whose result this is")
    tool_call_id: str | None = Field(None, description="id of the tool call this answers")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role.lower(), "content": self.content or ""}
        for key in ("thinking", "images", "tool_calls", "tool_name", "tool_call_id"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


class GenerateRequest(Request):
    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="model name")
    prompt: str = Field("", description="the prompt; empty loads the model")
    suffix: str = Field("", description="text after the response, for fill-in-middle")
    system: str = Field("", description="system prompt, overriding the model's")
    template: str = Field("", description="Go template overriding the model's")
    context: Annotated[list[int] | None, WithJsonSchema({"anyOf": [{"type": "array", "items": {
        "type": "integer", "minimum": 0}}, _NULL]})] = Field(
        None, description="deprecated: tokens of a previous answer")
    stream: bool | None = Field(None, description="stream the answer (default true)")
    raw: bool = Field(False, description="send the prompt without any template")
    format: Annotated[Any, FORMAT] = Field(
        None, description='"json" or a JSON schema the answer must follow')
    grammar: str | None = Field(None, description="beyond Ollama: a GBNF grammar the answer "
                                "must follow (also accepted as options.grammar)")
    images: Annotated[list[str] | None, IMAGES] = Field(None, description="base64-encoded images")
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(None, description="runtime options")
    keep_alive: Annotated[Any, KEEP_ALIVE] = Field(
        None, description="how long the model stays loaded afterwards")
    think: Annotated[Any, THINK] = Field(
        None, description="true/false or high/medium/low: thinking models")
    truncate: bool | None = Field(None, description="drop the oldest context when too long")
    shift: bool | None = Field(None, description="shift the context window when it fills")
    logprobs: bool = Field(False, description="return log probabilities of output tokens")
    top_logprobs: int = Field(0, description="how many alternatives per token (0-20)",
                              json_schema_extra={"minimum": 0, "maximum": 20})
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="return the rendered prompt only")


class ChatRequest(Request):
    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="model name")
    messages: list[Message] | None = Field(None, description="the conversation so far")
    tools: Annotated[list[dict[str, Any]] | None, TOOLS] = Field(
        None, description="tools the model may call")
    tool_choice: Annotated[Any, TOOL_CHOICE] = Field(
        None, description='beyond Ollama: "auto" (default), "none", "required", or '
        '{"type": "function", "function": {"name": ...}}; enforced by the sampler\'s grammar')
    parallel_tool_calls: bool | None = Field(None, description="beyond Ollama: false allows one "
                                             "tool call per answer when a call is required")
    stream: bool | None = Field(None, description="stream the answer (default true)")
    format: Annotated[Any, FORMAT] = Field(
        None, description='"json" or a JSON schema the answer must follow')
    grammar: str | None = Field(None, description="beyond Ollama: a GBNF grammar the answer "
                                "must follow (also accepted as options.grammar)")
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(None, description="runtime options")
    keep_alive: Annotated[Any, KEEP_ALIVE] = Field(
        None, description="how long the model stays loaded afterwards")
    think: Annotated[Any, THINK] = Field(
        None, description="true/false or high/medium/low: thinking models")
    truncate: bool | None = Field(None, description="drop the oldest messages when too long")
    shift: bool | None = Field(None, description="shift the context window when it fills")
    logprobs: bool = Field(False, description="return log probabilities of output tokens")
    top_logprobs: int = Field(0, description="how many alternatives per token (0-20)",
                              json_schema_extra={"minimum": 0, "maximum": 20})
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="return the rendered prompt only")


class EmbedRequest(Request):
    """`/api/embed` (the OpenAI dialect's `/v1/embeddings` translates into it)."""

    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="model name")
    input: Annotated[Any, EMBED_INPUT] = Field(
        None, description="a string or a list of strings to embed")
    truncate: bool | None = Field(None, description="cut inputs to the context (default true)")
    dimensions: int | None = Field(None, description="keep the first N values, re-normalized",
                                   json_schema_extra={"minimum": 1})
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(None, description="runtime options")
    keep_alive: Annotated[Any, KEEP_ALIVE] = Field(
        None, description="how long the model stays loaded afterwards")


class TokenizeRequest(Request):
    """`/api/tokenize` (beyond Ollama): text → the model's token ids."""

    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="model name")
    content: str = Field("", description="the text to tokenize")
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(None, description="runtime options")
    keep_alive: Annotated[Any, KEEP_ALIVE] = Field(
        None, description="how long the model stays loaded afterwards")


class DetokenizeRequest(Request):
    """`/api/detokenize` (beyond Ollama): token ids → text."""

    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="model name")
    tokens: list[int] = Field(default_factory=list, description="token ids to turn into text",
                              json_schema_extra={"items": {"type": "integer", "minimum": 0}})
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(None, description="runtime options")
    keep_alive: Annotated[Any, KEEP_ALIVE] = Field(
        None, description="how long the model stays loaded afterwards")
