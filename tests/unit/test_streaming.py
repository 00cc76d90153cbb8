"""The stream encoders every API dialect answers with: NDJSON (native) and server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pollama.errors import BadRequest
from pollama.server.streaming import ndjson_response, sse_frame, sse_response


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
