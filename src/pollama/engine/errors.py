"""Errors the engine raises, placed in pollama's error tree so the API maps them in one place.

    PollamaError (pollama.errors)      500
    ├── EngineError                    500, base of everything a runner can fail with
    │   ├── RunnerStartError           500 the runner process died or timed out while loading
    │   ├── RunnerCrashed              500 the runner process died while serving (Ollama ERR-13)
    │   │   └── RpcWorkerLost          500 ... because an RPC worker it ran layers on went away
    │   └── RunnerError                500 the runner failed one request (decode error, ...)
    └── BadRequest (pollama.errors)    400
        └── RequestRejected            400 the runner refused a request as sent (bad grammar, ...)
            └── PromptTooLong          400 the prompt does not fit and shift is off (ERR-12)
"""

from __future__ import annotations

from pollama.errors import BadRequest, PollamaError

RUNNER_CRASHED = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details"
)
PROMPT_TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten "
    "the prompt, adjust the context length in settings, or use a model with a longer context "
    "length"
)


class EngineError(PollamaError):
    """Base class of the failures of a runner process."""


class RunnerStartError(EngineError):
    """The runner exited (or timed out) before it reported `ready`; `reason` is its last word."""

    def __init__(self, message: str, *, reason: str = "", returncode: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.returncode = returncode


class RunnerCrashed(EngineError):
    """The runner process died while requests were in flight (Ollama's ERR-13 text).

    `last_log_line` is the runner's last stderr line, for the log or an appended detail.
    """

    def __init__(
        self,
        message: str = RUNNER_CRASHED,
        *,
        last_log_line: str = "",
        returncode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.last_log_line = last_log_line
        self.returncode = returncode


class RpcWorkerLost(RunnerCrashed):
    """The runner died because the connection to an RPC worker broke (llama.cpp aborts then);
    `workers` are the endpoints that no longer answer, each with the reason."""

    def __init__(self, workers: dict[str, str], *, last_log_line: str = "",
                 returncode: int | None = None) -> None:
        if workers:
            names = ", ".join(f"{e} ({reason})" for e, reason in workers.items())
            plural = "s" if len(workers) > 1 else ""
            message = (f"RPC worker{plural} {names} went away while the model ran on "
                       f"{'them' if plural else 'it'}; the next request loads the model on "
                       "the devices that remain")
        else:
            message = (f"the connection to an RPC worker failed ({last_log_line}); the next "
                       "request loads the model again")
        super().__init__(message, last_log_line=last_log_line, returncode=returncode)
        self.workers = workers


class RunnerError(EngineError):
    """The runner could not finish one request for an internal reason (it keeps running)."""


class RequestRejected(BadRequest):
    """The runner refused a request as sent, e.g. a grammar that does not parse."""


class PromptTooLong(RequestRejected):
    """The prompt is longer than num_ctx − 1 tokens and context shift is off (ERR-12)."""

    def __init__(self, message: str = PROMPT_TOO_LONG) -> None:
        super().__init__(message)
