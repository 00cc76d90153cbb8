"""`POST /v1/embeddings` (OAI-06): OpenAI's embedding request → a native `EmbedRequest`, the
`/api/embed` answer → `{"object": "list", "data": [...]}`, floats or base64 float32 bytes."""

from __future__ import annotations

import base64
import struct
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import ConfigDict, Field

from pollama.errors import BadRequest
from pollama.inference.requests import EmbedRequest
from pollama.inference.requests import Request as Body
from pollama.server import openapi as doc
from pollama.server.native.models import body_schema
from pollama.server.native.types import validate
from pollama.server.openai.common import parse_request, refuse, schema
from pollama.server.openai.errors import OpenAIRoute
from pollama.server.state import State

router = APIRouter(route_class=OpenAIRoute)


class EmbeddingRequest(Body):
    model_config = ConfigDict(json_schema_extra={"required": ["model", "input"]})

    model: str = Field("", json_schema_extra={"minLength": 1})
    input: Annotated[Any, schema({"type": "string"}, {
        "type": "array", "items": {"type": "string"}, "minItems": 1})] = None
    dimensions: int | None = Field(None, json_schema_extra={"minimum": 1})
    encoding_format: Annotated[str | None, schema({"type": "string", "enum": [
        "float", "base64"]})] = None


def embed_input(value: Any) -> str | list[str]:
    """`input`: a string (`""` embeds one empty text) or a non-empty list of strings."""
    if value == "":
        return [""]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, list) and value and all(isinstance(v, (int, list)) for v in value):
        refuse(True, "input", " as token arrays: send the text")
    raise BadRequest("invalid input")


def encoding_format(value: str | None) -> str:
    if not value:
        return "float"
    if value.lower() in ("float", "base64"):
        return value.lower()
    raise BadRequest(f"Invalid value for 'encoding_format' = {value}. "
                     "Supported values: ['float', 'base64'].")


def to_embed_request(body: EmbeddingRequest) -> tuple[EmbedRequest, str]:
    fmt = encoding_format(body.encoding_format)
    return validate({"model": body.model, "input": embed_input(body.input),
                     "dimensions": body.dimensions}, EmbedRequest), fmt


def floats_base64(values: list[float]) -> str:
    """Little-endian float32 bytes, base64 (what the SDK decodes with numpy)."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def to_embedding_list(model: str, native: dict[str, Any], fmt: str) -> dict[str, Any]:
    data = [{"object": "embedding",
             "embedding": floats_base64(e) if fmt == "base64" else e, "index": i}
            for i, e in enumerate(native.get("embeddings") or [])]
    tokens = int(native.get("prompt_eval_count") or 0)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


@router.post("/v1/embeddings", openapi_extra=body_schema(EmbeddingRequest),
             responses=doc.openai(400, 404, 500, 503, ok=doc.OpenAIEmbeddingList))
async def embeddings(request: Request, server: State) -> dict[str, Any]:
    body = parse_request(await request.body(), EmbeddingRequest)
    req, fmt = to_embed_request(body)
    native = await server.inference.embed(req)
    return to_embedding_list(body.model, native, fmt)
