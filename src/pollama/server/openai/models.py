"""`GET /v1/models` and `GET /v1/models/{model}` (OAI-07/08): the store's models as OpenAI
model objects, `created` their modification time, `owned_by` their namespace."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Path

from pollama.names import parse
from pollama.server import openapi as doc
from pollama.server.openai.errors import OpenAIRoute
from pollama.server.state import ServerState, State
from pollama.store.manifest import StoredManifest

router = APIRouter(route_class=OpenAIRoute)


def model_object(model_id: str, stored: StoredManifest) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": int(stored.modified_at.timestamp()),
            "owned_by": parse(model_id).namespace}


def list_models(server: ServerState) -> dict[str, Any]:
    found, _corrupt = server.store.manifests.all()
    found.sort(key=lambda s: s.modified_at, reverse=True)
    return {"object": "list",
            "data": [model_object(s.name.display_shortest(), s) for s in found]}


@router.get("/v1/models", responses=doc.openai(ok=doc.OpenAIModelList))
async def models(server: State) -> dict[str, Any]:
    return await asyncio.to_thread(list_models, server)


@router.get("/v1/models/{model:path}", responses=doc.openai(404, ok=doc.OpenAIModel,
                                                                  plain_404=True))
async def retrieve_model(server: State, model: str = Path(description=doc.MODEL_NAME)
                         ) -> dict[str, Any]:
    stored = await asyncio.to_thread(server.store.get, model)  # ModelNotFound → 404
    return model_object(model, stored)
