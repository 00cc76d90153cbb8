"""Progress objects as Ollama streams them (`api.ProgressResponse`, zero fields omitted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Progress = Callable[[dict[str, Any]], None]

TICK = 0.06  # seconds between progress updates of a transfer, as Ollama's 60 ms ticker


def status(text: str) -> dict[str, Any]:
    return {"status": text}


def transfer(verb: str, digest: str, total: int, completed: int) -> dict[str, Any]:
    """`{"status": "<verb> <digest[7:19]>", "digest", "total", "completed"}` (Go omitempty)."""
    out: dict[str, Any] = {"status": f"{verb} {digest[7:19]}", "digest": digest}
    if total:
        out["total"] = total
    if completed:
        out["completed"] = completed
    return out


def ignore(_: dict[str, Any]) -> None:
    """A progress callback that drops everything."""
