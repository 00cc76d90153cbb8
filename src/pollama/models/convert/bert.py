"""BERT encoders (`BertModel`, e.g. all-MiniLM-L6-v2) as llama.cpp's `bert` architecture.

An embedding model: non-causal attention and the sentence-transformers pooling its
`modules.json` names (mean, CLS or last token; mean when the folder has no modules.json, the
sentence-transformers default). The pooler and masked-LM heads are left out, as llama.cpp's
converter does: only the encoder's output is pooled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf

from pollama.errors import ConversionError
from pollama.models.convert.checkpoint import Checkpoint, in_gguf_order, read_json
from pollama.models.convert.tokenizer import wordpiece_vocabulary
from pollama.models.convert.writer import FILE_TYPES, OutputTensor

_SKIPPED = ("embeddings.position_ids", "pooler.", "cls.")
_MODULES = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize"}
_POOLING_MODES = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS,
                  "lasttoken": gguf.PoolingType.LAST}
_GELU = ("gelu", "gelu_new", "gelu_pytorch_tanh")


def _safe_subpath(path: str) -> bool:
    return bool(path) and not path.startswith("/") and all(
        part not in ("", ".", "..") for part in path.split("/"))


def pooling_type(folder: Path) -> gguf.PoolingType:
    """The pooling of a sentence-transformers folder (`modules.json` → `<path>/config.json`)."""
    if not (folder / "modules.json").is_file():
        return gguf.PoolingType.MEAN
    modules = read_json(folder, "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ConversionError("modules.json is not a list of sentence-transformers modules")
    pooling_path: str | None = None
    for module in modules:
        kind = str(module.get("type"))
        if kind not in _MODULES:
            raise ConversionError(f'modules.json: the sentence-transformers module "{kind}" '
                                  "cannot be converted (llama.cpp pools and normalises, "
                                  "nothing more)")
        if kind.endswith("Pooling"):
            pooling_path = str(module.get("path") or "")
    if pooling_path is None:
        return gguf.PoolingType.MEAN
    if not _safe_subpath(pooling_path):
        raise ConversionError(f'modules.json: invalid pooling path "{pooling_path}"')
    name = f"{pooling_path}/config.json"
    config: Any = read_json(folder, name)
    if not isinstance(config, dict):
        raise ConversionError(f"{name} is not a JSON object")
    if config.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if config.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    if config.get("pooling_mode_lasttoken"):
        return gguf.PoolingType.LAST
    if (mode := config.get("pooling_mode")) in _POOLING_MODES:
        return _POOLING_MODES[mode]
    raise ConversionError(f"{name}: only mean, CLS and last-token pooling can be converted")


def _gguf_name(names: gguf.TensorNameMap, name: str) -> str | None:
    name = name.removeprefix("bert.")
    if name.startswith(_SKIPPED) or name == "embeddings.position_ids":
        return None
    base, _, kind = name.rpartition(".")
    kind = {"gamma": "weight", "beta": "bias"}.get(kind, kind)
    mapped = names.get_name(base)
    if mapped is None:
        raise ConversionError(f'tensor "{name}" has no place in a BERT model')
    return f"{mapped}.{kind}"


def convert(ckpt: Checkpoint) -> tuple[gguf.GGUFWriter, list[OutputTensor]]:
    config = ckpt.config
    if (act := config.get("hidden_act", "gelu")) not in _GELU:
        raise ConversionError(f'config.json: hidden_act "{act}" cannot be converted; a BERT '
                              "model converts with GELU")
    if (position := config.get("position_embedding_type", "absolute")) != "absolute":
        raise ConversionError(f'config.json: position_embedding_type "{position}" cannot be '
                              'converted; a BERT model converts with "absolute"')
    n_layer = ckpt.integer("num_hidden_layers")
    hidden = ckpt.integer("hidden_size")
    n_head = ckpt.integer("num_attention_heads")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)

    tensors: list[OutputTensor] = []
    for name, source in ckpt.tensors.items():
        mapped = _gguf_name(names, name)
        if mapped is not None:
            tensors.append(OutputTensor(mapped, source.shape,
                                        ckpt.tensor_type(mapped, len(source.shape)), source))
    tensors = in_gguf_order(tensors)
    embedding = next((t for t in tensors if t.name == "token_embd.weight"), None)
    if embedding is None or len(embedding.shape) != 2 or embedding.shape[1] != hidden:
        raise ConversionError('tensor "embeddings.word_embeddings.weight" is missing or not '
                              "[vocab_size, hidden_size]")
    vocab = wordpiece_vocabulary(ckpt.folder, embedding.shape[0])

    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_context_length(ckpt.integer("max_position_embeddings"))
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ckpt.integer("intermediate_size"))
    writer.add_block_count(n_layer)
    writer.add_head_count(n_head)
    writer.add_layer_norm_eps(ckpt.number("layer_norm_eps", default=1e-12))
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling_type(ckpt.folder))
    writer.add_file_type(FILE_TYPES[ckpt.matrix_type])
    writer.add_token_type_count(ckpt.integer("type_vocab_size", default=1))
    vocab.add_to(writer)
    return writer, tensors
