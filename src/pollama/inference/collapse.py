"""`stream: false`: the chunks of one generate or chat answer folded into Ollama's one object.

Kept apart from the routes so every API dialect that answers without streaming folds the same.
"""

from __future__ import annotations

from typing import Any


def collapse_generate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """`stream: false`: the final chunk with the whole response, thinking and logprobs."""
    if not chunks:
        return {}
    out: dict[str, Any] = {}
    for key, value in chunks[-1].items():
        if key == "response":
            out["response"] = "".join(c.get("response", "") for c in chunks)
            thinking = "".join(c.get("thinking", "") for c in chunks)
            if thinking:
                out["thinking"] = thinking
        elif key not in ("thinking", "logprobs"):
            out[key] = value
    logprobs = [lp for c in chunks for lp in c.get("logprobs", [])]
    if logprobs:
        out["logprobs"] = logprobs
    return out


def collapse_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """`stream: false`: one message with all content, thinking and tool calls (CHAT-07)."""
    if not chunks:
        return {}
    out: dict[str, Any] = {}
    for key, value in chunks[-1].items():
        if key == "message":
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(c.get("message", {}).get("content", "") for c in chunks)}
            thinking = "".join(c.get("message", {}).get("thinking", "") for c in chunks)
            if thinking:
                message["thinking"] = thinking
            calls = [tc for c in chunks for tc in c.get("message", {}).get("tool_calls", [])]
            if calls:
                message["tool_calls"] = calls
            out["message"] = message
        elif key != "logprobs":
            out[key] = value
    logprobs = [lp for c in chunks for lp in c.get("logprobs", [])]
    if logprobs:  # Go's ChatResponse puts logprobs before the embedded metrics
        metrics = {k: out.pop(k) for k in list(out) if k.endswith(("_duration", "_count"))}
        out["logprobs"] = logprobs
        out.update(metrics)
    return out
