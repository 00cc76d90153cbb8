"""Answering with a stream of JSON objects (NDJSON for the native API, server-sent events for
the OpenAI and Anthropic dialects), or with one object when `stream` is false.

Errors raised before the first object become an HTTP status with `{"error": ...}` (the
exception handlers in app.py); once bytes are out, an error is an NDJSON `{"error": ...}` line
and the stream ends, as Ollama does (spec API-03/04). When the server stops, each stream ends
with such a line (`ServerShuttingDown`), and an answer not yet begun is a 503
(`shutdown.interruptible`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi.responses import JSONResponse, StreamingResponse

from pollama.errors import ClientGone, PollamaError
from pollama.server.shutdown import interruptible

log = logging.getLogger("pollama.api")

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
T = TypeVar("T")


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def error_text(err: BaseException) -> str:
    if isinstance(err, PollamaError):
        return err.message
    return str(err) or type(err).__name__


async def stream_response(events: AsyncGenerator[dict[str, Any], None], *,
                          encode: Callable[[dict[str, Any]], bytes], media_type: str,
                          error: Callable[[str], dict[str, Any]] = lambda text: {"error": text},
                          end: bytes = b"") -> StreamingResponse:
    """Stream `events`, each encoded by `encode`; the first event is awaited here so early
    errors keep an HTTP status; a later error is encoded in-band as `error(text)`; `end` is
    written after the last event (SSE dialects end with a marker)."""
    try:
        with interruptible():
            first = await anext(events)
    except StopAsyncIteration:
        first = None

    async def body() -> AsyncIterator[bytes]:
        if first is not None:
            yield encode(first)
        try:
            while True:
                try:
                    with interruptible():  # not around the yield: shutdown never cuts a send
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                yield encode(event)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the status is already sent: report in-band
            if not isinstance(err, PollamaError):
                log.exception("error while streaming")
            yield encode(error(error_text(err)))
            return
        finally:
            await events.aclose()
        if end:
            yield end

    return StreamingResponse(body(), media_type=media_type)


async def ndjson_response(events: AsyncGenerator[dict[str, Any], None]) -> StreamingResponse:
    """Ollama's native streams: one JSON object a line (`application/x-ndjson`)."""
    return await stream_response(events, encode=_line, media_type=NDJSON)


def sse_frame(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event: `event: <name>` (when named) and `data: <json>`, a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False,
                                                         separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


async def sse_response(events: AsyncGenerator[dict[str, Any], None], *,
                       event_of: Callable[[dict[str, Any]], str | None] = lambda _: None,
                       error: Callable[[str], dict[str, Any]] = lambda text: {"error": text},
                       done: str | None = None) -> StreamingResponse:
    """The OpenAI and Anthropic dialects' streams: server-sent events (`text/event-stream`);
    `event_of` names an event, `done` is a last data line (OpenAI's `[DONE]`)."""
    return await stream_response(
        events, encode=lambda e: sse_frame(e, event_of(e)), media_type=SSE, error=error,
        end=sse_frame(done) if done else b"")


async def collect(events: AsyncIterator[T]) -> list[T]:
    """Every event of an answer sent whole (`stream: false`); ServerShuttingDown (a 503) if the
    server stops first."""
    with interruptible():
        return [event async for event in events]


async def last_event_response(events: AsyncIterator[dict[str, Any]]) -> JSONResponse:
    """`stream: false` for progress streams: only the last object (normally success)."""
    last: dict[str, Any] = {}
    with interruptible():
        async for event in events:
            last = event
    return JSONResponse(last)


async def progress_events(work: Callable[[Callable[[dict[str, Any]], None]], Awaitable[None]]
                          ) -> AsyncGenerator[dict[str, Any], None]:
    """Run `work(progress)` as a task and yield what it reports; re-raise its error at the end.

    When the consumer goes (the client disconnected), the next `progress` call raises
    `ClientGone`, so work running in a thread stops at its next report instead of finishing
    for no one (cancelling the task cannot stop a thread)."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    gone = threading.Event()

    def report(event: dict[str, Any]) -> None:
        if gone.is_set():
            raise ClientGone()
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
        gone.set()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
