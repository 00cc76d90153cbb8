"""Beyond Ollama: `/api/tokenize` and `/api/detokenize` with a model's own tokenizer
(ollama/ollama#3582, #12031), for token budgets and chunking that match what the model reads."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from pollama.inference.requests import DetokenizeRequest, TokenizeRequest
from pollama.server import openapi as doc
from pollama.server.native.models import body_schema
from pollama.server.native.types import parse_body
from pollama.server.state import State

router = APIRouter()


@router.post("/api/tokenize", openapi_extra=body_schema(TokenizeRequest),
             responses=doc.native(400, 404, 500, 503, ok=doc.TokenizeResponse))
async def tokenize(request: Request, server: State) -> dict[str, Any]:
    started = time.perf_counter_ns()
    req = parse_body(await request.body(), TokenizeRequest)
    tokens = await server.inference.tokenize(req.model, req.content, keep_alive=req.keep_alive,
                                             options=req.options)
    return {"model": req.model, "tokens": tokens,
            "total_duration": time.perf_counter_ns() - started}


@router.post("/api/detokenize", openapi_extra=body_schema(DetokenizeRequest),
             responses=doc.native(400, 404, 500, 503, ok=doc.DetokenizeResponse))
async def detokenize(request: Request, server: State) -> dict[str, Any]:
    started = time.perf_counter_ns()
    req = parse_body(await request.body(), DetokenizeRequest)
    content = await server.inference.detokenize(req.model, req.tokens,
                                                keep_alive=req.keep_alive, options=req.options)
    return {"model": req.model, "content": content,
            "total_duration": time.perf_counter_ns() - started}
