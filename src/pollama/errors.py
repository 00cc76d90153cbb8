"""Errors a user can hit, each with the HTTP status and text Ollama answers for it.

    PollamaError                 500, base of everything below
    ├── BadRequest               400, a request that cannot be served as sent
    │   ├── InvalidModelName     400 "invalid model name"
    │   ├── DigestMismatch       400 digest of uploaded bytes differs
    │   ├── ModelfileError       400 Modelfile text that does not parse (names the line)
    │   ├── NotSupported         400 a capability the model lacks
    │   ├── InvalidImage         400 an image that does not decode (names which one)
    │   ├── ConversionError      400 a safetensors folder that cannot be converted (names why)
    │   └── EmbeddingError       400 an input or vector /api/embed cannot serve (EMB-03/04)
    ├── NotFound                 404
    │   └── ModelNotFound        404 "model '<m>' not found"
    ├── QueueFull                503 too many pending requests
    └── StorageError             500 the model store could not be written (e.g. disk full)

The API maps them to `{"error": message}` in one exception handler (server/app.py); the CLI
prints `Error: <message>`.
"""

from __future__ import annotations


class PollamaError(Exception):
    """Base class: `status` is the HTTP status, `str(err)` the user-facing text."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequest(PollamaError):
    status = 400


class InvalidModelName(BadRequest):
    def __init__(self, message: str = "invalid model name") -> None:
        super().__init__(message)


class DigestMismatch(BadRequest):
    pass


class ModelfileError(BadRequest):
    pass


class NotSupported(BadRequest):
    pass


SPECULATIVE_DECODING = ("speculative decoding (a Modelfile DRAFT, draft_files, "
                        "draft_num_predict) is not supported by pollama yet: remove the DRAFT "
                        "line; the model runs without a draft model")


class SpeculativeDecodingUnsupported(NotSupported):
    """A DRAFT model or draft option: refused, so it is never silently ignored."""

    def __init__(self) -> None:
        super().__init__(SPECULATIVE_DECODING)


class InvalidImage(BadRequest):
    """An image that is not one the model can see: names which image and what is wrong."""


class ConversionError(BadRequest):
    """A Hugging Face safetensors folder that cannot become a GGUF: names the file and why."""


class EmbeddingError(BadRequest):
    """An embedding request that cannot be served: texts are Ollama's (EMB-03, EMB-04)."""


INPUT_TOO_LONG = "the input length exceeds the context length"
NOT_FINITE = "embedding contains NaN or Inf values"


class NotFound(PollamaError):
    status = 404


class ModelNotFound(NotFound):
    def __init__(self, model: str, message: str | None = None) -> None:
        super().__init__(message or f"model '{model}' not found")
        self.model = model


class QueueFull(PollamaError):
    status = 503

    def __init__(self) -> None:
        super().__init__("server busy, please try again.  maximum pending requests exceeded")


class ClientGone(PollamaError):
    """The client of a long operation (create, pull) closed its connection: the work stops."""

    status = 499

    def __init__(self) -> None:
        super().__init__("client disconnected")


class StorageError(PollamaError):
    status = 500
