"""Inference routes: /api/generate, /api/chat and /api/ps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pollama.server.native.models import body_schema
from pollama.server.native.types import ChatRequest, GenerateRequest, parse_body
from pollama.server.state import State
from pollama.server.streaming import ndjson_response

router = APIRouter()


def _concat_generate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """`stream: false`: the final chunk with the whole response, thinking and logprobs."""
    if not chunks:
        return {}
    out: dict[str, Any] = {}
    for key, value in chunks[-1].items():
        if key == "response":
            out["response"] = "".join(c.get("response", "") for c in chunks)
            thinking = "".join(c.get("thinking", "") for c in chunks)
            if thinking:
                out["thinking"] = thinking
        elif key not in ("thinking", "logprobs"):
            out[key] = value
    logprobs = [lp for c in chunks for lp in c.get("logprobs", [])]
    if logprobs:
        out["logprobs"] = logprobs
    return out


def _concat_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """`stream: false`: one message with all content, thinking and tool calls (CHAT-07)."""
    if not chunks:
        return {}
    out: dict[str, Any] = {}
    for key, value in chunks[-1].items():
        if key == "message":
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(c.get("message", {}).get("content", "") for c in chunks)}
            thinking = "".join(c.get("message", {}).get("thinking", "") for c in chunks)
            if thinking:
                message["thinking"] = thinking
            calls = [tc for c in chunks for tc in c.get("message", {}).get("tool_calls", [])]
            if calls:
                message["tool_calls"] = calls
            out["message"] = message
        elif key != "logprobs":
            out[key] = value
    logprobs = [lp for c in chunks for lp in c.get("logprobs", [])]
    if logprobs:  # Go's ChatResponse puts logprobs before the embedded metrics
        metrics = {k: out.pop(k) for k in list(out) if k.endswith(("_duration", "_count"))}
        out["logprobs"] = logprobs
        out.update(metrics)
    return out


@router.post("/api/generate", openapi_extra=body_schema(GenerateRequest))
async def generate(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), GenerateRequest)
    events = server.inference.generate(req)
    if req.stream is False:
        return JSONResponse(_concat_generate([c async for c in events]))
    return await ndjson_response(events)


@router.post("/api/chat", openapi_extra=body_schema(ChatRequest))
async def chat(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), ChatRequest)
    events = server.inference.chat(req)
    if req.stream is False:
        return JSONResponse(_concat_chat([c async for c in events]))
    return await ndjson_response(events)


@router.get("/api/ps")
async def ps(request: Request, server: State) -> dict[str, Any]:
    return {"models": server.inference.running()}
