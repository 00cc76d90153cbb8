"""Anthropic's error object (spec ANT-07) and the ids it and the messages carry."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.responses import JSONResponse

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
          503: "overloaded_error", 529: "overloaded_error"}


def new_id(prefix: str) -> str:
    """`msg_`/`req_` and 24 hex digits, as Ollama makes them."""
    return f"{prefix}_{secrets.token_hex(12)}"


def error_type(status: int) -> str:
    """The Anthropic error type of an HTTP status; anything unlisted is an `api_error`."""
    return _TYPES.get(status, "api_error")


def error_body(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message},
            "request_id": request_id or new_id("req")}


def error_response(status: int, message: str, request_id: str) -> JSONResponse:
    return JSONResponse(error_body(status, message, request_id), status_code=status,
                        headers={"request-id": request_id})
