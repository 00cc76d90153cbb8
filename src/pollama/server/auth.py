"""API keys (beyond Ollama, ollama/ollama#1053): with OLLAMA_API_KEYS or OLLAMA_API_KEYS_FILE set,
every request presents one of the keys, as `Authorization: Bearer <key>` (the Ollama and OpenAI
clients) or `x-api-key: <key>` (the Anthropic SDK).

`GET /` stays open for health checks and CORS preflights pass, so browsers can ask. The web
page's static files (`GET /ui/...`) are open too: a page that cannot load cannot ask for a key;
the API it calls is not. A missing or
wrong key is a 401 in the dialect's own error shape, so each SDK raises its authentication error.
Keys are compared in constant time, each against every configured key.
"""

from __future__ import annotations

import hmac

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

UNAUTHORIZED = "unauthorized: a valid API key is required (Authorization: Bearer <key>)"


def presented_key(headers: Headers) -> str:
    """The key a request carries, or ""."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "").strip()


def key_matches(key: str, keys: tuple[str, ...]) -> bool:
    """Constant time per configured key: no early exit that tells how much of a key matched."""
    given = key.encode()
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(given, candidate.encode())
    return found and bool(key)


def unauthorized(path: str) -> JSONResponse:
    """The 401 in the shape of the dialect `path` belongs to."""
    headers = {"WWW-Authenticate": 'Bearer realm="pollama"'}
    if path.startswith("/v1/messages"):
        body: dict[str, object] = {"type": "error", "error": {
            "type": "authentication_error", "message": UNAUTHORIZED}}
    elif path.startswith("/v1/"):
        body = {"error": {"message": UNAUTHORIZED, "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}
    else:
        body = {"error": UNAUTHORIZED}
    return JSONResponse(body, status_code=401, headers=headers)


class APIKeyGuard:
    """ASGI middleware letting through only requests that carry one of `keys`."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open(scope) or \
                key_matches(presented_key(Headers(scope=scope)), self.keys):
            await self.app(scope, receive, send)
            return
        await unauthorized(scope["path"])(scope, receive, send)

    @staticmethod
    def _open(scope: Scope) -> bool:
        method = scope["method"]
        if method == "OPTIONS":
            return True  # CORS preflight: browsers send no credentials with it
        if method not in ("GET", "HEAD"):
            return False
        path = scope["path"]
        return path in ("/", "/ui") or (path.startswith("/ui/") and "/.." not in path)
