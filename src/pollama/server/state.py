"""The server's application state: built once by `create_app`, handed to routes as a dependency.

    @router.get("/api/ps")
    async def ps(server: State) -> dict[str, Any]:
        return {"models": server.inference.running()}
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request

from pollama.config import Config
from pollama.conversations import ConversationStore
from pollama.errors import BadRequest
from pollama.inference.service import Inference
from pollama.server.shutdown import Shutdown
from pollama.store import Store

if TYPE_CHECKING:
    from pollama.server.metrics import Metrics

PullSync = Callable[[Any, Any], None]  # (model name, progress) → None, from a worker thread
T = TypeVar("T")

CONVERSATIONS_OFF = ("conversations are turned off on this server (OLLAMA_CONVERSATIONS=0): "
                     "send the whole history in messages")


@dataclass
class ServerState:
    """What routes need: the settings, the store, and the services built on them."""

    config: Config
    store: Store
    inference: Inference
    pull_sync: PullSync | None = None  # set at startup: create pulls a missing `from` with it
    metrics: Metrics | None = None  # None with OLLAMA_METRICS=0
    conversations: ConversationStore | None = None  # None: OLLAMA_CONVERSATIONS=0
    # One lock per conversation being answered: turns of one conversation run one at a time.
    conversation_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary)
    # Set off by SIGINT/SIGTERM: ends the requests in flight before the runners stop.
    shutdown: Shutdown = field(default_factory=Shutdown)

    def conversation_lock(self, conversation_id: str) -> asyncio.Lock:
        lock = self.conversation_locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self.conversation_locks[conversation_id] = lock
        return lock

    async def db(self, call: Callable[[ConversationStore], T]) -> T:
        """Run `call(store)` in a worker thread (SQLite blocks); 400 when the store is off."""
        store = self.conversations
        if store is None:
            raise BadRequest(CONVERSATIONS_OFF)
        return await asyncio.to_thread(call, store)


def server_state(request: Request) -> ServerState:
    """The app's state (the FastAPI dependency behind `State`)."""
    state: ServerState = request.app.state.pollama
    return state


State = Annotated[ServerState, Depends(server_state)]
