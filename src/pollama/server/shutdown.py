"""Ending the requests in flight when `pollama serve` is told to stop (SIGINT, SIGTERM).

uvicorn's graceful shutdown waits for open connections before it runs the lifespan's shutdown
(which stops the runners), so a streaming answer would hold the server up until its client
gave up, and uvicorn would then cancel it with a traceback. Instead, the moment the signal
arrives, `Shutdown.begin` cancels every request task that is waiting on the model, a pull or
a create (each such wait sits in `interruptible()`); the wait turns the cancellation into
`ServerShuttingDown`, which a stream writes as its error line (NDJSON `{"error": ...}`, an SSE
error event) and a request that has not answered yet returns as a 503. Then the connections
close, and the lifespan stops the runners.

    async with interruptible():        # ServerShuttingDown if the server stops meanwhile
        first = await anext(events)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

from pollama.errors import ServerShuttingDown

log = logging.getLogger("pollama.server")

_CANCEL_MESSAGE = "pollama: the server is shutting down"


class Shutdown:
    """The server's shutdown switch and the request tasks it interrupts."""

    def __init__(self) -> None:
        self.started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[asyncio.Task[object], int] = {}  # task → nesting depth
        self._interrupted: set[asyncio.Task[object]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that serves requests (a signal handler hands `begin` over to it)."""
        self._loop = loop

    def begin_threadsafe(self) -> None:
        """`begin` from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.begin)

    def begin(self) -> None:
        """Refuse new waits and interrupt those in progress (idempotent)."""
        if self.started:
            return
        self.started = True
        if self._waiting:
            log.info("shutting down: ending %d request(s) in progress", len(self._waiting))
        for task in list(self._waiting):
            self._interrupted.add(task)
            task.cancel(_CANCEL_MESSAGE)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Around an await that may last: raises ServerShuttingDown when the server stops."""
        if self.started:
            raise ServerShuttingDown()
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._waiting[task] = self._waiting.get(task, 0) + 1
        try:
            yield
        except asyncio.CancelledError:
            if task not in self._interrupted or self._waiting[task] > 1:
                raise  # not ours (a client gone, uvicorn's own timeout), or an outer wait's
            self._interrupted.discard(task)
            task.uncancel()
            raise ServerShuttingDown() from None
        finally:
            depth = self._waiting.pop(task) - 1
            if depth:
                self._waiting[task] = depth


_current: ContextVar[Shutdown | None] = ContextVar("pollama_shutdown", default=None)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """`Shutdown.interruptible` of the server handling this request (no-op outside one)."""
    shutdown = _current.get()
    if shutdown is None:
        yield
        return
    with shutdown.interruptible():
        yield


class ShutdownScope:
    """ASGI middleware: makes the app's `Shutdown` the one `interruptible()` uses in a request
    (and in the tasks the request starts, which copy the context)."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _current.set(self.shutdown)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
