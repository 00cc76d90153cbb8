"""Llama-family decoders: `LlamaForCausalLM` and `MistralForCausalLM` as llama.cpp's `llama`
architecture, `Qwen2ForCausalLM` (q/k/v biases, NeoX RoPE) as `qwen2`.

Hugging Face's Llama rotates query and key halves ("rotate_half"); llama.cpp's `llama` rotates
interleaved pairs, so the q and k rows (and biases) of each head are permuted as llama.cpp's
converter does. Qwen2 rotates halves in llama.cpp too: no permutation. Grouped-query attention,
an explicit `head_dim`, tied embeddings (no `output.weight`: llama.cpp reuses the token
embedding), linear and llama3 RoPE scaling convert; other RoPE scalings are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gguf
import numpy as np

from pollama.errors import ConversionError
from pollama.models.convert.checkpoint import Checkpoint, in_gguf_order
from pollama.models.convert.tokenizer import bpe_vocabulary
from pollama.models.convert.writer import F32, FILE_TYPES, OutputTensor

# Hugging Face architecture → llama.cpp architecture.
ARCHITECTURES = {"LlamaForCausalLM": gguf.MODEL_ARCH.LLAMA,
                 "MistralForCausalLM": gguf.MODEL_ARCH.LLAMA,
                 "Qwen2ForCausalLM": gguf.MODEL_ARCH.QWEN2}
_SKIPPED_SUFFIXES = (".rotary_emb.inv_freq",)


def _permute(heads: int) -> Callable[[np.ndarray], np.ndarray]:
    """Each head's rows from halves order (HF) to interleaved pairs (llama.cpp's `llama`)."""
    def permute(w: np.ndarray) -> np.ndarray:
        return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:])
                .swapaxes(1, 2).reshape(w.shape))
    return permute


def _rope_scaling(config: dict[str, Any]) -> dict[str, Any]:
    """`rope_scaling` (or transformers 5's `rope_parameters`) with its type under "rope_type";
    {} for none."""
    scaling = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if not isinstance(scaling, dict):
        raise ConversionError("config.json: rope_scaling must be an object")
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind in (None, "default"):
        return {}
    return {**scaling, "rope_type": kind}


def llama3_rope_factors(scaling: dict[str, Any], theta: float, head_dim: int) -> np.ndarray:
    """Llama 3.1's frequency-dependent RoPE scaling as the per-dimension divisors llama.cpp
    reads from `rope_freqs.weight` (the same formula as transformers' `llama3` rope init)."""
    factor = float(scaling.get("factor", 8.0))
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    original = float(scaling.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * math.pi / freqs
    smooth = (original / wavelen - low) / (high - low)
    factors = np.where(wavelen < original / high, 1.0,
                       np.where(wavelen > original / low, factor,
                                1.0 / ((1 - smooth) / factor + smooth)))
    return factors.astype(np.float32)


def convert(ckpt: Checkpoint, hf_architecture: str) -> tuple[gguf.GGUFWriter, list[OutputTensor]]:
    arch = ARCHITECTURES[hf_architecture]
    config = ckpt.config
    if (act := config.get("hidden_act", "silu")) != "silu":
        raise ConversionError(f'config.json: hidden_act "{act}" cannot be converted; a '
                              f"{hf_architecture} converts with silu")
    n_layer = ckpt.integer("num_hidden_layers")
    hidden = ckpt.integer("hidden_size")
    n_head = ckpt.integer("num_attention_heads")
    n_kv = ckpt.integer("num_key_value_heads", default=n_head)
    head_dim = ckpt.integer("head_dim", default=hidden // n_head)
    context = ckpt.integer("max_position_embeddings")
    theta = ckpt.number("rope_theta", default=float((config.get("rope_parameters") or {})
                                                      .get("rope_theta", 10000.0)))
    if n_head % n_kv or head_dim % 2:
        raise ConversionError(f"config.json: {n_head} attention heads cannot share {n_kv} "
                              f"key/value heads of dimension {head_dim}")
    if arch == gguf.MODEL_ARCH.QWEN2 and config.get("use_sliding_window"):
        raise ConversionError("config.json: use_sliding_window cannot be converted (llama.cpp's "
                              "qwen2 attends to the whole context)")
    window = config.get("sliding_window")
    if (arch == gguf.MODEL_ARCH.LLAMA and isinstance(window, int) and 0 < window < context):
        # llama.cpp's llama has no sliding window: within one window, full attention is the same.
        context = window
    scaling = _rope_scaling(config)
    kind = scaling.get("rope_type")
    if kind not in (None, "linear", "llama3") or (kind == "llama3"
                                                   and arch != gguf.MODEL_ARCH.LLAMA):
        raise ConversionError(f'config.json: rope_scaling type "{kind}" cannot be converted; '
                              "supported: linear, llama3 (Llama)")

    names = gguf.get_tensor_name_map(arch, n_layer)
    permute = arch == gguf.MODEL_ARCH.LLAMA
    tensors: list[OutputTensor] = []
    for name, source in ckpt.tensors.items():
        if name.endswith(_SKIPPED_SUFFIXES):
            continue
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ConversionError(f'tensor "{name}" has no place in a {hf_architecture} model')
        out = OutputTensor(mapped, source.shape, ckpt.tensor_type(mapped, len(source.shape)),
                           source)
        role = mapped.split(".")[-2]
        for proj, heads in (("attn_q", n_head), ("attn_k", n_kv)):
            if role == proj:
                if source.shape[0] != heads * head_dim:
                    raise ConversionError(f'{source.file}: tensor "{name}" has {source.shape[0]}'
                                          f" rows, config.json implies {heads} heads of "
                                          f"{head_dim}")
                if permute:
                    out.transform = _permute(heads)
        tensors.append(out)
    if kind == "llama3":
        factors = llama3_rope_factors(scaling, theta, head_dim)
        tensors.append(OutputTensor("rope_freqs.weight", factors.shape, F32, values=factors))
    tensors = in_gguf_order(tensors)

    by_name = {t.name: t for t in tensors}
    embedding = by_name.get("token_embd.weight")
    if embedding is None or len(embedding.shape) != 2 or embedding.shape[1] != hidden:
        raise ConversionError('tensor "model.embed_tokens.weight" is missing or not '
                              "[vocab_size, hidden_size]")
    if "output.weight" not in by_name and not config.get("tie_word_embeddings", False):
        raise ConversionError('tensor "lm_head.weight" is missing and config.json does not '
                              "tie it to the embedding (tie_word_embeddings)")
    n_vocab = embedding.shape[0]
    vocab = bpe_vocabulary(ckpt.folder, n_vocab)

    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ckpt.integer("intermediate_size"))
    writer.add_block_count(n_layer)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_layer_norm_rms_eps(ckpt.number("rms_norm_eps", default=1e-6))
    writer.add_rope_freq_base(theta)
    writer.add_rope_dimension_count(head_dim)
    if "head_dim" in config:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling.get("factor", 1.0)))
    writer.add_file_type(FILE_TYPES[ckpt.matrix_type])
    vocab.add_to(writer)
    return writer, tensors
