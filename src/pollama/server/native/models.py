"""Model management routes: heartbeat, version, tags, show, copy, delete, blobs, create."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from pollama import __version__
from pollama.errors import BadRequest, InvalidModelName, ModelNotFound
from pollama.go import go_time
from pollama.models.details import model_details
from pollama.models.info import list_summary
from pollama.names import parse
from pollama.server import openapi as doc
from pollama.server.native.types import (
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    ShowRequest,
    parse_body,
)
from pollama.server.state import ServerState, State
from pollama.server.streaming import last_event_response, ndjson_response, progress_events
from pollama.store.blobs import require_digest
from pollama.store.manifest import CorruptManifest, StoredManifest

log = logging.getLogger("pollama.api")
router = APIRouter()


REQUEST_MODELS: dict[str, type[BaseModel]] = {}
_STORE_FULL = "deliberate: the model store could not be written (disk full, read-only)"


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body we parse ourselves (Ollama accepts JSON with any content type)."""
    REQUEST_MODELS[model.__name__] = model
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


@router.get("/", response_class=PlainTextResponse)
@router.head("/", response_class=PlainTextResponse, operation_id="heartbeat_head")
async def heartbeat() -> str:
    return "Ollama is running"


@router.get("/api/version", responses=doc.native(ok=doc.VersionResponse))
@router.head("/api/version", operation_id="version_head")
async def version() -> dict[str, str]:
    return {"version": __version__}


def _list_entry(server: ServerState, stored: StoredManifest) -> dict[str, Any] | None:
    """One /api/tags entry (Ollama's ListModelResponse), None for a model Ollama leaves out."""
    try:
        summary = list_summary(server.store, server.config, stored)
    except Exception as err:  # one unreadable model never fails the listing
        log.warning("failed to list model %s: %s", stored.name.display_shortest(), err)
        return None
    config = summary.config
    details = model_details(config, summary.parent_model,
                            context_length=summary.context_length,
                            embedding_length=summary.embedding_length)
    details["families"] = details["families"] or None  # Go copies an empty list to nil
    if details["quantization_level"] in ("", "unknown") and \
            summary.gguf_file_type not in ("", "unknown"):
        details["quantization_level"] = summary.gguf_file_type
    name = stored.name.display_shortest()
    entry: dict[str, Any] = {"name": name, "model": name}
    for key in ("remote_model", "remote_host"):
        if config.get(key):
            entry[key] = config[key]
    entry["modified_at"] = go_time(stored.modified_at)
    entry["size"] = stored.manifest.size
    entry["digest"] = stored.digest
    entry["details"] = details
    if summary.capabilities:
        entry["capabilities"] = list(summary.capabilities)
    return entry


def _list_models(server: ServerState) -> list[dict[str, Any]]:
    found, _corrupt = server.store.manifests.all()
    found.sort(key=lambda s: s.modified_at, reverse=True)
    return [e for e in (_list_entry(server, stored) for stored in found) if e is not None]


@router.get("/api/tags", responses=doc.native(ok=doc.ListResponse))
@router.head("/api/tags", operation_id="list_models_head")
async def list_models(request: Request, server: State) -> dict[str, Any]:
    return {"models": await asyncio.to_thread(_list_models, server)}


@router.post("/api/show", openapi_extra=body_schema(ShowRequest),
             responses=doc.native(400, 404, ok=doc.ShowResponse))
async def show(request: Request, server: State) -> JSONResponse:
    from pollama.models.show import show_model

    req = parse_body(await request.body(), ShowRequest)
    name = req.model or req.name
    if not name:
        raise BadRequest("model is required")
    result = await asyncio.to_thread(show_model, server.store, server.config, name,
                                      system=req.system, options=req.options,
                                      verbose=req.verbose)
    return JSONResponse(result)


@router.post("/api/copy", openapi_extra=body_schema(CopyRequest), response_class=Response,
             responses=doc.native(400, 404, 500, why={500: _STORE_FULL}))
async def copy(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), CopyRequest)
    await asyncio.to_thread(server.store.copy, req.source, req.destination)
    return Response(status_code=200)


@router.delete("/api/delete", openapi_extra=body_schema(DeleteRequest), response_class=Response,
               responses=doc.native(400, 404, 500, why={500: _STORE_FULL}))
async def delete(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), DeleteRequest)
    text = req.model or req.name
    if not parse(text).is_valid:
        raise InvalidModelName(f'name "{text}" is invalid')
    try:
        await asyncio.to_thread(server.store.delete, text)
    except CorruptManifest:
        raise ModelNotFound(text) from None
    return Response(status_code=200)


_DIGEST = Path(description="the blob's digest, sha256:<64 hex digits>",
               json_schema_extra={"pattern": doc.DIGEST})


@router.head("/api/blobs/{digest}", response_class=Response, responses=doc.native(400, 404))
async def blob_exists(request: Request, server: State, digest: str = _DIGEST) -> Response:
    parsed = require_digest(digest)
    if not server.store.blobs.exists(parsed):
        return JSONResponse({"error": f'blob "{digest}" not found'}, status_code=404)
    return Response(status_code=200)


@router.post("/api/blobs/{digest}", response_class=Response, status_code=201,
             openapi_extra=doc.raw_body("application/octet-stream", "the file's bytes"),
             responses={**doc.native(400, 499, 500, ok_status=200, why={
                 400: "the digest is malformed, or the bytes hash to another digest",
                 500: _STORE_FULL}), 201: {"description": "stored"}})
async def upload_blob(request: Request, server: State, digest: str = _DIGEST) -> Response:
    """Store the raw body as a blob, verifying it hashes to `digest` before it is visible."""
    parsed = require_digest(digest)
    blobs = server.store.blobs
    if blobs.exists(parsed):
        return Response(status_code=200)
    with blobs.writer(parsed) as writer:
        try:
            async for chunk in request.stream():
                writer.write(chunk)
        except ClientDisconnect:
            writer.abort()
            return Response(status_code=499)
        _digest, created = writer.commit()
    return Response(status_code=201 if created else 200)


@router.post("/api/create", openapi_extra=body_schema(CreateRequest),
             responses=doc.native(400, 404, 500, ok=doc.ProgressResponse, stream=True, why={
                 500: "deliberate: the store could not be written (disk full), or a missing "
                      "`from` model could not be pulled (registry unreachable or failing)"}))
async def create(request: Request, server: State) -> Response:
    req = parse_body(await request.body(), CreateRequest)
    plain = req.to_plain()
    from pollama.models.create import create_model, validate_request

    validate_request(server.store, plain)
    pull_sync = server.pull_sync

    async def work(report: Any) -> None:
        await asyncio.to_thread(create_model, server.store, plain, report, pull_sync)

    events = progress_events(work)
    if req.stream is False:
        return await last_event_response(events)
    return await ndjson_response(events)
