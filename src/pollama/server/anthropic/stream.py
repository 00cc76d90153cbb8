"""The native chat stream → Anthropic's server-sent events (spec ANT-06).

    message_start                      (after the first native chunk: earlier errors keep
                                        their HTTP status)
    content_block_start  index i       thinking / text / tool_use (input {})
    content_block_delta  index i       thinking_delta / text_delta / input_json_delta
    content_block_stop   index i       … one start/stop pair per block, in order
    message_delta                      stop_reason, stop_sequence, usage
    message_stop

Each event's `type` is its SSE event name; an error after `message_start` is an `error` event
(Anthropic's error object) and the stream ends. A block is closed when the next kind of output
starts; a tool call is a whole block (its arguments JSON in one delta), as in Ollama.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from fastapi.responses import StreamingResponse

from pollama.inference.requests import ChatRequest
from pollama.server.anthropic.errors import error_body
from pollama.server.anthropic.response import stop_fields, thinking_block, tool_use_block, usage
from pollama.server.streaming import sse_response


def estimate_input_tokens(req: ChatRequest) -> int:
    """Ollama's estimate for `message_start` (about 4 characters a token); the real count
    follows in `message_delta` once the native stream reports it."""
    chars = 0
    for m in req.messages or []:
        chars += len(m.content or "") + len(m.thinking or "")
        chars += sum(len(json.dumps(c)) for c in m.tool_calls or [])
    chars += sum(len(json.dumps(t)) for t in req.tools or [])
    return max(1, chars // 4)


class StreamConverter:
    """Turns native chat chunks into Anthropic events, keeping the open block's kind."""

    def __init__(self, message_id: str, model: str, *, omit_thinking: bool = False,
                 stop_sequences: Sequence[str] = ()) -> None:
        self.message_id = message_id
        self.model = model
        self.omit_thinking = omit_thinking
        self.stop_sequences = stop_sequences
        self.index = -1  # of the last block started
        self.open: str | None = None  # kind of the block still open
        self.tool_calls = 0

    def start(self, input_tokens: int) -> dict[str, Any]:
        return {"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0}}}

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _begin(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self.index += 1
        self.open = kind
        events.append({"type": "content_block_start", "index": self.index,
                       "content_block": block})
        return events

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def process(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        message = chunk.get("message") or {}
        events: list[dict[str, Any]] = []
        thinking = message.get("thinking") or ""
        if thinking:
            if self.open != "thinking":
                events += self._begin("thinking", thinking_block(""))
            if not self.omit_thinking:
                events.append(self._delta({"type": "thinking_delta", "thinking": thinking}))
        text = message.get("content") or ""
        if text:
            if self.open != "text":
                events += self._begin("text", {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": text}))
        for call in message.get("tool_calls") or []:
            self.tool_calls += 1
            events += self._begin("tool_use", tool_use_block(call, {}))
            arguments = (call.get("function") or {}).get("arguments") or {}
            events.append(self._delta({"type": "input_json_delta",
                                       "partial_json": json.dumps(arguments,
                                                                  ensure_ascii=False)}))
            events += self._close()
        if chunk.get("done"):
            events += self._close()
            events.append({"type": "message_delta",
                           "delta": stop_fields(chunk, self.tool_calls > 0,
                                                self.stop_sequences),
                           "usage": usage(chunk)})
            events.append({"type": "message_stop"})
        return events


async def message_events(native: AsyncGenerator[dict[str, Any], None], req: ChatRequest,
                         converter: StreamConverter) -> AsyncGenerator[dict[str, Any], None]:
    """The Anthropic events of one streamed answer; `message_start` waits for the first native
    chunk, so an error before it (unknown model, bad request) is still an HTTP error."""
    try:
        try:
            first = await anext(native)
        except StopAsyncIteration:
            return
        yield converter.start(estimate_input_tokens(req))
        for event in converter.process(first):
            yield event
        async for chunk in native:
            for event in converter.process(chunk):
                yield event
    finally:
        await native.aclose()  # a client that leaves early cancels the generation


async def message_stream_response(native: AsyncGenerator[dict[str, Any], None],
                                  req: ChatRequest, converter: StreamConverter,
                                  request_id: str) -> StreamingResponse:
    """The SSE response of one streamed answer; an error once it began is an `error` event
    with Anthropic's error object (an `api_error`: the status line is already sent)."""
    response = await sse_response(message_events(native, req, converter),
                                  event_of=lambda event: event["type"],
                                  error=lambda text: error_body(500, text, request_id))
    response.headers["request-id"] = request_id
    response.headers["cache-control"] = "no-cache"
    return response
