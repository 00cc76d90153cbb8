"""`POST /v1/messages` and `POST /v1/messages/count_tokens` (spec 4.2).

Every error of these routes is Anthropic's object (ANT-07) with a `request-id` header, so the
`anthropic` SDK raises its own exception classes (`BadRequestError`, `NotFoundError`, …); an
error after the stream began is an SSE `error` event with that object.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pollama.errors import BadRequest, PollamaError
from pollama.inference.collapse import collapse_chat
from pollama.inference.requests import ChatRequest
from pollama.server import openapi as doc
from pollama.server.anthropic.errors import error_response, new_id
from pollama.server.anthropic.request import CountTokensRequest, MessagesRequest, translate
from pollama.server.anthropic.response import to_message
from pollama.server.anthropic.stream import StreamConverter, message_stream_response
from pollama.server.native.models import body_schema
from pollama.server.native.types import decode_json
from pollama.server.state import ServerState, State
from pollama.server.streaming import collect

log = logging.getLogger("pollama.api.anthropic")

router = APIRouter()


def _body(raw: bytes) -> Any:
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        return decode_json(raw)
    except BadRequest as err:
        raise BadRequest(f"invalid JSON body: {err.message}") from None


def _relax_thinking(server: ServerState, chat: ChatRequest) -> ChatRequest:
    """ANT-04: on a model that cannot think, `thinking` and `effort` are dropped, not refused
    (clients such as Claude Code send them to every model)."""
    if chat.think is None:
        return chat
    info = server.inference.model_info(chat.model, required_text="model is required")
    if "thinking" in info.capabilities:
        return chat
    return chat.model_copy(update={"think": None})


async def _messages(request: Request, server: ServerState, request_id: str) -> Response:
    translated = translate(_body(await request.body()))
    chat = _relax_thinking(server, translated.chat)
    message_id = new_id("msg")
    native = server.inference.chat(chat)
    stops = (chat.options or {}).get("stop") or []
    if not translated.stream:
        collapsed = collapse_chat(await collect(native))
        return JSONResponse(to_message(collapsed, message_id, chat.model,
                                       omit_thinking=translated.omit_thinking,
                                       stop_sequences=stops),
                            headers={"request-id": request_id})
    converter = StreamConverter(message_id, chat.model, omit_thinking=translated.omit_thinking,
                                stop_sequences=stops)
    return await message_stream_response(native, chat, converter, request_id)


async def _count_tokens(request: Request, server: ServerState) -> dict[str, int]:
    """The tokens of the prompt the model would see: the conversation rendered through the
    chat path (template, tools, system, truncation) and tokenized by the model's runner,
    images at their real size."""
    translated = translate(_body(await request.body()), count_only=True)
    chat = _relax_thinking(server, translated.chat)
    return {"input_tokens": await server.inference.chat_prompt_tokens(chat)}


@router.post("/v1/messages", openapi_extra=body_schema(MessagesRequest),
             responses=doc.anthropic(400, 404, 500, 503, ok=doc.AnthropicMessage, stream=True))
async def messages(request: Request, server: State) -> Response:
    request_id = new_id("req")
    try:
        return await _messages(request, server, request_id)
    except PollamaError as err:
        return error_response(err.status, err.message, request_id)
    except Exception as err:
        log.exception("unexpected error in /v1/messages")
        return error_response(500, str(err) or type(err).__name__, request_id)


@router.post("/v1/messages/count_tokens", openapi_extra=body_schema(CountTokensRequest),
             responses=doc.anthropic(400, 404, 500, 503, ok=doc.TokenCount))
async def count_tokens(request: Request, server: State) -> Response:
    request_id = new_id("req")
    try:
        return JSONResponse(await _count_tokens(request, server),
                            headers={"request-id": request_id})
    except PollamaError as err:
        return error_response(err.status, err.message, request_id)
    except Exception as err:
        log.exception("unexpected error in /v1/messages/count_tokens")
        return error_response(500, str(err) or type(err).__name__, request_id)
