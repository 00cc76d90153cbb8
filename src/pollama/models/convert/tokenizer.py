"""A Hugging Face `tokenizer.json` as GGUF `tokenizer.*` keys llama.cpp tokenizes with.

Two kinds convert: byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM: llama.cpp's "gpt2" model) and
WordPiece (BERT: llama.cpp's "bert" model, tokens in its "phantom space" form). `tokenizers`
loads the file (so a broken one is refused, not half-read) and gives the vocabulary with its
added tokens; gguf's `SpecialVocab` reads merges, special token ids, `add_*_token` flags and the
chat template from the folder as llama.cpp's own converter does.

llama.cpp does not run the file's pre-tokenizer: it picks a built-in one by name
(`tokenizer.ggml.pre`). The name is chosen from the pre-tokenizer's structure and regex; one that
matches none of the known forms is refused, since a model that splits text differently from how
it was trained answers worse without saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
from tokenizers import Tokenizer

from pollama.errors import ConversionError

# The Split regexes of the known byte-level BPE pre-tokenizers, by llama.cpp's name for them.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_SPLIT_PRE = {_LLAMA3_SPLIT: "llama-bpe", _QWEN2_SPLIT: "qwen2"}

# The special tokens gguf 0.19's writer has keys for (it has none for "cls").
_SPECIAL_TOKENS = ("bos", "eos", "unk", "sep", "pad", "mask")
_NORMALIZER = "tokenizer.ggml.normalizer"  # keys llama.cpp reads; gguf 0.19 has no constants
SUPPORTED_TOKENIZERS = ("byte-level BPE (GPT-2, Llama 3, Qwen2 and SmolLM pre-tokenizers) and "
                        "WordPiece (BERT)")


@dataclass
class Vocabulary:
    """What goes under `tokenizer.*` in the GGUF."""

    model: str  # llama.cpp's tokenizer model: "gpt2" or "bert"
    pre: str
    tokens: list[str]
    types: list[int]
    special: gguf.SpecialVocab
    # BertNormalizer's options: llama.cpp lowercases and strips accents unless told otherwise.
    lowercase: bool | None = None
    strip_accents: bool | None = None

    def add_to(self, writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_types(self.types)
        self.special.add_to_gguf(writer, quiet=True)
        if self.lowercase is not None:
            writer.add_bool(f"{_NORMALIZER}.lowercase", self.lowercase)
        if self.strip_accents is not None:
            writer.add_bool(f"{_NORMALIZER}.strip_accents", self.strip_accents)


def _load(folder: Path) -> tuple[dict[str, Any], Tokenizer]:
    path = folder / "tokenizer.json"
    if not path.is_file():
        if (folder / "tokenizer.model").is_file():
            raise ConversionError("tokenizer.json not found: a SentencePiece tokenizer.model "
                                  "alone cannot be converted; add the model's tokenizer.json")
        raise ConversionError("tokenizer.json not found: the model folder needs the "
                              "tokenizer.json of its Hugging Face tokenizer")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise ValueError("no tokenizer model")
    except ValueError as err:
        raise ConversionError(f"tokenizer.json is not a Hugging Face tokenizer: {err}") from None
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as err:  # the Rust loader's error, whatever the cause
        raise ConversionError(f"tokenizer.json cannot be loaded: {err}") from None
    return data, tokenizer


def _looks_special(token: str) -> bool:
    # llama.cpp's converter marks these control tokens even when the file does not.
    return token.startswith("<|") and token.endswith("|>")


def _tokens(tokenizer: Tokenizer, n_vocab: int) -> tuple[list[str], list[int]]:
    """Tokens in id order with their GGUF types; ids the tokenizer lacks up to `n_vocab` (the
    embedding's rows) become unused `[PAD<id>]` tokens, as llama.cpp's converter writes them."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    added = tokenizer.get_added_tokens_decoder()
    if vocab and max(vocab.values()) >= n_vocab:
        raise ConversionError(f"tokenizer.json has token ids up to {max(vocab.values())} but "
                              f"the model's embedding has only {n_vocab} rows")
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [int(gguf.TokenType.UNUSED)] * n_vocab
    for text, i in vocab.items():
        tokens[i] = text
        if i in added:
            special = added[i].special or _looks_special(text)
            types[i] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            types[i] = int(gguf.TokenType.NORMAL)
    return tokens, types


def _special_vocab(folder: Path, n_vocab: int, merges: bool) -> gguf.SpecialVocab:
    try:
        return gguf.SpecialVocab(folder, load_merges=merges, n_vocab=n_vocab,
                                 special_token_types=_SPECIAL_TOKENS)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ConversionError(f"tokenizer_config.json or tokenizer.json: {err}") from None


def _pre_tokenizer_parts(data: dict[str, Any]) -> list[dict[str, Any]]:
    pre = data.get("pre_tokenizer")
    if not pre:
        return []
    if pre.get("type") == "Sequence":
        return list(pre.get("pretokenizers") or [])
    return [pre]


def bpe_pre_tokenizer(data: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer of a byte-level BPE tokenizer.json."""
    parts = _pre_tokenizer_parts(data)
    kinds = [p.get("type") for p in parts]
    byte_level = parts[-1] if kinds and kinds[-1] == "ByteLevel" else None
    if byte_level is not None and byte_level.get("add_prefix_space"):
        raise ConversionError("tokenizer.json: a ByteLevel pre-tokenizer with add_prefix_space "
                              "cannot be converted (llama.cpp adds no prefix space)")
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if (kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits")
            and parts[1].get("use_regex", True)):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        regex = (parts[0].get("pattern") or {}).get("Regex")
        if regex in _SPLIT_PRE:
            return _SPLIT_PRE[regex]
    described = json.dumps(data.get("pre_tokenizer"))
    if len(described) > 300:
        described = described[:300] + "..."
    raise ConversionError(f"tokenizer.json: unsupported pre-tokenizer {described}; supported: "
                          f"{SUPPORTED_TOKENIZERS}")


def bpe_vocabulary(folder: Path, n_vocab: int) -> Vocabulary:
    """A byte-level BPE tokenizer (llama.cpp model "gpt2") with its merges."""
    data, tokenizer = _load(folder)
    model = data["model"]
    decoder = data.get("decoder") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder.get("type") != \
            "ByteLevel":
        kind = str(model.get("type"))
        if model.get("byte_fallback"):
            kind += " with byte fallback (SentencePiece style)"
        raise ConversionError(f"tokenizer.json holds a {kind} tokenizer; a decoder model "
                              f"converts with a {SUPPORTED_TOKENIZERS.split(' and ')[0]}")
    normalizer = data.get("normalizer")
    if normalizer and normalizer.get("type") != "NFC":
        raise ConversionError(f"tokenizer.json: the {normalizer.get('type')} normalizer cannot "
                              "be converted (llama.cpp's byte-level BPE does not run it)")
    pre = bpe_pre_tokenizer(data)
    tokens, types = _tokens(tokenizer, n_vocab)
    special = _special_vocab(folder, n_vocab, merges=True)
    if not special.merges:
        raise ConversionError("tokenizer.json: a BPE tokenizer without merges")
    return Vocabulary("gpt2", pre, tokens, types, special)


def wordpiece_vocabulary(folder: Path, n_vocab: int) -> Vocabulary:
    """A BERT WordPiece tokenizer (llama.cpp model "bert"): a word start gets U+2581, a `##`
    continuation loses its `##`, control tokens stay as they are."""
    data, tokenizer = _load(folder)
    if data["model"].get("type") != "WordPiece":
        raise ConversionError(f"tokenizer.json holds a {data['model'].get('type')} tokenizer; "
                              "a BERT model converts with its WordPiece tokenizer")
    tokens, types = _tokens(tokenizer, n_vocab)
    control = int(gguf.TokenType.CONTROL)
    for i, (text, kind) in enumerate(zip(tokens, types, strict=True)):
        if kind == control:
            continue
        tokens[i] = text[2:] if text.startswith("##") else "\u2581" + text
    normalizer = data.get("normalizer") or {}
    if normalizer.get("type") not in (None, "BertNormalizer"):
        raise ConversionError(f"tokenizer.json: the {normalizer.get('type')} normalizer cannot "
                              "be converted; a BERT model converts with its BertNormalizer")
    lowercase = normalizer.get("lowercase", True) is not False
    strip_accents = normalizer.get("strip_accents")
    return Vocabulary("bert", "default", tokens, types,
                      _special_vocab(folder, n_vocab, merges=False),
                      lowercase=lowercase,
                      strip_accents=lowercase if strip_accents is None else bool(strip_accents))
