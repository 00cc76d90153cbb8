"""Moving models in and out: /api/pull and /api/push (OCI registries), and pollama's own
/api/export and /api/import (one model as an OCI image-layout tar, for offline machines)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from pollama.errors import BadRequest, InvalidModelName
from pollama.names import parse
from pollama.registry import export_model, import_archive, pull_model, push_model
from pollama.server import openapi as doc
from pollama.server.native.models import body_schema
from pollama.server.native.types import PullRequest, parse_body
from pollama.server.state import PullSync, State
from pollama.server.streaming import last_event_response, ndjson_response, progress_events
from pollama.store import Store

router = APIRouter()
_REGISTRY = {500: "deliberate, as in Ollama (which streams these errors): the registry cannot be "
                  "reached or answered an error, the store could not be written, or the model "
                  "to push is not in the store"}


async def _respond(events: Any, stream: bool | None) -> Response:
    if stream is False:
        return await last_event_response(events)
    return await ndjson_response(events)


@router.post("/api/pull", openapi_extra=body_schema(PullRequest),
             responses=doc.native(400, 500, ok=doc.ProgressResponse, stream=True, why=_REGISTRY))
async def pull(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), PullRequest)
    name = parse(req.model or req.name)
    if not name.is_valid:
        raise InvalidModelName()
    store = server.store

    listen = server.metrics.pull_progress() if server.metrics is not None else None

    async def work(report: Any) -> None:
        def progress(event: dict[str, Any]) -> None:
            if listen is not None:
                listen(event)
            report(event)

        await pull_model(store, name, insecure=req.insecure, progress=progress)

    return await _respond(progress_events(work), req.stream)


@router.post("/api/push", openapi_extra=body_schema(PullRequest),
             responses=doc.native(400, 500, ok=doc.ProgressResponse, stream=True, why=_REGISTRY))
async def push(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), PullRequest)
    text = req.model or req.name
    if not text:
        raise BadRequest("model is required")
    name = parse(text)
    if not name.is_valid:
        raise InvalidModelName()
    store = server.store

    async def work(report: Any) -> None:
        await push_model(store, name, insecure=req.insecure, progress=report)

    return await _respond(progress_events(work), req.stream)


@router.get("/api/export", response_class=FileResponse, responses=doc.native(
    400, 404, ok={"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}))
async def export(request: Request, server: State,
                 model: str = Query(description=doc.MODEL_NAME)) -> Response:
    """One model as a tar (pollama extension): manifest + blobs in OCI image-layout form."""
    name = parse(model)
    if not name.is_valid:
        raise InvalidModelName()
    store = server.store
    store.get(model)  # 404 before any bytes are written
    fd, path = tempfile.mkstemp(prefix="export-", suffix=".tar", dir=store.root)
    os.close(fd)
    try:
        await export_model(store, store.name(model), path)
    except BaseException:
        os.unlink(path)
        raise
    filename = f"{name.model}-{name.tag}.tar"
    return FileResponse(path, media_type="application/x-tar", filename=filename,
                        background=BackgroundTask(os.unlink, path))


@router.post("/api/import",
             openapi_extra=doc.raw_body("application/x-tar", "a tar written by /api/export"),
             responses=doc.native(400, 499, 500, ok=doc.ImportResponse, why={
                 500: "deliberate: the store could not be written (disk full)"}))
async def import_(request: Request, server: State,
                  model: str = Query("", description="a new name for the model (default: "
                                     "the name in the archive)")) -> Response:
    """Import a tar written by /api/export; `?model=` renames it. The tar is verified first."""
    target = None
    if model:
        target = parse(model)
        if not target.is_valid:
            raise InvalidModelName()
    store = server.store
    store.ensure_dirs()
    fd, path = tempfile.mkstemp(prefix="import-", suffix=".tar", dir=store.root)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                async for chunk in request.stream():
                    f.write(chunk)
            except ClientDisconnect:
                return Response(status_code=499)
        name = await import_archive(store, path, name=target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return JSONResponse({"status": "success", "model": name.display_shortest()})


def pull_for_create(loop: asyncio.AbstractEventLoop, store: Store) -> PullSync:
    """A blocking pull for `create` (which runs in a worker thread) when `from` is missing."""
    def pull_sync(name: Any, progress: Any) -> None:
        future = asyncio.run_coroutine_threadsafe(
            pull_model(store, name, progress=progress), loop)
        future.result()

    return pull_sync
