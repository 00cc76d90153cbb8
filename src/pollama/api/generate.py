"""Inference routes: /api/generate, /api/chat and /api/ps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pollama.api.app import state
from pollama.api.models import body_schema
from pollama.api.streaming import ndjson_response
from pollama.api.types import ChatRequest, GenerateRequest, parse_body
from pollama.inference import Inference

router = APIRouter()


def inference(request: Request) -> Inference:
    return state(request).services["inference"]


def _concat_generate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """`stream: false`: one object with the whole response and the final chunk's fields."""
    final = dict(chunks[-1]) if chunks else {}
    final["response"] = "".join(c.get("response", "") for c in chunks)
    thinking = "".join(c.get("thinking", "") for c in chunks)
    if thinking:
        final["thinking"] = thinking
    logprobs = [lp for c in chunks for lp in c.get("logprobs", [])]
    if logprobs:
        final["logprobs"] = logprobs
    return final


def _concat_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    final = dict(chunks[-1]) if chunks else {}
    message: dict[str, Any] = {"role": "assistant",
                               "content": "".join(c.get("message", {}).get("content", "")
                                                  for c in chunks)}
    thinking = "".join(c.get("message", {}).get("thinking", "") for c in chunks)
    if thinking:
        message["thinking"] = thinking
    calls = [tc for c in chunks for tc in c.get("message", {}).get("tool_calls", [])]
    if calls:
        message["tool_calls"] = calls
    if "message" in final or chunks:
        final["message"] = message
    logprobs = [lp for c in chunks for lp in c.get("logprobs", [])]
    if logprobs:
        final["logprobs"] = logprobs
    return final


@router.post("/api/generate", openapi_extra=body_schema(GenerateRequest))
async def generate(request: Request) -> Response:
    req = parse_body(await request.body(), GenerateRequest)
    events = inference(request).generate(req)
    if req.stream is False:
        return JSONResponse(_concat_generate([c async for c in events]))
    return await ndjson_response(events)


@router.post("/api/chat", openapi_extra=body_schema(ChatRequest))
async def chat(request: Request) -> Response:
    req = parse_body(await request.body(), ChatRequest)
    events = inference(request).chat(req)
    if req.stream is False:
        return JSONResponse(_concat_chat([c async for c in events]))
    return await ndjson_response(events)


@router.get("/api/ps")
async def ps(request: Request) -> dict[str, Any]:
    return {"models": inference(request).running()}
