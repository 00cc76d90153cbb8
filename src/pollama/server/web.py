"""The web chat page (beyond Ollama): static files under `/ui/`, and `/` sends browsers there.

The page (`pollama/web/`: our `index.html`, `app.js`, `app.css`, and `vendor/`, the npm
libraries `web/build.sh` copies in) talks to the native API like any client. Its files are
served without an API key (a page that cannot load cannot ask for one); the API stays
protected and the page sends `Authorization: Bearer` once the user has given a key.

Every file is revalidated (`no-cache` with an ETag: the names carry no hash), and a strict
Content-Security-Policy keeps anything a model writes from running or loading from elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

PAGE_DIR = Path(__file__).resolve().parent.parent / "web"
PREFIX = "/ui"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)


@router.get(PREFIX)
async def _page_without_slash() -> RedirectResponse:
    return RedirectResponse(PREFIX + "/", status_code=307)


class PageFiles(StaticFiles):
    """StaticFiles with fixed content types, revalidation, and the page's security headers."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        kind = _TYPES.get(Path(full_path).suffix)
        if kind and response.status_code != 304:
            response.headers["content-type"] = kind
        response.headers["cache-control"] = "no-cache"
        response.headers.update(SECURITY_HEADERS)
        return response


def wants_page(scope: Scope) -> bool:
    """A browser navigating to `/` (its Accept names HTML); curl and API clients do not."""
    if scope["type"] != "http" or scope["path"] != "/" or scope["method"] != "GET":
        return False
    accept = Headers(scope=scope).get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/html" for part in accept.split(","))


class BrowserRedirect:
    """ASGI middleware: `GET /` with `Accept: text/html` is a 307 to `/ui/`; everything else,
    `/` included (`Ollama is running`), passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if wants_page(scope):
            await RedirectResponse(PREFIX + "/", status_code=307)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Add the page's routes and files to `app` (its middleware goes in `create_app`)."""
    app.include_router(router)
    app.mount(PREFIX, PageFiles(directory=PAGE_DIR, html=True), name="ui")
