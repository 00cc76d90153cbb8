"""What the inference service tells whoever watches it (the server's Prometheus metrics).

A base class whose methods do nothing, so the service never checks whether anyone listens, and
the inference layer never imports the server's metrics library.
"""

from __future__ import annotations

from typing import Any


class InferenceObserver:
    """Hooks called from the event loop, once per event; they must not block."""

    def first_token(self, model: str, seconds: float) -> None:
        """The first text of an answer, `seconds` after the request came (load included)."""

    def finished(self, model: str, done: dict[str, Any]) -> None:
        """A runner's done chunk: `prompt_eval_count`, `prompt_cached`, `eval_count`,
        `eval_duration` (ns) and `done_reason`."""
