"""Request bodies of the native API, field for field as Ollama's `api/types.go`.

`None` means "not sent" (stream, keep_alive, think, truncate…); defaults are resolved where
the request is served. Unknown fields are ignored, wrong JSON types are rejected with the text
Go's encoding/json gives (`json: cannot unmarshal string into Go struct field ...`).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pollama.errors import BadRequest


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)


class Message(_Request):
    """One chat message; `role` is lower-cased as Ollama's Message.UnmarshalJSON does."""

    role: str = Field("", description="system, user, assistant or tool")
    content: str | None = Field("", description="the message text")
    thinking: str | None = Field(None, description="the model's thinking, for assistant turns")
    images: list[str] | None = Field(None, description="base64-encoded images")
    tool_calls: list[dict[str, Any]] | None = Field(None, description="tools the model called")
    tool_name: str | None = Field(None, description="name of the tool whose result this is")
    tool_call_id: str | None = Field(None, description="id of the tool call this answers")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role.lower(), "content": self.content or ""}
        for key in ("thinking", "images", "tool_calls", "tool_name", "tool_call_id"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


class CreateRequest(_Request):
    model: str = Field("", description="name of the model to create")
    name: str = Field("", description="deprecated alias of model")
    from_: str = Field("", alias="from", description="existing model to build on")
    files: dict[str, str] | None = Field(None, description="file name → uploaded blob digest")
    adapters: dict[str, str] | None = Field(None, description="LoRA adapter file → blob digest")
    template: str = Field("", description="Go template for the prompt")
    license: Any = Field(None, description="license text or list of license texts")
    system: str = Field("", description="system prompt")
    parameters: dict[str, Any] | None = Field(None, description="default runtime options")
    messages: list[Message] | None = Field(None, description="conversation history to seed")
    stream: bool | None = Field(None, description="stream progress (default true)")
    quantize: str = Field("", description="quantization level, e.g. q4_K_M")
    quantization: str = Field("", description="deprecated alias of quantize")
    renderer: str = Field("", description="built-in renderer name")
    parser: str = Field("", description="built-in parser name")
    requires: str = Field("", description="minimum version the model needs")
    draft_files: dict[str, str] | None = Field(
        None, description="draft model files (speculative decoding): refused, not supported yet")
    draft_quantize: str = Field("", description="refused with draft_files")

    def to_plain(self) -> dict[str, Any]:
        out = self.model_dump(by_alias=True)
        out["messages"] = [m.to_dict() for m in (self.messages or [])]
        return out


class ShowRequest(_Request):
    model: str = Field("", description="model name")
    name: str = Field("", description="deprecated alias of model")
    verbose: bool = Field(False, description="include full metadata arrays")
    system: str = Field("", description="system prompt to show instead of the model's")
    options: dict[str, Any] | None = Field(None, description="options merged into PARAMETERs")
    template: str = Field("", description="deprecated, ignored")


class CopyRequest(_Request):
    source: str = Field("", description="existing model")
    destination: str = Field("", description="new name")


class DeleteRequest(_Request):
    model: str = Field("", description="model to delete")
    name: str = Field("", description="deprecated alias of model")


class PullRequest(_Request):
    model: str = Field("", description="model to pull or push")
    name: str = Field("", description="deprecated alias of model")
    insecure: bool = Field(False, description="allow plain http and unverified TLS")
    stream: bool | None = Field(None, description="stream progress (default true)")
    username: str = Field("", description="ignored, as in Ollama")
    password: str = Field("", description="ignored, as in Ollama")


class GenerateRequest(_Request):
    model: str = Field("", description="model name")
    prompt: str = Field("", description="the prompt; empty loads the model")
    suffix: str = Field("", description="text after the response, for fill-in-middle")
    system: str = Field("", description="system prompt, overriding the model's")
    template: str = Field("", description="Go template overriding the model's")
    context: list[int] | None = Field(None, description="deprecated: tokens of a previous answer")
    stream: bool | None = Field(None, description="stream the answer (default true)")
    raw: bool = Field(False, description="send the prompt without any template")
    format: Any = Field(None, description='"json" or a JSON schema the answer must follow')
    grammar: str | None = Field(None, description="beyond Ollama: a GBNF grammar the answer "
                                "must follow (also accepted as options.grammar)")
    images: list[str] | None = Field(None, description="base64-encoded images")
    options: dict[str, Any] | None = Field(None, description="runtime options")
    keep_alive: Any = Field(None, description="how long the model stays loaded afterwards")
    think: Any = Field(None, description="true/false or high/medium/low: thinking models")
    truncate: bool | None = Field(None, description="drop the oldest context when too long")
    shift: bool | None = Field(None, description="shift the context window when it fills")
    logprobs: bool = Field(False, description="return log probabilities of output tokens")
    top_logprobs: int = Field(0, description="how many alternatives per token (0-20)")
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="return the rendered prompt only")


class ChatRequest(_Request):
    model: str = Field("", description="model name")
    messages: list[Message] | None = Field(None, description="the conversation so far")
    tools: list[dict[str, Any]] | None = Field(None, description="tools the model may call")
    stream: bool | None = Field(None, description="stream the answer (default true)")
    format: Any = Field(None, description='"json" or a JSON schema the answer must follow')
    grammar: str | None = Field(None, description="beyond Ollama: a GBNF grammar the answer "
                                "must follow (also accepted as options.grammar)")
    options: dict[str, Any] | None = Field(None, description="runtime options")
    keep_alive: Any = Field(None, description="how long the model stays loaded afterwards")
    think: Any = Field(None, description="true/false or high/medium/low: thinking models")
    truncate: bool | None = Field(None, description="drop the oldest messages when too long")
    shift: bool | None = Field(None, description="shift the context window when it fills")
    logprobs: bool = Field(False, description="return log probabilities of output tokens")
    top_logprobs: int = Field(0, description="how many alternatives per token (0-20)")
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="return the rendered prompt only")


R = TypeVar("R", bound=BaseModel)

_GO_TYPES = {"str": "string", "int": "int", "float": "float64", "bool": "bool", "dict": "object",
             "list": "array", "NoneType": "null"}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def parse_body(raw: bytes, model: type[R]) -> R:
    """Decode a request body as Ollama does: any content type, Go's error texts."""
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("invalid character in request body") from None
    except json.JSONDecodeError as err:
        if err.pos >= len(raw.rstrip()):
            raise BadRequest("unexpected EOF") from None
        char = err.doc[err.pos] if err.pos < len(err.doc) else ""
        raise BadRequest(f"invalid character '{char}' looking for beginning of value") from None
    if not isinstance(data, dict):
        raise BadRequest(f"json: cannot unmarshal {_json_kind(data)} into Go value of type "
                         f"api.{model.__name__}")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
        field_path = loc.split(".")
        value: Any = data
        for part in first["loc"]:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                break
        expected = first.get("type", "").split("_")[0]
        go_type = _GO_TYPES.get(expected, expected)
        raise BadRequest(f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                         f"{model.__name__}.{field_path[-1] if field_path else ''} of type "
                         f"{go_type}") from None
