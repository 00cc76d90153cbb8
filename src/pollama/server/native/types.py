"""Request bodies of the native API, field for field as Ollama's `api/types.go`.

`None` means "not sent" (stream, keep_alive, think, truncate…); defaults are resolved where
the request is served. Unknown fields are ignored, wrong JSON types are rejected with the text
Go's encoding/json gives (`json: cannot unmarshal string into Go struct field ...`).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from pollama.errors import BadRequest
from pollama.inference.requests import (
    OPTIONS,
    ChatRequest,
    GenerateRequest,
    Message,
    Request,
    require_model,
)

__all__ = ["ChatRequest", "CopyRequest", "CreateRequest", "DeleteRequest", "GenerateRequest",
           "Message", "PullRequest", "ShowRequest", "parse_body"]


_DIGESTS = WithJsonSchema({"anyOf": [{"type": "object", "additionalProperties": {
    "type": "string", "pattern": "^sha256[:-][0-9a-f]{64}$"}}, {"type": "null"}]})


class CreateRequest(Request):
    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="name of the model to create")
    name: str = Field("", description="deprecated alias of model")
    from_: str = Field("", alias="from", description="existing model to build on")
    files: Annotated[dict[str, str] | None, _DIGESTS] = Field(
        None, description="file name → uploaded blob digest")
    adapters: Annotated[dict[str, str] | None, _DIGESTS] = Field(
        None, description="LoRA adapter file → blob digest")
    template: str = Field("", description="Go template for the prompt")
    license: Annotated[Any, WithJsonSchema({"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]})] = \
        Field(None, description="license text or list of license texts")
    system: str = Field("", description="system prompt")
    parameters: Annotated[dict[str, Any] | None, OPTIONS] = Field(
        None, description="default runtime options")
    messages: list[Message] | None = Field(None, description="conversation history to seed")
    stream: bool | None = Field(None, description="stream progress (default true)")
    quantize: str = Field("", description="quantization level, e.g. q4_K_M",
                          json_schema_extra={"examples": ["q4_K_M", "q8_0"]})
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
    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="model name")
    name: str = Field("", description="deprecated alias of model")
    verbose: bool = Field(False, description="include full metadata arrays")
    system: str = Field("", description="system prompt to show instead of the model's")
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(
        None, description="options merged into PARAMETERs")
    template: str = Field("", description="deprecated, ignored")


class CopyRequest(Request):
    model_config = ConfigDict(json_schema_extra={"required": ["source", "destination"]})

    source: str = Field("", description="existing model")
    destination: str = Field("", description="new name")


class DeleteRequest(Request):
    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="model to delete")
    name: str = Field("", description="deprecated alias of model")


class PullRequest(Request):
    model_config = ConfigDict(json_schema_extra=require_model)

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


# encoding/json's limit on nested arrays and objects; Python's decoder recurses, so a body
# nested deeper than its recursion limit gets the same answer instead of a RecursionError.
_MAX_DEPTH = 10000


def _deepest_opening(raw: bytes) -> str:
    """The bracket that opens the deepest level of `raw` (outside strings): Go names it."""
    depth = deepest = 0
    char = "["
    in_string = escaped = False
    for byte in raw:
        c = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > deepest:
                deepest, char = depth, c
        elif c in "]}":
            depth -= 1
    return char


def _no_constant(name: str) -> Any:
    # Go's decoder knows no NaN or Infinity literals
    if name.startswith("-"):
        raise BadRequest("invalid character 'I' in numeric literal")
    raise BadRequest(f"invalid character '{name[0]}' looking for beginning of value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # beyond float64: Go refuses the number
        raise BadRequest(f"json: cannot unmarshal number {text} into Go value of type float64")
    return value


def decode_json(raw: bytes) -> Any:
    """A request body's JSON as Go's encoding/json reads it, with its error texts: no NaN or
    Infinity, numbers within float64, nesting bounded (never a RecursionError)."""
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise BadRequest("invalid character in request body") from None
    except RecursionError:
        raise BadRequest(f"invalid character '{_deepest_opening(raw)}' exceeded max depth"
                         ) from None
    except json.JSONDecodeError as err:
        if err.pos >= len(raw.rstrip()):
            raise BadRequest("unexpected EOF") from None
        char = err.doc[err.pos] if err.pos < len(err.doc) else ""
        raise BadRequest(f"invalid character '{char}' looking for beginning of value") from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise BadRequest("json: cannot unmarshal number into Go value of type float64") from None


def validate(data: Any, model: type[R]) -> R:
    """`data` as a `model` with Go's texts for a value of the wrong type (a 400, never a 500):
    request bodies, and the native requests the other dialects translate theirs into."""
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


def parse_body(raw: bytes, model: type[R]) -> R:
    """Decode a request body as Ollama does: any content type, Go's error texts."""
    return validate(decode_json(raw), model)
