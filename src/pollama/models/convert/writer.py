"""Writing a GGUF one tensor at a time, so a model is never held in memory twice.

gguf's `GGUFWriter` encodes the header, the metadata and the tensor infos (the format's
maintained encoder); the tensor data then streams to the sink chunk by chunk, each chunk read
from its safetensors file, converted and written before the next is read. The sink is the
store's blob writer, which hashes the bytes as they pass, so the file is written once and read
never.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import gguf
import numpy as np
from gguf.gguf_writer import WriterState

from pollama.models.convert.safetensors import TensorSource

F32 = gguf.GGMLQuantizationType.F32
F16 = gguf.GGMLQuantizationType.F16
BF16 = gguf.GGMLQuantizationType.BF16
OUTPUT_TYPES = {"F32": F32, "F16": F16, "BF16": BF16}
FILE_TYPES = {F32: gguf.LlamaFileType.ALL_F32, F16: gguf.LlamaFileType.MOSTLY_F16,
              BF16: gguf.LlamaFileType.MOSTLY_BF16}
_SOURCE_TYPES = {"F32": F32, "F16": F16, "BF16": BF16}
CHUNK_BYTES = 16 << 20
ALIGNMENT = gguf.GGUF_DEFAULT_ALIGNMENT


class Sink(Protocol):
    def write(self, chunk: bytes) -> None: ...  # memoryviews pass too (hashlib, files)


Progress = Callable[[int, int], None]


@dataclass
class OutputTensor:
    """One GGUF tensor: its name, shape (numpy order, rows first), type, and where its values
    come from: a safetensors tensor (streamed by rows, or whole through `transform` when the
    values must be rearranged) or values computed by the converter (`values`)."""

    name: str
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    source: TensorSource | None = None
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    values: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * (4 if self.qtype == F32 else 2)


def to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Raw safetensors values (BF16 as its uint16 bits) as float32."""
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32, copy=False)


def encode(raw: np.ndarray, dtype: str, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    """Values in `dtype` (raw bits for BF16) as the bytes of GGUF type `qtype`; a same-type
    tensor passes through untouched."""
    if _SOURCE_TYPES.get(dtype) == qtype:
        return raw
    return gguf.quants.quantize(to_float32(raw, dtype), qtype)


def _in_memory(tensor: OutputTensor) -> np.ndarray | None:
    """The bytes of a tensor that is made whole (computed values, or a tensor a transform
    rearranges); None for one that streams by rows."""
    if tensor.values is not None:
        return gguf.quants.quantize(tensor.values.astype(np.float32), tensor.qtype)
    source = tensor.source
    assert source is not None
    if tensor.transform is None:
        return None
    values = tensor.transform(to_float32(source.read_rows(0, source.rows), source.dtype))
    return gguf.quants.quantize(np.ascontiguousarray(values, np.float32), tensor.qtype)


def _write_tensor(sink: Sink, tensor: OutputTensor, done: int, total: int,
                  progress: Progress) -> int:
    whole = _in_memory(tensor)
    if whole is not None:
        sink.write(_bytes(whole))
        done += tensor.nbytes
        progress(done, total)
        return done
    source = tensor.source
    assert source is not None
    row_bytes = max(1, source.nbytes // max(1, source.rows))
    step = max(1, CHUNK_BYTES // row_bytes)
    for start in range(0, source.rows, step):
        stop = min(source.rows, start + step)
        chunk = encode(source.read_rows(start, stop), source.dtype, tensor.qtype)
        sink.write(_bytes(chunk))
        done += chunk.nbytes
        progress(done, total)
    return done


def _bytes(values: np.ndarray) -> memoryview:
    """The array's bytes without a copy (a copy only when it is not contiguous)."""
    return np.ascontiguousarray(values).data.cast("B")


def _pad(n: int) -> bytes:
    return bytes(-n % ALIGNMENT)


def header_bytes(writer: gguf.GGUFWriter) -> bytes:
    """The header, metadata and tensor infos `writer` holds, as bytes (padded to the data)."""
    buffer = io.BytesIO()
    # GGUFWriter writes to files it opens itself; hand it an in-memory one instead.
    writer.fout = [buffer]  # type: ignore[list-item]
    writer.state = WriterState.EMPTY
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    data = buffer.getvalue()
    writer.fout = None
    return data + _pad(len(data))


def write_gguf(sink: Sink, writer: gguf.GGUFWriter, tensors: list[OutputTensor],
               progress: Progress) -> int:
    """Stream the GGUF to `sink`: `writer`'s metadata, then every tensor in order. Calls
    `progress(bytes_done, bytes_total)` after each chunk (it may raise to stop the work).
    Returns the number of bytes written."""
    for tensor in tensors:
        writer.add_tensor_info(tensor.name, tensor.shape,
                               np.dtype(np.float32 if tensor.qtype == F32 else np.float16),
                               tensor.nbytes, raw_dtype=tensor.qtype)
    head = header_bytes(writer)
    sink.write(head)
    total = sum(t.nbytes for t in tensors)
    written = len(head)
    done = 0
    progress(done, total)
    for tensor in tensors:
        done = _write_tensor(sink, tensor, done, total, progress)
        padding = _pad(tensor.nbytes)
        if padding:
            sink.write(padding)
        written += tensor.nbytes + len(padding)
    return written
