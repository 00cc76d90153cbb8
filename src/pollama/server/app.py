"""The HTTP server: one FastAPI app, its error mapping, CORS and the DNS-rebinding guard."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from pollama import __version__
from pollama.config import Config
from pollama.conversations import ConversationStore
from pollama.errors import PollamaError
from pollama.inference.scheduler import StartRunner
from pollama.inference.service import Inference
from pollama.server.anthropic import routes as anthropic_routes
from pollama.server.auth import APIKeyGuard
from pollama.server.limits import BodyLimit
from pollama.server.metrics import Metrics, RequestCounter
from pollama.server.native import conversations as conversation_routes
from pollama.server.native import embed as embed_routes
from pollama.server.native import generate as generate_routes
from pollama.server.native import models as model_routes
from pollama.server.native import tokens as token_routes
from pollama.server.native import transfer as transfer_routes
from pollama.server.native.transfer import pull_for_create
from pollama.server.openai import router as openai_router
from pollama.server.openapi import document as openapi_document
from pollama.server.origins import CORS, HostGuard
from pollama.server.shutdown import ShutdownScope
from pollama.server.state import ServerState
from pollama.server.web import BrowserRedirect
from pollama.server.web import install as install_page
from pollama.store import Store

log = logging.getLogger("pollama.server")

def _is_loopback_bind(host: str) -> bool:
    try:
        return ipaddress.ip_address(host or "0.0.0.0").is_loopback
    except ValueError:
        return host == "localhost"


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """The `Allow` header of a 405 (RFC 9110): the methods of every route on the path (the
    router's own header names only the first route's, and each method is a route here)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is None or not regex.match(path):
            continue
        if route.methods:
            methods.update(route.methods)
        elif isinstance(getattr(route, "app", None), StaticFiles):  # the web page's files
            methods.update(("GET", "HEAD"))
    return ", ".join(sorted(methods))


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
    async def _http_error(request: Request, err: StarletteHTTPException) -> Response:
        if err.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        if err.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405,
                                     headers={"Allow": _allowed_methods(app, request)})
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"error": str(err) or type(err).__name__}, status_code=500)

    # Middleware, innermost first: the body size limit, the browser's redirect to the page,
    # keys, the Host guard, CORS (so a 401 still carries CORS headers a browser can read; a
    # foreign origin is refused before anything else runs), and the request counter around
    # everything.
    app.add_middleware(BodyLimit)
    app.add_middleware(BrowserRedirect)
    if config.api_keys:
        app.add_middleware(APIKeyGuard, keys=config.api_keys)

    if _is_loopback_bind(config.host.host):
        app.add_middleware(HostGuard)
    app.add_middleware(CORS, origins=config.origins)
    if server.metrics is not None:
        app.add_middleware(RequestCounter, metrics=server.metrics)
        metrics = server.metrics

        @app.get("/metrics", response_class=Response, responses={200: {
            "description": "Prometheus metrics (OLLAMA_METRICS), text format 0.0.4",
            "content": {"text/plain; version=0.0.4; charset=utf-8": {
                "schema": {"type": "string"}}}}})
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
            app.openapi_schema = openapi_document(app, model_routes.REQUEST_MODELS,
                                                  keys=bool(config.api_keys))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
