"""Hugging Face safetensors checkpoints read without torch, every claim of a header checked.

A safetensors file is an 8-byte little-endian header length, a JSON header
(`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`) and the data,
offsets counted from the end of the header. Every offset, shape and dtype is checked against the
file's size before a byte of data is read, so a truncated or corrupt file is a ConversionError
naming the file and the tensor, never a crash or a short read. A sharded checkpoint's
`model.safetensors.index.json` must agree with the shards it lists.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pollama.errors import ConversionError

INDEX = "model.safetensors.index.json"
MAX_HEADER = 100 << 20  # the safetensors format's own limit

# Bytes per element of every dtype the format defines; only the float ones can be converted.
ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
# How the raw bytes of a convertible dtype are viewed (numpy has no bfloat16: its bits as u16).
RAW_DTYPES: dict[str, np.dtype[Any]] = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
                                        "BF16": np.dtype("<u2")}


@dataclass(frozen=True)
class TensorSource:
    """Where one tensor's bytes are: a file, an absolute offset and a length already checked."""

    name: str
    path: Path
    file: str  # the file's name in the model folder, for messages
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int

    @property
    def rows(self) -> int:
        return self.shape[0]

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows `start:stop` of the tensor in its raw dtype (BF16 as uint16 bits)."""
        if self.dtype not in RAW_DTYPES:
            raise ConversionError(f'{self.file}: tensor "{self.name}" is {self.dtype}; '
                                  "only F32, F16 and BF16 tensors can be converted")
        raw = RAW_DTYPES[self.dtype]
        inner = self.shape[1:]
        row_bytes = math.prod(inner) * raw.itemsize
        count = (stop - start) * row_bytes
        out = np.empty(count, np.uint8)
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * row_bytes)
            got = f.readinto(out.data)
        if got != count:
            raise ConversionError(f"{self.file} changed while it was read: tensor "
                                  f'"{self.name}" is cut short')
        return out.view(raw).reshape((stop - start, *inner))


def _fail(file: str, what: str) -> ConversionError:
    return ConversionError(f"{file}: {what}")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_header(path: Path, file: str) -> dict[str, TensorSource]:
    """The tensors of one safetensors file, each one's place checked against the file's size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _fail(file, f"not a safetensors file ({size} bytes, too short for a header)")
            length = int.from_bytes(head, "little")
            if length > MAX_HEADER:
                raise _fail(file, f"not a safetensors file (header length {length} is over the "
                                  "format's 100 MB limit)")
            if 8 + length > size:
                raise _fail(file, f"file is truncated: its header needs {8 + length} bytes but "
                                  f"the file has {size}")
            text = f.read(length)
    except OSError as err:
        raise _fail(file, f"cannot read: {err.strerror or err}") from None
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise _fail(file, "not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise _fail(file, "not a safetensors file (its header is not a JSON object)")
    data_start = 8 + length
    tensors: dict[str, TensorSource] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise _fail(file, f'tensor "{name}" has no dtype, shape and data_offsets')
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in ITEM_SIZES:
            raise _fail(file, f'tensor "{name}" has an unknown dtype {dtype!r}')
        if not isinstance(shape, list) or not all(_int(d) for d in shape):
            raise _fail(file, f'tensor "{name}" has an invalid shape {shape!r}')
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_int(o) for o in offsets)
                or offsets[0] > offsets[1]):
            raise _fail(file, f'tensor "{name}" has invalid data_offsets {offsets!r}')
        nbytes = math.prod(shape) * ITEM_SIZES[dtype]
        if offsets[1] - offsets[0] != nbytes:
            raise _fail(file, f'tensor "{name}" is {dtype} {shape} ({nbytes} bytes) but its '
                              f"data_offsets span {offsets[1] - offsets[0]} bytes")
        end = data_start + offsets[1]
        if end > size:
            raise _fail(file, f'file is truncated: tensor "{name}" ends at byte {end} but the '
                              f"file has {size} bytes")
        # A 0-d tensor (a scalar) becomes one of one element: GGUF has no 0-d tensors.
        tensors[name] = TensorSource(name, path, file, dtype, tuple(shape) or (1,),
                                     data_start + offsets[0], nbytes)
    return tensors


def read_checkpoint(folder: Path) -> dict[str, TensorSource]:
    """Every tensor of the folder's checkpoint: the shards its index lists, else every top-level
    `*.safetensors` file. A tensor found twice, or an index naming a missing shard or tensor, is
    an error."""
    index_path = folder / INDEX
    weight_map: dict[str, str] | None = None
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_bytes())
            weight_map = index["weight_map"]
            if not isinstance(weight_map, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ConversionError(f'{INDEX}: not a safetensors index (no "weight_map" of '
                                  "tensor names to file names)") from None
        files = sorted(set(weight_map.values()))
        for file in files:
            if "/" in file or not (folder / file).is_file():
                raise ConversionError(f"{file} is listed in {INDEX} but was not uploaded with "
                                      "the model's other files")
    else:
        files = sorted(p.name for p in folder.iterdir()
                       if p.name.endswith(".safetensors") and p.is_file())
    if not files:
        raise ConversionError("no .safetensors file in the model folder")
    tensors: dict[str, TensorSource] = {}
    for file in files:
        for name, source in read_header(folder / file, file).items():
            if name in tensors:
                raise ConversionError(f'tensor "{name}" is in both {tensors[name].file} and '
                                      f"{file}")
            tensors[name] = source
    for name, file in (weight_map or {}).items():
        found = tensors.get(name)
        if found is None or found.file != file:
            raise ConversionError(f'{INDEX} puts tensor "{name}" in {file}, which does not '
                                  "hold it")
    return tensors
