"""A bound on request bodies read into memory (beyond Ollama, which reads any size).

JSON bodies are parsed whole, so one huge request could take the server's memory. Bodies that
are streamed to disk as they arrive (`POST /api/blobs/:digest`, `POST /api/import`) have no
limit; every other body stops at `MAX_BODY`: a declared `Content-Length` beyond it is refused
before a byte is read, a chunked body as soon as it passes it. The route raises `BodyTooLarge`
where it reads the body, so the 413 comes in its own dialect's error shape.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pollama.errors import BodyTooLarge

MAX_BODY = 64 << 20  # room for a few base64 photos in one chat request
STREAMED_PATHS = ("/api/blobs/", "/api/import")


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body too large: the limit is {limit >> 20} MiB (files and "
                        "models go through /api/blobs/:digest, which has no limit)")


class BodyLimit:
    """ASGI middleware: a request body past `limit` bytes raises `BodyTooLarge` in the route."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(STREAMED_PATHS):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        over = declared.isdigit() and int(declared) > self.limit
        received = 0

        async def limited() -> Message:
            nonlocal received
            if over:
                raise too_large(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise too_large(self.limit)
            return message

        await self.app(scope, limited, send)
