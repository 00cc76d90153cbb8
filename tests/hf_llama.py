"""Tiny random-weight Llama-family models written as Hugging Face folders (config.json,
safetensors, a byte-level BPE tokenizer trained here by `tokenizers`, tokenizer_config.json with
a ChatML chat template) for the conversion tests and bench/bench_convert.py, and a plain-numpy
forward pass of the same weights with transformers' semantics (rotate-half RoPE, grouped-query
attention, RMSNorm, SiLU-gated MLP) to check the converted GGUF's logits against.

Weights are drawn large enough that logits spread over several units, so a wrong permutation,
a lost bias or a swapped tensor shows as a large difference, not as noise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

BOS, EOS, IM_START, IM_END = "<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
                 "{{ message['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Llamas live in the Andes and carry packs for people who walk there.",
    "In 1969, 3 astronauts flew 384400 km to the Moon and came back!",
    "She said: 'I'll be there at 10:30, don't wait for me.'",
    "Tokenizers split text into words, numbers and punctuation before merging bytes.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Le café est très bon, mais le thé est meilleur. Ünïcödé wörks tôo.",
    "Why is the sky blue? Because air scatters short wavelengths more than long ones.",
    "   spaces,\ttabs\tand\n\nnew lines\r\nshould survive    the trip.",
    "Numbers like 12345678 and 3.14159 and 1,000,000 get split into digits.",
]


@dataclass(frozen=True)
class Spec:
    """One tiny model: architecture, shape, tokenizer style and checkpoint layout."""

    architecture: str = "LlamaForCausalLM"
    pre_tokenizer: str = "llama3"  # llama3 | qwen2 | smollm | gpt2
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    head_dim: int | None = None  # None: hidden // heads, not written to config.json
    qkv_bias: bool = False
    tie_embeddings: bool = False
    extra_vocab_rows: int = 0  # embedding rows beyond the tokenizer's tokens
    vocab_size: int = 300  # tokenizer training target
    dtype: str = "F32"  # F32 | F16 | BF16 in the safetensors files
    shards: int = 1
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    add_bos: bool = True
    seed: int = 0
    extra_config: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads


# -- tokenizer ----------------------------------------------------------------------------------

@cache
def train_tokenizer(pre_tokenizer: str, vocab_size: int) -> str:
    """A byte-level BPE tokenizer.json trained on CORPUS with the given pre-tokenizer style."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre_tokenizer in ("llama3", "qwen2"):
        regex = LLAMA3_SPLIT if pre_tokenizer == "llama3" else QWEN2_SPLIT
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False), byte_level])
    elif pre_tokenizer == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre_tokenizer == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        raise ValueError(pre_tokenizer)
    if pre_tokenizer == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  special_tokens=[BOS, EOS, IM_START, IM_END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 3, trainer)
    return tok.to_str()


def tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def _byte_chars() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the character standing for each byte in a token."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def ids_by_bytes(tok: Any) -> dict[bytes, int]:
    """The byte-level tokens of a tokenizer by the bytes they stand for (special tokens left
    out): what a server's `bytes` of a log-probability entry name."""
    chars = _byte_chars()
    added = tok.get_added_tokens_decoder()
    return {bytes(chars[c] for c in text): i
            for text, i in tok.get_vocab(with_added_tokens=False).items() if i not in added}


def _tokenizer_files(spec: Spec) -> tuple[str, dict[str, Any], int]:
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_str(train_tokenizer(spec.pre_tokenizer, spec.vocab_size))
    if spec.add_bos:
        bos = tok.token_to_id(BOS)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A $B:1", special_tokens=[(BOS, bos)])
    config = {"bos_token": BOS if spec.add_bos else None, "eos_token": IM_END,
              "add_bos_token": spec.add_bos, "add_eos_token": False,
              "chat_template": CHAT_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast",
              "model_max_length": 2048}
    return tok.to_str(), config, tok.get_vocab_size(with_added_tokens=True)


# -- weights ------------------------------------------------------------------------------------

def make_weights(spec: Spec, n_vocab: int) -> dict[str, np.ndarray]:
    """Random weights in Hugging Face names, float32 (rounded through the checkpoint's dtype,
    so the reference sees exactly the values the file holds)."""
    rng = np.random.default_rng(spec.seed)
    h, d, ff = spec.hidden, spec.dim, spec.intermediate

    def mat(rows: int, cols: int) -> np.ndarray:
        return rng.normal(0, 1 / math.sqrt(cols), (rows, cols))

    w: dict[str, np.ndarray] = {"model.embed_tokens.weight": rng.normal(0, 0.7, (n_vocab, h))}
    for i in range(spec.layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + rng.normal(0, 0.2, h)
        w[p + "post_attention_layernorm.weight"] = 1 + rng.normal(0, 0.2, h)
        w[p + "self_attn.q_proj.weight"] = mat(spec.heads * d, h) * 2
        w[p + "self_attn.k_proj.weight"] = mat(spec.kv_heads * d, h) * 2
        w[p + "self_attn.v_proj.weight"] = mat(spec.kv_heads * d, h)
        w[p + "self_attn.o_proj.weight"] = mat(h, spec.heads * d)
        if spec.qkv_bias:
            w[p + "self_attn.q_proj.bias"] = rng.normal(0, 0.5, spec.heads * d)
            w[p + "self_attn.k_proj.bias"] = rng.normal(0, 0.5, spec.kv_heads * d)
            w[p + "self_attn.v_proj.bias"] = rng.normal(0, 0.5, spec.kv_heads * d)
        w[p + "mlp.gate_proj.weight"] = mat(ff, h)
        w[p + "mlp.up_proj.weight"] = mat(ff, h)
        w[p + "mlp.down_proj.weight"] = mat(h, ff)
    w["model.norm.weight"] = 1 + rng.normal(0, 0.2, h)
    if not spec.tie_embeddings:
        w["lm_head.weight"] = rng.normal(0, 0.7, (n_vocab, h))
    return {k: _round(v.astype(np.float32), spec.dtype) for k, v in w.items()}


def _round(v: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "F16":
        return v.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        bits = v.view(np.uint32)
        rounded = ((bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        return rounded.astype(np.uint32).view(np.float32)
    return v


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """A safetensors file of float32 values stored as `dtype` (BF16 written as its bits)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name, value in tensors.items():
        if dtype == "BF16":
            data = (value.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            data = value.astype({"F32": "<f4", "F16": "<f2"}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(value.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for data in blobs:
            f.write(data)


def config_json(spec: Spec, n_vocab: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architectures": [spec.architecture],
        "model_type": {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
                       "Qwen2ForCausalLM": "qwen2"}[spec.architecture],
        "hidden_size": spec.hidden, "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers, "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": spec.rope_theta, "hidden_act": "silu",
        "tie_word_embeddings": spec.tie_embeddings, "vocab_size": n_vocab,
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[spec.dtype],
    }
    if spec.head_dim:
        config["head_dim"] = spec.head_dim
    if spec.architecture == "LlamaForCausalLM":
        config["attention_bias"] = spec.qkv_bias
    if spec.rope_scaling:
        config["rope_scaling"] = spec.rope_scaling
    config.update(spec.extra_config)
    return config


def write_model(folder: Path, spec: Spec) -> dict[str, np.ndarray]:
    """Write the Hugging Face folder of `spec`; returns its weights (float32, HF names)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_json, tokenizer_config, n_tokens = _tokenizer_files(spec)
    n_vocab = n_tokens + spec.extra_vocab_rows
    weights = make_weights(spec, n_vocab)
    (folder / "tokenizer.json").write_text(tokenizer_json)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (folder / "config.json").write_text(json.dumps(config_json(spec, n_vocab), indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    names = list(weights)
    if spec.shards == 1:
        write_safetensors(folder / "model.safetensors", weights, spec.dtype)
        return weights
    weight_map = {}
    per_shard = math.ceil(len(names) / spec.shards)
    for i in range(spec.shards):
        file = f"model-{i + 1:05d}-of-{spec.shards:05d}.safetensors"
        part = {n: weights[n] for n in names[i * per_shard:(i + 1) * per_shard]}
        write_safetensors(folder / file, part, spec.dtype)
        weight_map.update(dict.fromkeys(part, file))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": sum(v.nbytes for v in weights.values())},
         "weight_map": weight_map}, indent=2))
    return weights


# -- the reference ------------------------------------------------------------------------------

def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight


def _inv_freq(spec: Spec) -> np.ndarray:
    d = spec.dim
    inv = 1.0 / spec.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    scaling = spec.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        return inv / scaling["factor"]
    if kind == "llama3":  # transformers' _compute_llama3_parameters
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling[
            "high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (original / wavelen - low) / (high - low)
        scaled = np.where(wavelen > original / low, inv / factor, inv)
        medium = (wavelen >= original / high) & (wavelen <= original / low)
        return np.where(medium, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    return inv


def _rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def forward(spec: Spec, weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """Logits (n_tokens × n_vocab, float64) of the model for the token ids `ids`."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    n, d, eps = len(ids), spec.dim, 1e-5
    x = w["model.embed_tokens.weight"][ids]
    angles = np.arange(n)[:, None] * _inv_freq(spec)[None, :]
    cos = np.cos(np.concatenate([angles, angles], -1))[:, None, :]
    sin = np.sin(np.concatenate([angles, angles], -1))[:, None, :]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    group = spec.heads // spec.kv_heads
    for i in range(spec.layers):
        p = f"model.layers.{i}."

        def proj(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
            out = v @ w[p + name + ".weight"].T
            bias = w.get(p + name + ".bias")
            return out if bias is None else out + bias

        h = _rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = _rope(proj(h, "self_attn.q_proj").reshape(n, spec.heads, d), cos, sin)
        k = _rope(proj(h, "self_attn.k_proj").reshape(n, spec.kv_heads, d), cos, sin)
        v = proj(h, "self_attn.v_proj").reshape(n, spec.kv_heads, d)
        k = np.repeat(k, group, axis=1)
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(d) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = np.einsum("hqk,khd->qhd", scores, v).reshape(n, spec.heads * d)
        x = x + proj(ctx, "self_attn.o_proj")
        h = _rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = proj(h, "mlp.gate_proj")
        x = x + proj(gate / (1 + np.exp(-gate)) * proj(h, "mlp.up_proj"), "mlp.down_proj")
    x = _rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
