"""Hugging Face safetensors folders → GGUF, without torch (`FROM ./folder/` in a Modelfile).

`prepare(folder)` reads and checks everything a conversion needs (config.json, every
safetensors header against its file, the tokenizer, the architecture's hyper-parameters) and
raises a ConversionError naming the problem before a byte is written; `Conversion.write` then
streams the GGUF tensor by tensor. One module per concern: `safetensors` (the checked reader),
`tokenizer`, `checkpoint` (config and tensor types), `bert` and `llama` (the architectures),
`writer` (the streaming GGUF writer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gguf

from pollama.errors import ConversionError
from pollama.models.convert import bert, llama
from pollama.models.convert.checkpoint import Checkpoint, architecture, read_config
from pollama.models.convert.writer import OUTPUT_TYPES, OutputTensor, Progress, Sink, write_gguf

__all__ = ["OUTPUT_TYPES", "SUPPORTED_ARCHITECTURES", "Conversion", "ConversionError",
           "prepare"]

SUPPORTED_ARCHITECTURES = ("BertModel", *llama.ARCHITECTURES)

# gguf's writer and vocab log every key and endianness at INFO: noise in a server's log.
logging.getLogger("gguf").setLevel(logging.WARNING)


@dataclass
class Conversion:
    """A checked plan: the GGUF's metadata and where each of its tensors comes from."""

    architecture: str  # the Hugging Face name, e.g. "LlamaForCausalLM"
    writer: gguf.GGUFWriter
    tensors: list[OutputTensor]

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def write(self, sink: Sink, progress: Progress) -> int:
        """Stream the GGUF into `sink`; `progress(done, total)` counts tensor bytes and may
        raise to stop. Returns the bytes written."""
        return write_gguf(sink, self.writer, self.tensors, progress)


def prepare(folder: Path, output_type: str | None = None) -> Conversion:
    """Check the Hugging Face model in `folder` and plan its conversion. `output_type` ("F32",
    "F16", "BF16") sets the matrices' type; by default F16 (BF16 for a BF16 checkpoint)."""
    if output_type is not None and output_type not in OUTPUT_TYPES:
        raise ValueError(f"output type {output_type!r} is not one of {sorted(OUTPUT_TYPES)}")
    config = read_config(folder)
    name = architecture(config)
    if name not in SUPPORTED_ARCHITECTURES:
        raise ConversionError(f'unsupported architecture "{name}"; supported: '
                              f"{', '.join(SUPPORTED_ARCHITECTURES)}")
    ckpt = Checkpoint.open(folder, config, output_type)
    if name == "BertModel":
        writer, tensors = bert.convert(ckpt)
    else:
        writer, tensors = llama.convert(ckpt, name)
    return Conversion(name, writer, tensors)
