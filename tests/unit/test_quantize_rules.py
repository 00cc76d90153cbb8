"""Quantize on create: which types are accepted, which sources, and the store's commit of a
quantizer's output (the quantizer itself runs in tests/integration/test_quantize.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf as gguf_py
import numpy as np
import pytest

from pollama.errors import BadRequest, StorageError
from pollama.formats import gguf
from pollama.models.quantize import needs_quantizing, requested_type, source_type
from pollama.store import Store

UNSUPPORTED = "supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"


@pytest.mark.parametrize(("request_", "expected"), [
    ({"quantize": "q4_K_M"}, "Q4_K_M"),
    ({"quantize": "q4_k"}, "Q4_K"),
    ({"quantization": "q8_0"}, "Q8_0"),  # the older field
    ({"quantize": "bf16", "quantization": "q8_0"}, "BF16"),
    ({"quantize": "f32"}, "F32"),
    ({"quantize": "Q4_K_S"}, "Q4_K_S"),
    ({}, ""),
])
def test_accepted_types(request_, expected):
    assert requested_type(request_) == expected


@pytest.mark.parametrize("quantize", ["q4_0", "Q5_K_M", "q6_K", "iq4_xs", "fp16", "COPY"])
def test_unknown_types_are_ollamas_error(quantize):
    with pytest.raises(BadRequest) as err:
        requested_type({"quantize": quantize})
    assert str(err.value) == f"unsupported quantization type {quantize.upper()} - {UNSUPPORTED}"


def write(path: Path, file_type: int | None) -> gguf.GGUFInfo:
    writer = gguf_py.GGUFWriter(str(path), "llama")
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tensor("w.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return gguf.read(path)


@pytest.mark.parametrize(("file_type", "source", "quantize", "needed"), [
    (1, "F16", "Q4_K_M", True),
    (1, "F16", "F16", False),  # already the asked type: kept as it is
    (32, "BF16", "Q4_K", True),
    (0, "F32", "Q8_0", True),  # general.file_type 0: F32 (Ollama reads it as unknown)
    (0, "F32", "F32", False),
    (1, "F16", "F32", True),
])
def test_unquantized_sources(tmp_path, file_type, source, quantize, needed):
    info = write(tmp_path / "m.gguf", file_type)
    assert source_type(info) == source
    assert needs_quantizing(info, quantize) is needed


@pytest.mark.parametrize(("file_type", "quantize"), [
    (7, "Q8_0"),  # Q8_0 → Q8_0: Ollama's error too, not a no-op
    (15, "Q4_K_M"), (3, "Q8_0"), (None, "Q8_0"),  # no general.file_type: unknown
])
def test_quantized_or_unknown_sources_are_refused(tmp_path, file_type, quantize):
    info = write(tmp_path / "m.gguf", file_type)
    with pytest.raises(BadRequest) as err:
        needs_quantizing(info, quantize)
    assert str(err.value) == "quantization is only supported for F16, BF16 and F32 models"


def test_commit_file_names_the_blob_by_its_digest(tmp_path):
    store = Store(tmp_path)
    temp = store.blobs.temp_path()
    temp.write_bytes(b"quantized bytes")
    digest, size, created = store.blobs.commit_file(temp)
    assert digest == "sha256:" + hashlib.sha256(b"quantized bytes").hexdigest()
    assert (size, created) == (15, True)
    assert store.blobs.read_bytes(digest) == b"quantized bytes" and not temp.exists()
    again = store.blobs.temp_path()
    again.write_bytes(b"quantized bytes")
    assert store.blobs.commit_file(again) == (digest, 15, False)
    assert not again.exists()


def test_commit_file_stopped_or_failed_leaves_nothing(tmp_path):
    store = Store(tmp_path)
    temp = store.blobs.temp_path()
    temp.write_bytes(b"x" * (1 << 20))

    def stop(_n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.blobs.commit_file(temp, on_chunk=stop)
    assert list(store.blobs.root.iterdir()) == []
    with pytest.raises(StorageError):
        store.blobs.commit_file(store.blobs.temp_path())  # never written
    with pytest.raises(ValueError):
        store.blobs.commit_file(tmp_path / "elsewhere")


def test_quantize_without_gguf_weights_is_refused_not_ignored(tmp_path):
    from pollama.models.create import create_model
    from pollama.names import parse
    from pollama.store.manifest import MEDIA_CONFIG, MEDIA_MODEL, Layer, Manifest

    store = Store(tmp_path)
    weights, size, _ = store.blobs.write_bytes(b"not a gguf file")
    config, config_size, _ = store.blobs.write_bytes(b"{}")
    store.manifests.write(parse("base"), Manifest(Layer(MEDIA_CONFIG, config, config_size),
                                                  [Layer(MEDIA_MODEL, weights, size)]))
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    events: list[dict] = []
    with pytest.raises(BadRequest) as err:
        create_model(store, {"model": "x", "from": "base", "quantize": "q8_0"}, events.append)
    assert str(err.value) == "cannot quantize: the model has no GGUF weights"
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before
