"""What every architecture's converter reads first: config.json, the tensors, the output type.

Tensor types follow llama.cpp's converter: matrices in the output type (F16 unless asked
otherwise; a BF16 checkpoint stays BF16, as Ollama's converter keeps it), and F32 for what
llama.cpp reads as F32: 1-D tensors (norms, biases), `*_norm.weight`, token-type and position
rows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from pollama.errors import ConversionError
from pollama.models.convert.safetensors import TensorSource, read_checkpoint
from pollama.models.convert.writer import BF16, F16, F32, OUTPUT_TYPES, OutputTensor

_BLOCK = re.compile(r"\.(\d+)\.")


def read_json(folder: Path, name: str) -> Any:
    path = folder / name
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConversionError(f"{name} not found in the model folder") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise ConversionError(f"{name} is not valid JSON: {err}") from None


def read_config(folder: Path) -> dict[str, Any]:
    if not (folder / "config.json").is_file():
        raise ConversionError("config.json not found: a safetensors model folder needs the "
                              "config.json of its Hugging Face model")
    config = read_json(folder, "config.json")
    if not isinstance(config, dict):
        raise ConversionError("config.json is not a JSON object")
    return config


def architecture(config: dict[str, Any]) -> str:
    names = config.get("architectures")
    if not isinstance(names, list) or not names or not isinstance(names[0], str):
        raise ConversionError('unknown architecture: config.json has no "architectures" list')
    return names[0]


@dataclass
class Checkpoint:
    """A model folder's config and tensors, and the type its matrices are written in."""

    folder: Path
    config: dict[str, Any]
    tensors: dict[str, TensorSource]
    matrix_type: gguf.GGMLQuantizationType

    @classmethod
    def open(cls, folder: Path, config: dict[str, Any], output_type: str | None
             ) -> Checkpoint:
        tensors = read_checkpoint(folder)
        if output_type is not None:
            matrix_type = OUTPUT_TYPES[output_type]
        else:
            matrices = [t for t in tensors.values() if len(t.shape) >= 2]
            all_bf16 = bool(matrices) and all(t.dtype == "BF16" for t in matrices)
            matrix_type = BF16 if all_bf16 else F16
        return cls(folder, config, tensors, matrix_type)

    def integer(self, *keys: str, default: int | None = None) -> int:
        """The first of `keys` config.json sets, as a positive integer."""
        for key in keys:
            value = self.config.get(key)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConversionError(f'config.json: "{key}" must be a positive integer, not '
                                      f"{value!r}")
            return value
        if default is None:
            raise ConversionError(f'config.json: "{keys[0]}" is missing')
        return default

    def number(self, *keys: str, default: float | None = None) -> float:
        for key in keys:
            value = self.config.get(key)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConversionError(f'config.json: "{key}" must be a positive number, not '
                                      f"{value!r}")
            return float(value)
        if default is None:
            raise ConversionError(f'config.json: "{keys[0]}" is missing')
        return default

    def tensor_type(self, gguf_name: str, ndim: int) -> gguf.GGMLQuantizationType:
        if (ndim <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight")
                or gguf_name.startswith(("token_types.", "position_embd."))):
            return F32
        return self.matrix_type

    def require(self, name: str, shape: tuple[int, ...]) -> TensorSource:
        """The tensor `name`, checked to have `shape`."""
        source = self.tensors.get(name)
        if source is None:
            raise ConversionError(f'tensor "{name}" is missing from the safetensors files')
        if source.shape != shape:
            raise ConversionError(f'{source.file}: tensor "{name}" has shape {list(source.shape)}'
                                  f", config.json implies {list(shape)}")
        return source


def in_gguf_order(tensors: list[OutputTensor]) -> list[OutputTensor]:
    """The tensors in llama.cpp's file order; two checkpoint tensors with one GGUF name (say
    `embed_tokens` with and without a `model.` prefix) are an error, not a silent pick."""
    seen: dict[str, OutputTensor] = {}
    for tensor in tensors:
        if tensor.name in seen:
            first, second = seen[tensor.name].source, tensor.source
            raise ConversionError(f'tensors "{first.name if first else "?"}" and '
                                  f'"{second.name if second else "?"}" are both '
                                  f"{tensor.name}")
        seen[tensor.name] = tensor
    return sorted(tensors, key=lambda t: gguf_order(t.name))


def gguf_order(name: str) -> tuple[int, int, str]:
    """Embeddings first, then the blocks in order, then the rest (llama.cpp's file order)."""
    if name.startswith(("token_embd", "token_types", "position_embd", "rope_freqs")):
        return (0, 0, name)
    found = _BLOCK.search(name)
    if name.startswith("blk.") and found:
        return (1, int(found.group(1)), name)
    return (2, 0, name)
