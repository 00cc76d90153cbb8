"""The server's application state: built once by `create_app`, handed to routes as a dependency.

    @router.get("/api/ps")
    async def ps(server: State) -> dict[str, Any]:
        return {"models": server.inference.running()}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from pollama.config import Config
from pollama.inference.service import Inference
from pollama.store import Store

if TYPE_CHECKING:
    from pollama.server.metrics import Metrics

PullSync = Callable[[Any, Any], None]  # (model name, progress) → None, from a worker thread


@dataclass
class ServerState:
    """What routes need: the settings, the store, and the services built on them."""

    config: Config
    store: Store
    inference: Inference
    pull_sync: PullSync | None = None  # set at startup: create pulls a missing `from` with it
    metrics: Metrics | None = None  # None with OLLAMA_METRICS=0


def server_state(request: Request) -> ServerState:
    """The app's state (the FastAPI dependency behind `State`)."""
    state: ServerState = request.app.state.pollama
    return state


State = Annotated[ServerState, Depends(server_state)]
