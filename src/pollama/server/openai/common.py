"""What the OpenAI routes share: body parsing, ids, sampling options, stop, reasoning effort,
image data URLs, tool-call arguments and logprobs in OpenAI's shapes."""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from typing import Any, TypeVar

from pydantic import BaseModel, WithJsonSchema

from pollama import go
from pollama.errors import BadRequest
from pollama.server.native.types import parse_body

R = TypeVar("R", bound=BaseModel)

SYSTEM_FINGERPRINT = "fp_ollama"

# -- what the OpenAPI document says of this dialect's loosely typed fields (the routes decide) --

NULL: dict[str, Any] = {"type": "null"}


def schema(*choices: dict[str, Any]) -> WithJsonSchema:
    """A field documented as one of `choices` or null."""
    return WithJsonSchema({"anyOf": [*choices, NULL]})


STOP = schema({"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4})
ONLY_ONE = schema({"type": "integer", "enum": [1]})  # n, best_of: more is refused
REFUSED = WithJsonSchema({"type": "null", "description": "refused: pollama cannot honour it"})
NO_LOGIT_BIAS = schema({"type": "object", "maxProperties": 0,
                        "description": "refused unless empty"})
EFFORT = {"type": "string", "enum": ["none", "minimal", "low", "medium", "high", "xhigh",
                                     "ultra", "max", ""]}
STREAM_OPTIONS = schema({"type": "object", "properties": {"include_usage": {"type": "boolean"}}})
JSON_SCHEMA_OBJECT = {"type": "object", "description": "a JSON schema"}

_EFFORTS: dict[str, bool | str] = {
    "none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high",
    "max": "max", "xhigh": "max", "ultra": "max"}
_IMAGE_PREFIXES = ("data:;base64,", "data:image/jpeg;base64,", "data:image/jpg;base64,",
                   "data:image/png;base64,", "data:image/webp;base64,")


def parse_request(raw: bytes, model: type[R]) -> R:
    """A JSON body with Go's error texts (as Ollama's `ShouldBindJSON` on its OpenAI types)."""
    return parse_body(raw, model)


def new_id(prefix: str, below: int = 999) -> str:
    """Ollama's ids: `chatcmpl-<n>`, `cmpl-<n>`, `resp_<n>` with a random n."""
    return f"{prefix}{random.randrange(below)}"


def unix_now() -> int:
    return int(time.time())


def sampling_options(*, temperature: float | None, top_p: float | None, max_tokens: int | None,
                     seed: int | None, stop: Any, frequency_penalty: float | None = None,
                     presence_penalty: float | None = None) -> dict[str, Any]:
    """Native options; temperature and top_p are 1.0 when absent, as in OpenAI (OAI-01)."""
    options: dict[str, Any] = {}
    stops = stop_list(stop)
    if stops is not None:
        options["stop"] = stops
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    options["temperature"] = 1.0 if temperature is None else temperature
    if seed is not None:
        options["seed"] = seed
    if frequency_penalty is not None:
        options["frequency_penalty"] = frequency_penalty
    if presence_penalty is not None:
        options["presence_penalty"] = presence_penalty
    options["top_p"] = 1.0 if top_p is None else top_p
    return options


def _go_type(value: Any) -> str:
    for kind, name in ((bool, "bool"), (int, "float64"), (float, "float64"),
                       (dict, "map[string]interface {}"), (list, "[]interface {}")):
        if isinstance(value, kind):
            return name
    return "<nil>"


def stop_list(stop: Any) -> list[str] | None:
    """`stop`: a string or a list of strings (OAI-05's text for anything else)."""
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        for item in stop:
            if not isinstance(item, str):
                raise BadRequest(f"invalid type for 'stop' field: {_go_type(item)}")
        return list(stop)
    raise BadRequest(f"invalid type for 'stop' field: {_go_type(stop)}")


def think_from_effort(effort: Any) -> bool | str | None:
    """`reasoning_effort` / `reasoning.effort` → native `think` (OAI-01)."""
    if effort is None or effort == "":
        return None
    if isinstance(effort, str) and effort in _EFFORTS:
        return _EFFORTS[effort]
    raise BadRequest(f'invalid reasoning value: "{effort}" (must be "minimal", "low", '
                     '"medium", "high", "xhigh", "ultra", "max", or "none")')


def decode_image_url(url: str) -> str:
    """A data URL → the base64 text native requests carry (OAI-02); web URLs are refused."""
    if url.startswith(("http://", "https://")):
        raise BadRequest("image URLs are not currently supported, please use base64 encoded "
                         "data instead")
    for prefix in _IMAGE_PREFIXES:
        if url.startswith(prefix):
            data = url[len(prefix):]
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                break
            return data
    raise BadRequest("invalid image input")


def parse_arguments(text: Any) -> dict[str, Any]:
    """A tool call's `arguments` JSON string → the object native messages carry."""
    if isinstance(text, dict):
        return text
    if text is None or (isinstance(text, str) and not text.strip()):
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise BadRequest("invalid tool call arguments")
    return value


def arguments_text(arguments: Any) -> str:
    """Native arguments → OpenAI's JSON string, as Go's json.Marshal writes it (keys in order)."""
    return go.dumps(arguments if arguments is not None else {}, sort_keys=False)


def openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Native tool calls → `[{"id", "index", "type": "function", "function": {...}}]`."""
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") or {}
        out.append({"id": call.get("id", ""), "index": function.get("index", i),
                    "type": "function",
                    "function": {"name": function.get("name", ""),
                                 "arguments": arguments_text(function.get("arguments"))}})
    return out


def token_logprobs(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Native logprobs → OpenAI's `ChatCompletionTokenLogprob` list (top_logprobs always set)."""
    out = []
    for entry in entries:
        out.append({"token": entry.get("token", ""), "logprob": entry.get("logprob", 0.0),
                    "bytes": entry.get("bytes"),
                    "top_logprobs": [{"token": t.get("token", ""),
                                      "logprob": t.get("logprob", 0.0),
                                      "bytes": t.get("bytes")}
                                     for t in entry.get("top_logprobs") or []]})
    return out


def usage(native: dict[str, Any]) -> dict[str, int]:
    prompt = int(native.get("prompt_eval_count") or 0)
    completion = int(native.get("eval_count") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def refuse(condition: bool, field: str, why: str = "") -> None:
    """pollama's rule: a field it cannot honour is a 400, never accepted and then ignored."""
    if condition:
        raise BadRequest(f"'{field}' is not supported by pollama{why}")
