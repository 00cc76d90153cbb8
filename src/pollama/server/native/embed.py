"""Embedding routes: /api/embed and the legacy /api/embeddings (spec 3.6)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pollama.inference.embed import EmbeddingRequest, embed_legacy
from pollama.inference.requests import EmbedRequest
from pollama.server import openapi as doc
from pollama.server.native.models import body_schema
from pollama.server.native.types import parse_body
from pollama.server.state import State

router = APIRouter()


@router.post("/api/embed", openapi_extra=body_schema(EmbedRequest),
             responses=doc.native(400, 404, 500, 503, ok=doc.EmbedResponse))
async def embed(request: Request, server: State) -> JSONResponse:
    req = parse_body(await request.body(), EmbedRequest)
    return JSONResponse(await server.inference.embed(req))


@router.post("/api/embeddings", openapi_extra=body_schema(EmbeddingRequest),
             responses=doc.native(400, 404, 500, 503, ok=doc.EmbeddingResponse, why={
                 500: "deliberate: the runner failed, or the input is longer than the "
                      "context (Ollama answers 500)"}))
async def embeddings(request: Request, server: State) -> JSONResponse:
    req = parse_body(await request.body(), EmbeddingRequest)
    return JSONResponse(await embed_legacy(server.inference, req))
