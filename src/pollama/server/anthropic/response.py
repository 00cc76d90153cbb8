"""The folded native chat answer → one Anthropic `Message` object (spec ANT-05)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pollama.inference.service import STOP_SEQUENCE


def stop_reason(done_reason: str | None, tool_calls: bool) -> str | None:
    """Ollama's `mapStopReason`: tool calls win, `stop` → `end_turn`, `length` → `max_tokens`."""
    if tool_calls:
        return "tool_use"
    if done_reason == "stop":
        return "end_turn"
    if done_reason == "length":
        return "max_tokens"
    return "stop_sequence" if done_reason else None


def stop_fields(done: dict[str, Any], tool_calls: bool,
                stop_sequences: Sequence[str]) -> dict[str, str | None]:
    """`stop_reason` and `stop_sequence` of a finished answer. Beyond Ollama (which says
    `end_turn`): an answer ended by one of the request's `stop_sequences` says which one; a stop
    string of the model's own (its Modelfile's `PARAMETER stop`) ends the turn."""
    matched = done.get(STOP_SEQUENCE)
    if not tool_calls and done.get("done_reason") == "stop" and matched in stop_sequences:
        return {"stop_reason": "stop_sequence", "stop_sequence": matched}
    return {"stop_reason": stop_reason(done.get("done_reason"), tool_calls),
            "stop_sequence": None}


def usage(chunk: dict[str, Any]) -> dict[str, int]:
    """The native counts as Anthropic's usage (the prompt's tokens, cached or not)."""
    return {"input_tokens": int(chunk.get("prompt_eval_count") or 0),
            "output_tokens": int(chunk.get("eval_count") or 0)}


def thinking_block(text: str) -> dict[str, Any]:
    """A thinking block; `signature` is Anthropic's proof of origin, empty here (the SDK's
    type requires the field, and pollama does not check it when the block comes back)."""
    return {"type": "thinking", "thinking": text, "signature": ""}


def tool_use_block(call: dict[str, Any], input_: Any) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"type": "tool_use", "id": call.get("id") or "", "name": function.get("name", ""),
            "input": input_}


def to_message(collapsed: dict[str, Any], message_id: str, model: str, *,
               omit_thinking: bool = False, stop_sequences: Sequence[str] = ()
               ) -> dict[str, Any]:
    """`collapse_chat`'s one object → the Anthropic message."""
    message = collapsed.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("thinking"):
        content.append(thinking_block("" if omit_thinking else message["thinking"]))
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    calls = message.get("tool_calls") or []
    for call in calls:
        content.append(tool_use_block(call, (call.get("function") or {}).get("arguments") or {}))
    return {"id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": content, **stop_fields(collapsed, bool(calls), stop_sequences),
            "usage": usage(collapsed)}
