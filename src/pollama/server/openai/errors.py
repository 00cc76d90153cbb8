"""OpenAI's error shape for every /v1 route: `{"error": {"message", "type", "param", "code"}}`.

The status is the native error's; the type follows it as Ollama's `openai.NewError` does
(400 → invalid_request_error, 404 → not_found_error, anything else → api_error), so the
`openai` SDK raises `BadRequestError`, `NotFoundError`, … with the native text as message.
Routes of this dialect use `OpenAIRoute`, which turns every error raised before the first
byte into that shape; a stream that fails later ends with an SSE `data: {"error": ...}` frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from pollama.errors import PollamaError

log = logging.getLogger("pollama.api")


def error_type(status: int) -> str:
    if status == 400:
        return "invalid_request_error"
    if status == 404:
        return "not_found_error"
    return "api_error"


def error_body(status: int, message: str) -> dict[str, Any]:
    """`{"error": {...}}` as OpenAI writes it."""
    return {"error": {"message": message, "type": error_type(status), "param": None,
                      "code": None}}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status)


def stream_error(text: str) -> dict[str, Any]:
    """The frame that ends a stream whose status line is already sent (a runner error)."""
    return error_body(500, text)


class OpenAIRoute(APIRoute):
    """A route whose errors come back in OpenAI's shape instead of Ollama's `{"error": text}`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except PollamaError as err:
                return error_response(err.status, err.message)
            except RequestValidationError as err:
                first = err.errors()[0] if err.errors() else {}
                return error_response(400, str(first.get("msg", "invalid request")))
            except HTTPException:
                raise  # 404/405 of the router itself: the app's plain-text answers
            except Exception as err:
                log.exception("unexpected error")
                return error_response(500, str(err) or type(err).__name__)

        return route
