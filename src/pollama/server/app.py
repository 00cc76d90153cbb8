"""The HTTP server: one FastAPI app, its error mapping, CORS and the DNS-rebinding guard."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pollama import __version__
from pollama.config import Config
from pollama.conversations import ConversationStore
from pollama.errors import PollamaError
from pollama.inference.scheduler import StartRunner
from pollama.inference.service import Inference
from pollama.server.anthropic import routes as anthropic_routes
from pollama.server.auth import APIKeyGuard
from pollama.server.metrics import Metrics, RequestCounter
from pollama.server.native import conversations as conversation_routes
from pollama.server.native import embed as embed_routes
from pollama.server.native import generate as generate_routes
from pollama.server.native import models as model_routes
from pollama.server.native import tokens as token_routes
from pollama.server.native import transfer as transfer_routes
from pollama.server.native.transfer import pull_for_create
from pollama.server.openai import router as openai_router
from pollama.server.shutdown import ShutdownScope
from pollama.server.state import ServerState
from pollama.server.web import BrowserRedirect
from pollama.server.web import install as install_page
from pollama.store import Store

log = logging.getLogger("pollama.server")

_BUILTIN_ORIGINS = [
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
]
_CORS_HEADERS = [
    "Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With", "OpenAI-Beta",
    "x-stainless-arch", "x-stainless-async", "x-stainless-custom-poll-interval",
    "x-stainless-helper-method", "x-stainless-lang", "x-stainless-os",
    "x-stainless-package-version", "x-stainless-poll-helper", "x-stainless-retry-count",
    "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-timeout",
    "x-api-key", "anthropic-version",  # beyond Ollama: the Anthropic SDK's key header
]


def _origin_regex(origins: list[str]) -> str:
    parts = [re.escape(o).replace(r"\*", ".*") for o in origins]
    return "^(" + "|".join(parts) + ")$"


def _is_loopback_bind(host: str) -> bool:
    try:
        return ipaddress.ip_address(host or "0.0.0.0").is_loopback
    except ValueError:
        return host == "localhost"


def allowed_host(host: str) -> bool:
    """Ollama's DNS-rebinding guard (spec API-09) for a server bound to loopback."""
    if not host:
        return True
    if host.startswith("["):
        host = host[1:].split("]")[0]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    host = host.lower()
    if host == "localhost" or host == socket.gethostname().lower():
        return True
    if host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified or ip.is_link_local


def create_app(config: Config, *, prune: bool = True,
               start_runner: StartRunner | None = None) -> FastAPI:
    """Build the server app for `config`; the store is pruned at start unless OLLAMA_NOPRUNE.

    `start_runner` replaces the real runner processes (tests give a fake one).
    """
    store = Store(config.models)
    inference = Inference(config, store, start_runner=start_runner)
    server = ServerState(config, store, inference)
    if config.metrics:
        server.metrics = Metrics(inference)
        inference.observer = server.metrics
    if config.conversations is not None:
        server.conversations = ConversationStore(config.conversations)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.ensure_dirs()
        if prune and not config.noprune:
            store.prune()
        server.pull_sync = pull_for_create(asyncio.get_running_loop(), store)
        server.shutdown.bind(asyncio.get_running_loop())
        if server.conversations is not None:
            await asyncio.to_thread(server.conversations.open)
        try:
            yield
        finally:
            server.shutdown.begin()  # `serve` did at the signal; an app run otherwise does here
            await inference.scheduler.shutdown()
            if server.conversations is not None:
                server.conversations.close()

    app = FastAPI(title="pollama", version=__version__, lifespan=lifespan,
                  description="Ollama-compatible API served by pollama")
    app.state.pollama = server

    @app.exception_handler(PollamaError)
    async def _pollama_error(_request: Request, err: PollamaError) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        return JSONResponse({"error": str(first.get("msg", "invalid request"))}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException) -> Response:
        if err.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        if err.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"error": str(err) or type(err).__name__}, status_code=500)

    # Middleware, innermost first: the browser's redirect to the page, keys, the Host guard,
    # CORS (so a 401 still carries CORS headers a browser can read), and the request counter
    # around everything.
    app.add_middleware(BrowserRedirect)
    if config.api_keys:
        app.add_middleware(APIKeyGuard, keys=config.api_keys)

    if _is_loopback_bind(config.host.host):
        @app.middleware("http")
        async def _host_guard(request: Request, call_next: Any) -> Response:
            if not allowed_host(request.headers.get("host", "")):
                return Response(status_code=403)
            return await call_next(request)

    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=_origin_regex([*config.origins, *_BUILTIN_ORIGINS]),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        allow_headers=_CORS_HEADERS,
    )
    if server.metrics is not None:
        app.add_middleware(RequestCounter, metrics=server.metrics)
        metrics = server.metrics

        @app.get("/metrics", include_in_schema=False)
        async def _metrics() -> Response:
            return metrics.exposition()

    # Outermost: every request (and the tasks it starts) can be ended by the shutdown.
    app.add_middleware(ShutdownScope, shutdown=server.shutdown)

    app.include_router(model_routes.router)
    app.include_router(generate_routes.router)
    app.include_router(conversation_routes.router)
    app.include_router(embed_routes.router)
    app.include_router(transfer_routes.router)
    app.include_router(token_routes.router)
    app.include_router(anthropic_routes.router)
    app.include_router(openai_router)
    install_page(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model in model_routes.REQUEST_MODELS.items():
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[name] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
