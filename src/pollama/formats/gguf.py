"""GGUF metadata as Ollama reports it: key/values, tensors, details, `model_info`, capabilities.

`read(path)` parses the header only (key/values and tensor infos, never tensor data) and caches
the result per (path, size, mtime). The header is parsed here rather than with
`gguf.GGUFReader`, which builds numpy views element by element and takes seconds on a 50k-token
vocabulary; the `gguf` package still supplies the value-type and quantisation tables.

Values follow Ollama's `fs/ggml` decoder: `general.parameter_count` is always the sum of tensor
element counts (a stored value is overwritten), `general.file_type` must be a uint32 > 0 to name
a quantisation (F32 = 0 reads as "unknown", as in Ollama), float32 values are kept as the
shortest decimal that round-trips, so they serialise as Go prints a float32.

Errors: `GGUFError` (base) → `NotGGUF` (no GGUF magic) | `CorruptGGUF` (truncated or invalid
header, with Ollama's decoder texts such as `tensor "x" offset+size (N) exceeds file size (M)`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGUFValueType

from pollama.formats.options import to_float32


class GGUFError(Exception):
    """A file that cannot be read as GGUF."""


class NotGGUF(GGUFError):
    """The file does not start with the GGUF magic."""


class CorruptGGUF(GGUFError):
    """The file starts like a GGUF but its header is truncated or invalid."""


# Ollama's FileType.String() (fs/ggml/type.go), indexed by general.file_type.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4",
    40: "Q1_0",
}

# Ollama's TensorType.String(), indexed by the ggml tensor type.
_TENSOR_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
}

_QUANT_SIZES = {int(k): v for k, v in GGML_QUANT_SIZES.items()}  # type → (block, bytes/block)

_MAX_STRING = 16 << 20
_MAX_ARRAY = 64 << 20
_MAX_DIMS = 4
_U64_MAX = 2**64 - 1

_SCALARS = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d", GGUFValueType.BOOL: "<?",
}
_NUMPY = {
    GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2",
    GGUFValueType.INT16: "<i2", GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
    GGUFValueType.FLOAT32: "<f4", GGUFValueType.UINT64: "<u8", GGUFValueType.INT64: "<i8",
    GGUFValueType.FLOAT64: "<f8", GGUFValueType.BOOL: "?",
}


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    """A GGUF file's header. Treat `kv` and `tensors` as read-only: results are cached."""

    path: str
    version: int
    kv: dict[str, Any] = field(repr=False)
    kv_types: dict[str, int] = field(repr=False)  # key → GGUFValueType (ARRAY for arrays)
    tensors: list[dict[str, Any]] = field(repr=False)  # [{"name", "type", "shape"}]
    parameter_count: int
    architecture: str  # general.architecture, "unknown" when missing (as Ollama)
    file_type: str  # Ollama's name for general.file_type: "Q4_K_M", "F16", …, or "unknown"
    chat_template: str | None = field(repr=False)  # tokenizer.chat_template (Jinja)


class _Header:
    """A cursor over the mapped file; every read past the end is a CorruptGGUF."""

    def __init__(self, buf: mmap.mmap, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def need(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise CorruptGGUF("unexpected EOF")
        self.pos = start + n
        return start

    def scalar(self, fmt: str) -> Any:
        start = self.need(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, start)[0]

    def count(self, what: str, n: int, smallest: int) -> int:
        """An element count read from the file, refused when that many elements of `smallest`
        bytes cannot fit in the rest of it: nothing is ever sized from a corrupt count."""
        if n * smallest > self.size - self.pos:
            raise CorruptGGUF(f"{what} count {n} does not fit in the file ({self.size} bytes)")
        return n

    def string(self) -> str:
        length = self.scalar("<Q")
        if length > _MAX_STRING:
            raise CorruptGGUF(f"GGUF string length {length} exceeds maximum {_MAX_STRING}")
        start = self.need(length)
        return self.buf[start:start + length].decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            return self.array()
        fmt = _SCALARS.get(kind)  # type: ignore[call-overload]
        if fmt is None:
            raise CorruptGGUF(f"invalid type: {kind}")
        value = self.scalar(fmt)
        return to_float32(value) if kind == GGUFValueType.FLOAT32 else value

    def array(self) -> list[Any]:
        kind = self.scalar("<I")
        count = self.scalar("<Q")
        if count > _MAX_ARRAY:
            raise CorruptGGUF(f"GGUF array size {count} exceeds maximum {_MAX_ARRAY}")
        if kind == GGUFValueType.STRING:
            return [self.string() for _ in range(self.count("GGUF array", count, 8))]
        dtype = _NUMPY.get(kind)  # type: ignore[call-overload]
        if dtype is None:
            raise CorruptGGUF(f"invalid array type: {kind}")
        width = np.dtype(dtype).itemsize
        start = self.need(count * width)
        array = np.frombuffer(self.buf, dtype=dtype, count=count, offset=start)
        if kind == GGUFValueType.FLOAT32:
            # numpy prints float32 with the shortest round-trip digits; parsing those back
            # gives the same values as to_float32, seven times faster on a 256k-entry vocab.
            return array.astype(str).astype(np.float64).tolist()
        return array.tolist()


def _parse(path: str) -> GGUFInfo:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(4) != b"GGUF":
            raise NotGGUF(f"{path}: invalid file magic")
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _parse_header(path, _Header(buf, size))
    finally:
        with contextlib.suppress(BufferError):  # a numpy view alive in a traceback; GC closes it
            buf.close()


def _parse_header(path: str, h: _Header) -> GGUFInfo:
    h.pos = 4
    version = h.scalar("<I")
    if version not in (2, 3):
        raise CorruptGGUF(f"unsupported GGUF version {version}")
    n_tensors = h.scalar("<Q")
    n_kv = h.count("GGUF key/value", h.scalar("<Q"), 8 + 4 + 1)  # key, type, smallest value
    h.count("GGUF tensor", n_tensors, 8 + 4 + 4 + 8)  # name, dims, type, offset

    kv: dict[str, Any] = {}
    kv_types: dict[str, int] = {}
    for _ in range(n_kv):
        key = h.string()
        kind = h.scalar("<I")
        kv[key] = h.value(kind)
        kv_types[key] = kind

    tensors: list[dict[str, Any]] = []
    infos: list[tuple[str, int, int, list[int]]] = []
    parameters = 0
    for _ in range(n_tensors):
        name = h.string()
        dims = h.scalar("<I")
        if dims > _MAX_DIMS:
            raise CorruptGGUF(f'tensor "{name}" dimensions {dims} exceeds maximum {_MAX_DIMS}')
        shape = [h.scalar("<Q") for _ in range(dims)]
        kind = h.scalar("<I")
        offset = h.scalar("<Q")
        elements = math.prod(shape)
        if elements > _U64_MAX:
            raise CorruptGGUF(f'tensor "{name}" elements overflow')
        parameters += elements
        if parameters > _U64_MAX:
            raise CorruptGGUF("parameter count overflow")
        tensors.append({"name": name, "type": _TENSOR_TYPES.get(kind, "unknown"),
                        "shape": shape})
        infos.append((name, kind, offset, shape))

    kv["general.parameter_count"] = parameters  # Ollama always patches in the tensor sum
    kv_types["general.parameter_count"] = GGUFValueType.UINT64

    alignment = kv["general.alignment"] if kv_types.get("general.alignment") == \
        GGUFValueType.UINT32 else 32
    if alignment == 0:
        raise CorruptGGUF("invalid GGUF alignment: 0")
    data_start = h.pos + (alignment - h.pos % alignment) % alignment
    for name, kind, offset, shape in infos:
        if kind not in _QUANT_SIZES:
            raise CorruptGGUF(f'tensor "{name}" size overflow')
        block, type_size = _QUANT_SIZES[kind]
        if shape and shape[0] % block:
            raise CorruptGGUF(f'tensor "{name}" size overflow')
        end = data_start + offset + math.prod(shape) // block * type_size
        if end > h.size:
            raise CorruptGGUF(f'tensor "{name}" offset+size ({end}) exceeds file size ({h.size})')

    arch = kv.get("general.architecture")
    architecture = arch if isinstance(arch, str) and \
        kv_types.get("general.architecture") == GGUFValueType.STRING else "unknown"
    file_type = "unknown"
    raw_type = kv.get("general.file_type")
    if kv_types.get("general.file_type") == GGUFValueType.UINT32 and raw_type:
        file_type = _FILE_TYPES.get(raw_type, "unknown")
    template = kv.get("tokenizer.chat_template")
    return GGUFInfo(
        path=path,
        version=version,
        kv=kv,
        kv_types=kv_types,
        tensors=tensors,
        parameter_count=parameters,
        architecture=architecture,
        file_type=file_type,
        chat_template=template if isinstance(template, str) else None,
    )


@functools.lru_cache(maxsize=8)  # a 50k-token vocabulary is ~9 MB of Python objects
def _read_cached(path: str, size: int, mtime_ns: int) -> GGUFInfo:
    return _parse(path)


def read(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse a GGUF file's header (cached per path, size and mtime).

    Raises `NotGGUF` for other files, `CorruptGGUF` for a damaged header, OSError if unreadable.
    """
    real = os.path.realpath(path)
    st = os.stat(real)
    if st.st_size < 4:
        raise NotGGUF(f"{os.fspath(path)}: invalid file magic")
    return _read_cached(real, st.st_size, st.st_mtime_ns)


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts with the GGUF magic (no parsing)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


# -- what /api/show reports --


def human_number(n: int) -> str:
    """Ollama's `format.HumanNumber`: 134515008 → "134.52M", 8_000_000_000 → "8B"."""
    for unit, scale, places in (("B", 1_000_000_000, 1), ("M", 1_000_000, 2)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value == math.floor(value) else \
                f"{value:.{places}f}{unit}"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)


def human_bytes(n: int) -> str:
    """Ollama's `format.HumanBytes` (decimal units): 98362432 → "98 MB", 1500 → "1.5 KB"."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            value = n / scale
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{n} B"


def details(info: GGUFInfo) -> dict[str, Any]:
    """The `details` object of /api/show and /api/tags for a model made from this file."""
    return {
        "parent_model": "",
        "format": "gguf",
        "family": info.architecture,
        "families": [info.architecture],
        "parameter_size": human_number(info.parameter_count),
        "quantization_level": info.file_type,
    }


def model_info(info: GGUFInfo, verbose: bool = False) -> dict[str, Any]:
    """The `model_info` of /api/show (SHOW-05): every key but `general.name` and the template.

    Without `verbose`, Ollama's decoder keeps no array values: a non-empty array is null, an
    empty one `[]` (so `tokenizer.ggml.tokens` is null). Keys are sorted, as Go marshals maps.
    """
    out: dict[str, Any] = {}
    for key in sorted(info.kv):
        if key in ("general.name", "tokenizer.chat_template"):
            continue
        value = info.kv[key]
        if isinstance(value, list):
            value = list(value) if verbose or not value else None
        out[key] = value
    return out


def _kv(info: GGUFInfo, key: str) -> Any:
    # Keys outside general./tokenizer. are per architecture, as Ollama's KeyValue looks them up.
    if not key.startswith(("general.", "tokenizer.")):
        arch = info.kv.get("general.architecture")
        key = f"{arch if isinstance(arch, str) else ''}.{key}"
    return info.kv.get(key)


def chat_template_has_tools(template: str) -> bool:
    """A Jinja chat template that mentions tools (Ollama's `chatTemplateHasToolSupport`)."""
    return "tools" in template or "tool_call" in template


def chat_template_has_tool_round_trip(template: str) -> bool:
    """A Jinja template that renders tool calls and their results (TPL-12's tie-breaker)."""
    if not chat_template_has_tools(template):
        return False
    calls = "tool_calls" in template or "assistant_tool_call" in template
    results = ("tool_response", "tool_results", "role'] == 'tool'", "role'] == \"tool\"",
               "role\"] == 'tool'", "role\"] == \"tool\"", "message.role == 'tool'",
               "message.role == \"tool\"", "ipython")
    return calls and any(r in template for r in results)


def chat_template_has_thinking(template: str) -> bool:
    """`<think>…</think>` in the template, or a `content.split('</think>')` reasoning strip."""
    if "<think>" in template and "</think>" in template:
        return True
    splits = "content.split('</think>')" in template or 'content.split("</think>")' in template
    return splits and "reasoning_content" not in template and "<SPECIAL_12>" not in template


def chat_template_capabilities(template: str | None) -> list[str]:
    """`tools` / `thinking` from a Jinja chat template's text (Ollama's rules, TPL-13)."""
    caps = []
    if template:
        if chat_template_has_tools(template):
            caps.append("tools")
        if chat_template_has_thinking(template):
            caps.append("thinking")
    return caps


def projector_has_audio(projector: GGUFInfo) -> bool:
    """A projector GGUF with an audio encoder (`has_audio_encoder`, any prefix), not gemma3n."""
    kv = projector.kv
    audio = kv.get("has_audio_encoder") is True or any(
        k.endswith(".has_audio_encoder") and v is True for k, v in kv.items())
    return audio and _kv(projector, "vision.projector_type") != "gemma3nv"


def gguf_capabilities(info: GGUFInfo, has_projector: bool = False, *,
                      use_chat_template: bool = True,
                      projector_audio: bool = False) -> list[str]:
    """Capabilities Ollama reads from a model GGUF and its projector, in Ollama's order.

    Chat-template `tools`/`thinking` first (only when the chat template is the one used, i.e.
    no Go renderer/template path), then `embedding` (a `pooling_type` key) or `completion`,
    `vision` (a projector: departure below), `audio` (`audio.block_count` or a projector
    with an audio encoder). Go-template, parser and gpt-oss capabilities are added elsewhere.
    """
    caps: list[str] = []

    def add(cap: str) -> None:
        if cap not in caps:
            caps.append(cap)

    if use_chat_template:
        for cap in chat_template_capabilities(info.chat_template):
            add(cap)
    add("embedding" if _kv(info, "pooling_type") is not None else "completion")
    # Vision needs a projector file here: llama.cpp's mtmd cannot read a vision encoder built
    # into the model GGUF (Ollama's own engine can, and lists `vision` for those).
    if _kv(info, "audio.block_count") is not None:
        add("audio")
    if has_projector:
        add("vision")
        if projector_audio:
            add("audio")
    if info.architecture == "nemotron_h_omni" and "audio" in caps:
        caps.remove("audio")  # Ollama hides it until llama.cpp can load that projector
    return caps


def tensor_list(info: GGUFInfo) -> list[dict[str, Any]]:
    """The `tensors` of /api/show: `[{name, type, shape}]`, copied."""
    return [{"name": t["name"], "type": t["type"], "shape": list(t["shape"])}
            for t in info.tensors]


def kv_string(info: GGUFInfo, key: str, default: str = "") -> str:
    """A string value looked up as Ollama does (architecture prefix for model keys)."""
    value = _kv(info, key)
    return value if isinstance(value, str) else default


def kv_uint(info: GGUFInfo, key: str, default: int = 0) -> int:
    """An integer value looked up as Ollama does (architecture prefix for model keys)."""
    value = _kv(info, key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default

