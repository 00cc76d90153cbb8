"""Request bodies of the native API, field for field as Ollama's `api/types.go`.

`None` means "not sent" (stream, keep_alive, think, truncate…); defaults are resolved where
the request is served. Unknown fields are ignored, wrong JSON types are rejected with the text
Go's encoding/json gives (`json: cannot unmarshal string into Go struct field ...`).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from pollama.errors import BadRequest
from pollama.inference.requests import ChatRequest, GenerateRequest, Message, Request

__all__ = ["ChatRequest", "CopyRequest", "CreateRequest", "DeleteRequest", "GenerateRequest",
           "Message", "PullRequest", "ShowRequest", "parse_body"]


class CreateRequest(Request):
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


class ShowRequest(Request):
    model: str = Field("", description="model name")
    name: str = Field("", description="deprecated alias of model")
    verbose: bool = Field(False, description="include full metadata arrays")
    system: str = Field("", description="system prompt to show instead of the model's")
    options: dict[str, Any] | None = Field(None, description="options merged into PARAMETERs")
    template: str = Field("", description="deprecated, ignored")


class CopyRequest(Request):
    source: str = Field("", description="existing model")
    destination: str = Field("", description="new name")


class DeleteRequest(Request):
    model: str = Field("", description="model to delete")
    name: str = Field("", description="deprecated alias of model")


class PullRequest(Request):
    model: str = Field("", description="model to pull or push")
    name: str = Field("", description="deprecated alias of model")
    insecure: bool = Field(False, description="allow plain http and unverified TLS")
    stream: bool | None = Field(None, description="stream progress (default true)")
    username: str = Field("", description="ignored, as in Ollama")
    password: str = Field("", description="ignored, as in Ollama")


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
