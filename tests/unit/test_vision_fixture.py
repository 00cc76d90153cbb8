"""The tiny random-weight vision model of tests/vision.py: llama.cpp's mtmd loads the pair, an
image in a prompt becomes one image chunk of IMAGE_TOKENS positions, and the projector encodes
it into embeddings as wide as the text model's."""

from __future__ import annotations

import ctypes
import zlib

import numpy as np
import pytest

from pollama.formats import gguf as pgguf
from tests.vision import IMAGE_TOKENS, TEXT_EMBD, png_bytes, solid_png, write_vision_model


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_vision_model(tmp_path_factory.mktemp("vision"))


def test_png_helper_writes_valid_pngs():
    png = solid_png((255, 0, 0))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # IHDR: 32×32, 8-bit RGB; IDAT inflates to 32 rows of filter byte + 96 bytes.
    assert png[16:24] == (32).to_bytes(4, "big") * 2
    start = png.index(b"IDAT") + 4
    length = int.from_bytes(png[start - 8:start - 4], "big")
    raw = zlib.decompress(png[start:start + length])
    assert raw == (b"\x00" + bytes([255, 0, 0]) * 32) * 32
    assert png_bytes(np.zeros((2, 3, 3), dtype=np.uint8)) != solid_png((0, 0, 0), size=2)


def test_the_pair_has_what_mtmd_requires(pair):
    text, projector = pair
    t, p = pgguf.read(text), pgguf.read(projector)
    assert t.kv["general.architecture"] == "llama"
    assert t.kv["llama.embedding_length"] == TEXT_EMBD
    assert "<|im_start|>" in t.kv["tokenizer.chat_template"]
    assert p.kv["general.architecture"] == "clip"
    assert p.kv["clip.projector_type"] == "mlp"
    assert p.kv["clip.vision.feed_forward_length"] != p.kv["clip.vision.embedding_length"]
    assert len(p.kv["clip.vision.image_mean"]) == len(p.kv["clip.vision.image_std"]) == 3
    mm2 = next(x for x in p.tensors if x["name"] == "mm.2.weight")
    assert list(mm2["shape"])[1] == TEXT_EMBD  # ggml order: [in, out]


def test_mtmd_loads_the_pair_and_encodes_an_image(pair):
    from llama_cpp import llama_cpp as C
    from llama_cpp import mtmd_cpp as M

    text, projector = pair
    C.llama_backend_init()
    model = C.llama_model_load_from_file(str(text).encode(), C.llama_model_default_params())
    assert model
    params = M.mtmd_context_params_default()
    params.use_gpu = False
    params.n_threads = 1
    ctx = M.mtmd_init_from_file(str(projector).encode(), model, params)
    try:
        assert ctx and M.mtmd_support_vision(ctx)
        png = solid_png((0, 0, 255))
        buf = (ctypes.c_uint8 * len(png)).from_buffer_copy(png)
        bitmap = M.mtmd_helper_bitmap_init_from_buf(ctx, buf, len(png), False)
        assert bitmap and M.mtmd_bitmap_get_nx(bitmap) == 32
        prompt = b"<|im_start|>user\n" + M.mtmd_default_marker() + b"What is it?<|im_end|>\n"
        text_in = M.mtmd_input_text(prompt, len(prompt), True, True)
        chunks = M.mtmd_input_chunks_init()
        bitmaps = (M.mtmd_bitmap_p_ctypes * 1)(bitmap)
        assert M.mtmd_tokenize(ctx, chunks, ctypes.byref(text_in), bitmaps, 1) == 0
        kinds = [M.mtmd_input_chunk_get_type(M.mtmd_input_chunks_get(chunks, i))
                 for i in range(M.mtmd_input_chunks_size(chunks))]
        assert kinds == [M.MTMD_INPUT_CHUNK_TYPE_TEXT, M.MTMD_INPUT_CHUNK_TYPE_IMAGE,
                         M.MTMD_INPUT_CHUNK_TYPE_TEXT]
        image = M.mtmd_input_chunks_get(chunks, 1)
        assert M.mtmd_input_chunk_get_n_tokens(image) == IMAGE_TOKENS
        assert M.mtmd_encode_chunk(ctx, image) == 0
        embd = np.ctypeslib.as_array(M.mtmd_get_output_embd(ctx), shape=(IMAGE_TOKENS, TEXT_EMBD))
        assert np.isfinite(embd).all() and embd.std() > 0
        M.mtmd_input_chunks_free(chunks)
        M.mtmd_bitmap_free(bitmap)
    finally:
        if ctx:
            M.mtmd_free(ctx)
        C.llama_model_free(model)
