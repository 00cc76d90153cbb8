"""Quantize on create (`pollama create -q q4_K_M`, `/api/create` `quantize`), as Ollama does.

Ollama accepts F32, F16, BF16, Q8_0, Q4_K_S and Q4_K_M (Q4_K is Q4_K_M) and quantizes only
F16, BF16 and F32 models; a model already of the asked type is kept as it is. llama.cpp's own
quantizer does the work in a child process (`engine/quantize.py`) that writes into a temp file
in the blobs directory; the file becomes a blob only once complete and hashed, so a failure or a
client that goes away leaves no partial blob (and, create failing, no manifest).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pollama.engine.quantize import QuantizeProgress, quantize_gguf
from pollama.errors import BadRequest
from pollama.formats import gguf
from pollama.store import Store
from pollama.store.manifest import Layer

Progress = Callable[[dict[str, Any]], None]

# What the request may say (upper-cased) → the file type it makes (Ollama's ParseFileType).
QUANTIZE_TYPES = {"F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0",
                  "Q4_K_S": "Q4_K_S", "Q4_K_M": "Q4_K_M", "Q4_K": "Q4_K_M"}
UNQUANTIZED = ("F16", "BF16", "F32")
# Ollama's progress digest for a quantization (server/create.go).
PROGRESS_DIGEST = "0" * 19


def requested_type(request: dict[str, Any]) -> str:
    """The request's `quantize` (or older `quantization`) upper-cased, "" for none; an unknown
    type is Ollama's error."""
    quantize = str(request.get("quantize") or request.get("quantization") or "").upper()
    if quantize and quantize not in QUANTIZE_TYPES:
        raise BadRequest(f"unsupported quantization type {quantize} - supported types are "
                         "F32, F16, Q4_K_S, Q4_K_M, Q8_0")
    return quantize


def source_type(info: gguf.GGUFInfo) -> str:
    """The model's file type; `general.file_type` 0 is F32 here, though Ollama reads it as
    unknown and so refuses to quantize the F32 models its own list accepts."""
    if info.file_type == "unknown" and info.kv.get("general.file_type") == 0 and \
            info.kv_types.get("general.file_type") == gguf.GGUFValueType.UINT32:
        return "F32"
    return info.file_type


def needs_quantizing(info: gguf.GGUFInfo, quantize: str) -> bool:
    """Whether the model must be rewritten; raises Ollama's error for a quantized source."""
    current = source_type(info)
    if current not in UNQUANTIZED:
        raise BadRequest("quantization is only supported for F16, BF16 and F32 models")
    return current != QUANTIZE_TYPES[quantize]


def quantize_layer(store: Store, layer: Layer, info: gguf.GGUFInfo, quantize: str,
                   progress: Progress) -> tuple[Layer, gguf.GGUFInfo, bool]:
    """Write the quantized model as a new blob; returns its layer, header and whether the blob
    is new. Progress: Ollama's `quantizing F16 model to Q4_K_M` with completed/total bytes of
    the source (by the elements of the tensors done), then `verifying conversion` (hashing)."""
    source = store.blobs.path(layer.digest)
    status = f"quantizing {source_type(info)} model to {quantize}"
    elements = {t["name"]: _elements(t["shape"]) for t in info.tensors}
    all_elements = sum(elements.values()) or 1
    done = {"elements": 0, "tensors": 0}

    def report(step: QuantizeProgress) -> None:
        if step.done > done["tensors"]:
            done["tensors"] = step.done
            done["elements"] += elements.get(step.tensor, 0)
        completed = layer.size if step.total and step.done >= step.total else \
            layer.size * done["elements"] // all_elements
        event: dict[str, Any] = {"status": status, "digest": PROGRESS_DIGEST,
                                 "total": layer.size}
        if completed:  # Go's omitempty
            event["completed"] = completed
        progress(event)

    output = store.blobs.temp_path()
    quantize_gguf(source, output, QUANTIZE_TYPES[quantize], report)
    verifying = {"status": "verifying conversion"}
    progress(verifying)
    last = [time.monotonic()]

    def hashed(_n: int) -> None:  # a report a second, so a client that went away stops it
        if time.monotonic() - last[0] >= 1.0:
            last[0] = time.monotonic()
            progress(verifying)

    digest, size, created = store.blobs.commit_file(output, on_chunk=hashed)
    # A new layer, as Ollama's NewLayer makes it: no `from`.
    return Layer(layer.media_type, digest, size), gguf.read(store.blobs.path(digest)), created


def _elements(shape: list[int]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n
