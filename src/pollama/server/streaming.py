"""One way to answer with a stream of JSON objects, or with one object when `stream` is false.

Errors raised before the first object become an HTTP status with `{"error": ...}` (the
exception handlers in app.py); once bytes are out, an error is an NDJSON `{"error": ...}` line
and the stream ends, as Ollama does (spec API-03/04).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from pollama.errors import PollamaError

log = logging.getLogger("pollama.api")

NDJSON = "application/x-ndjson"


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def error_text(err: BaseException) -> str:
    if isinstance(err, PollamaError):
        return err.message
    return str(err) or type(err).__name__


async def ndjson_response(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Stream `events` as NDJSON; the first event is awaited here so early errors keep a status."""
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None

    async def body() -> AsyncIterator[bytes]:
        if first is not None:
            yield _line(first)
        try:
            async for event in events:
                yield _line(event)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the status is already sent: report in-band
            if not isinstance(err, PollamaError):
                log.exception("error while streaming")
            yield _line({"error": error_text(err)})
        finally:
            await events.aclose()

    return StreamingResponse(body(), media_type=NDJSON)


async def last_event_response(events: AsyncIterator[dict[str, Any]]) -> JSONResponse:
    """`stream: false` for progress streams: only the last object (normally success)."""
    last: dict[str, Any] = {}
    async for event in events:
        last = event
    return JSONResponse(last)


async def progress_events(work: Callable[[Callable[[dict[str, Any]], None]], Awaitable[None]]
                          ) -> AsyncIterator[dict[str, Any]]:
    """Run `work(progress)` as a task and yield what it reports; re-raise its error at the end."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    def report(event: dict[str, Any]) -> None:
        # Callable from the loop or from a worker thread (blocking work runs in threads).
        if threading.get_ident() == loop_thread:
            queue.put_nowait(event)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    async def run() -> None:
        try:
            await work(report)
        finally:
            report_done()

    def report_done() -> None:
        if threading.get_ident() == loop_thread:
            queue.put_nowait(None)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = asyncio.create_task(run())
    try:
        while True:
            event = await queue.get()
            if event is None:
                break
            yield event
        await task  # raises the work's error, if any
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
