"""Embedding routes: /api/embed and the legacy /api/embeddings (spec 3.6)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pollama.inference.embed import EmbeddingRequest, embed_legacy
from pollama.inference.requests import EmbedRequest
from pollama.server.native.models import body_schema
from pollama.server.native.types import parse_body
from pollama.server.state import State

router = APIRouter()


@router.post("/api/embed", openapi_extra=body_schema(EmbedRequest))
async def embed(request: Request, server: State) -> JSONResponse:
    req = parse_body(await request.body(), EmbedRequest)
    return JSONResponse(await server.inference.embed(req))


@router.post("/api/embeddings", openapi_extra=body_schema(EmbeddingRequest))
async def embeddings(request: Request, server: State) -> JSONResponse:
    req = parse_body(await request.body(), EmbeddingRequest)
    return JSONResponse(await embed_legacy(server.inference, req))
