"""The stream encoders every API dialect answers with: NDJSON (native) and server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pollama.errors import BadRequest, ServerShuttingDown
from pollama.server import shutdown as shutdown_module
from pollama.server.shutdown import Shutdown
from pollama.server.streaming import collect, ndjson_response, sse_frame, sse_response


async def events(*items: Any) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


async def body(response: Any) -> bytes:
    return b"".join([chunk async for chunk in response.body_iterator])


def test_ndjson_lines_and_an_in_band_error_after_the_first_object() -> None:
    async def run() -> bytes:
        response = await ndjson_response(events({"a": 1}, {"b": "é"}, BadRequest("late")))
        assert response.media_type == "application/x-ndjson"
        return await body(response)

    assert asyncio.run(run()) == '{"a":1}\n{"b":"é"}\n{"error":"late"}\n'.encode()


def test_an_error_before_the_first_object_is_raised_for_a_status() -> None:
    with pytest.raises(BadRequest):
        asyncio.run(ndjson_response(events(BadRequest("early"))))


def test_sse_frames_events_and_the_done_marker() -> None:
    assert sse_frame({"x": 1}) == b'data: {"x":1}\n\n'
    assert sse_frame({"x": 1}, "message_start") == b'event: message_start\ndata: {"x":1}\n\n'

    async def run(*items: Any) -> bytes:
        response = await sse_response(events(*items), event_of=lambda e: e.get("type"),
                                      error=lambda text: {"type": "error", "message": text},
                                      done="[DONE]")
        assert response.media_type == "text/event-stream"
        return await body(response)

    assert asyncio.run(run({"type": "ping"}, {"n": 2})) == (
        b'event: ping\ndata: {"type":"ping"}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n')
    assert asyncio.run(run({"n": 1}, BadRequest("gone"))) == (
        b'data: {"n":1}\n\nevent: error\ndata: {"type":"error","message":"gone"}\n\n')


# -- shutdown: the requests in flight end with an error, not a cut connection --------------


async def endless(started: asyncio.Event, closed: list[str]) -> AsyncIterator[dict[str, Any]]:
    """One event, then waits forever, as an answer that streams slowly; notes its cleanup."""
    try:
        yield {"n": 1}
        started.set()
        await asyncio.Event().wait()
        yield {"n": 2}
    finally:
        closed.append("closed")


def in_server(shutdown: Shutdown, work: Any) -> Any:
    """Run `work()` the way a request runs: with the server's Shutdown in its context."""
    async def run() -> Any:
        shutdown.bind(asyncio.get_running_loop())
        token = shutdown_module._current.set(shutdown)
        try:
            return await work()
        finally:
            shutdown_module._current.reset(token)
    return asyncio.run(run())


def test_shutdown_ends_an_open_stream_with_an_error_line() -> None:
    shutdown, closed = Shutdown(), []

    async def work() -> bytes:
        started = asyncio.Event()
        response = await ndjson_response(endless(started, closed))
        reading = asyncio.create_task(body(response))
        await started.wait()
        shutdown.begin_threadsafe()  # as the signal handler does
        return await asyncio.wait_for(reading, 30)  # a hang guard, not a timing

    assert in_server(shutdown, work) == b'{"n":1}\n{"error":"the server is shutting down"}\n'
    assert closed == ["closed"]  # the answer's generator was closed (its runner slot freed)


def test_shutdown_before_the_first_event_is_a_503() -> None:
    shutdown, closed = Shutdown(), []

    async def never() -> AsyncIterator[dict[str, Any]]:
        try:
            await asyncio.Event().wait()  # a model that is still loading
            yield {}
        finally:
            closed.append("closed")

    async def work() -> None:
        waiting = asyncio.create_task(ndjson_response(never()))
        await asyncio.sleep(0.01)
        shutdown.begin()
        await asyncio.wait_for(waiting, 30)

    with pytest.raises(ServerShuttingDown) as err:
        in_server(shutdown, work)
    assert err.value.status == 503 and closed == ["closed"]
    # Once the server is stopping, a new wait is refused at once.
    with pytest.raises(ServerShuttingDown):
        in_server(shutdown, lambda: collect(events({"a": 1})))


def test_other_cancellations_stay_cancellations() -> None:
    """A client that goes away cancels its request: that is no shutdown, nothing is written."""
    shutdown, closed = Shutdown(), []

    async def work() -> None:
        started = asyncio.Event()
        response = await ndjson_response(endless(started, closed))
        reading = asyncio.create_task(body(response))
        await started.wait()
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert not shutdown.started

    in_server(shutdown, work)
    assert closed == ["closed"]
