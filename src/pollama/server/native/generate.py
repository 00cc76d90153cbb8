"""Inference routes: /api/generate, /api/chat and /api/ps."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pollama.inference.collapse import collapse_chat, collapse_generate
from pollama.inference.service import STOP_SEQUENCE
from pollama.server import openapi as doc
from pollama.server.native.conversations import ChatRequest, conversation_chat
from pollama.server.native.models import body_schema
from pollama.server.native.types import GenerateRequest, parse_body
from pollama.server.state import State
from pollama.server.streaming import collect, ndjson_response

router = APIRouter()


async def native(events: AsyncGenerator[dict[str, Any], None]
                 ) -> AsyncGenerator[dict[str, Any], None]:
    """Ollama's objects: without the stop string the service names for other dialects."""
    try:
        async for event in events:
            event.pop(STOP_SEQUENCE, None)
            yield event
    finally:
        await events.aclose()


@router.post("/api/generate", openapi_extra=body_schema(GenerateRequest),
             responses=doc.native(400, 404, 500, 503, ok=doc.GenerateResponse, stream=True))
async def generate(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), GenerateRequest)
    events = native(server.inference.generate(req))
    if req.stream is False:
        return JSONResponse(collapse_generate(await collect(events)))
    return await ndjson_response(events)


@router.post("/api/chat", openapi_extra=body_schema(ChatRequest),
             responses=doc.native(400, 404, 500, 503, ok=doc.ChatResponse, stream=True))
async def chat(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), ChatRequest)
    if req.conversation is not None:  # beyond Ollama: a stored conversation's next turn
        events = conversation_chat(server, req)
    else:
        events = native(server.inference.chat(req))
    if req.stream is False:
        return JSONResponse(collapse_chat(await collect(events)))
    return await ndjson_response(events)


@router.get("/api/ps", responses=doc.native(ok=doc.ProcessResponse))
async def ps(request: Request, server: State) -> dict[str, Any]:
    return {"models": server.inference.running()}
