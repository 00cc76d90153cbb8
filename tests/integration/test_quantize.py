"""Quantize on create (`pollama create -q`, `/api/create` `quantize`) with llama.cpp's quantizer.

The source is SmolLM2-135M written back as F16 (tests/unquantized.py): a real model whose
answers can be compared, and whose width (576) makes llama.cpp fall back from K-quants on most
matrices, as it does for any such model; a tiny random F32 Llama with widths of 256 exercises
K-quants on every matrix. Each quantized model is loaded and asked through the API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import ollama
import pytest
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from pollama.engine.quantize import QuantizeError, quantize_gguf
from pollama.formats import gguf
from tests.helpers import create_from_gguf
from tests.unquantized import f16_smollm2, write_f32_llama

ZERO_DIGEST = "0" * 19
PROMPT = "The history of the Roman Empire"


def store_files(server) -> set[str]:
    return {str(p.relative_to(server.models)) for p in server.models.rglob("*") if p.is_file()}


def model_layer(server, name: str) -> dict:
    tag = name.partition(":")[2] or "latest"
    path = server.models / "manifests/registry.ollama.ai/library" / name.partition(":")[0] / tag
    manifest = json.loads(path.read_text())
    return next(la for la in manifest["layers"]
                if la["mediaType"] == "application/vnd.ollama.image.model")


def blob(server, digest: str) -> Path:
    return server.models / "blobs" / digest.replace(":", "-")


def tensor_bytes(info: gguf.GGUFInfo) -> int:
    total = 0
    for t in info.tensors:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[t["type"]]]
        elements = 1
        for dim in t["shape"]:
            elements *= dim
        total += elements // block * size
    return total


def types_of(info: gguf.GGUFInfo, pattern: str) -> set[str]:
    return {t["type"] for t in info.tensors if re.search(pattern, t["name"])}


def all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def quantizer_children(server) -> list[int]:
    """Live `pollama.engine.quantize` processes writing into this server's store."""
    return [pid for pid in all_pids() if b"pollama.engine.quantize" in cmdline(pid)
            and str(server.models).encode() in cmdline(pid)]


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for: {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def f16_file(tmp_path_factory) -> Path:
    return f16_smollm2(tmp_path_factory.mktemp("f16"))


@pytest.fixture(scope="module")
def f16_model(server, f16_file) -> str:
    create_from_gguf(server, "smol-f16", f16_file)
    return "smol-f16"


@pytest.fixture(scope="module")
def q8_events(server, f16_model) -> list[dict]:
    """`smol-q8` quantized through the official client, with its progress events."""
    events = server.client().create(model="smol-q8", from_=f16_model, quantize="q8_0",
                                    stream=True)
    return [e.model_dump(exclude_none=True) for e in events]


@pytest.fixture(scope="module")
def q4_cli(server, f16_file, tmp_path_factory):
    """`smol-q4` quantized by the CLI from a Modelfile naming the F16 file."""
    folder = tmp_path_factory.mktemp("modelfile")
    (folder / "Modelfile").write_text(f"FROM {f16_file}\n")
    return server.cli("create", "smol-q4", "-q", "q4_K_M", "-f", str(folder / "Modelfile"),
                      timeout=300)


def test_api_quantizes_to_q8_0_with_ollamas_progress(server, f16_model, q8_events):
    source = model_layer(server, f16_model)
    quantizing = [e for e in q8_events if e["status"].startswith("quantizing")]
    assert {e["status"] for e in quantizing} == {"quantizing F16 model to Q8_0"}
    assert len(quantizing) >= 272  # one event per tensor at least
    assert all(e["digest"] == ZERO_DIGEST and e["total"] == source["size"] for e in quantizing)
    completed = [e.get("completed", 0) for e in quantizing]
    assert completed == sorted(completed) and completed[-1] == source["size"]
    new = model_layer(server, "smol-q8")
    after = [e["status"] for e in q8_events[len(quantizing):]]
    assert after[0] == "verifying conversion"
    assert f"creating new layer {new['digest']}" in after
    assert after[-2:] == ["writing manifest", "success"]
    assert "from" not in new  # a new layer, as Ollama's NewLayer makes it

    info = gguf.read(blob(server, new["digest"]))
    assert info.file_type == "Q8_0"
    assert types_of(info, r"\.weight$") == {"Q8_0", "F32"}
    assert {t["type"] for t in info.tensors if len(t["shape"]) > 1 and t["shape"][1] > 1} == \
        {"Q8_0"}
    f16_size, q8_size = source["size"], new["size"]
    header = q8_size - tensor_bytes(info)
    assert 0 < header < 8_000_000  # the file is its tensors and the tokenizer, nothing else
    # 16 bits a weight → 8.5 (32 weights in 34 bytes): 270.9 MB → 144.8 MB, 1.87×.
    assert 1.8 < f16_size / q8_size < 16 / 8.5
    shown = httpx.post(f"{server.url}/api/show", json={"model": "smol-q8"}).json()
    assert shown["details"]["quantization_level"] == "Q8_0"

    # The deprecated `quantization` field does the same (llama.cpp's output is deterministic).
    answer = httpx.post(f"{server.url}/api/create", timeout=300, json={
        "model": "smol-q8-again", "from": f16_model, "quantization": "Q8_0", "stream": False})
    assert answer.json() == {"status": "success"}
    assert model_layer(server, "smol-q8-again")["digest"] == new["digest"]


def test_cli_quantizes_to_q4_K_M(server, f16_file, f16_model, q4_cli):
    assert q4_cli.returncode == 0, q4_cli.stderr
    assert "quantizing F16 model to Q4_K_M" in q4_cli.stderr
    assert "success" in q4_cli.stderr
    shown = server.cli("show", "smol-q4")
    assert re.search(r"quantization\s+Q4_K_M", shown.stdout), shown.stdout
    new = model_layer(server, "smol-q4")
    info = gguf.read(blob(server, new["digest"]))
    assert info.file_type == "Q4_K_M"
    # K blocks where rows allow (ffn_down: rows of 1536); rows of 576 fall back per tensor.
    assert types_of(info, r"ffn_down") == {"Q4_K", "Q6_K"}
    assert types_of(info, r"attn_q|attn_k|attn_output|ffn_gate|ffn_up") == {"Q5_0"}
    assert types_of(info, r"attn_v|token_embd") <= {"Q5_0", "Q8_0"}
    assert 0 < new["size"] - tensor_bytes(info) < 8_000_000
    # 270.9 MB → 105.5 MB (2.57×): only ffn_down and the rest at 5.5-8.5 bits.
    assert 2.4 < model_layer(server, f16_model)["size"] / new["size"] < 3.0
    fell_back = re.search(r"quantized \S+ to Q4_K_M in .*: 272 tensors \((\d+) fell back",
                          server.log())
    assert fell_back and int(fell_back.group(1)) > 0, server.log()[-2000:]
    config = json.loads(blob(server, json.loads(
        (server.models / "manifests/registry.ollama.ai/library/smol-q4/latest").read_text()
    )["config"]["digest"]).read_text())
    assert config["file_type"] == "Q4_K_M"


def next_token_logprobs(server, model: str, prompt: str) -> list[dict]:
    answer = httpx.post(f"{server.url}/api/generate", timeout=120, json={
        "model": model, "prompt": prompt, "raw": True, "stream": False, "logprobs": True,
        "top_logprobs": 20, "options": {"temperature": 0, "num_predict": 1, "seed": 1}}).json()
    return answer["logprobs"][0]["top_logprobs"]


def closeness(server, reference: str, model: str, steps: int = 16) -> tuple[float, float]:
    """Teacher-forced along the reference model's greedy answer: the share of positions where
    `model` picks the same token, and the mean |Δ logprob| of the reference's token."""
    answer = httpx.post(f"{server.url}/api/generate", timeout=120, json={
        "model": reference, "prompt": PROMPT, "raw": True, "stream": False, "logprobs": True,
        "options": {"temperature": 0, "num_predict": steps, "seed": 1}}).json()
    path = answer["logprobs"]
    assert len(path) == steps
    prefixes, text = [], b""
    for step in path:
        prefixes.append(PROMPT + text.decode("utf-8", "replace"))
        text += bytes(step["bytes"])
    tops = [next_token_logprobs(server, model, prompt) for prompt in prefixes]
    same, deltas = 0, []
    for step, top in zip(path, tops, strict=True):
        same += top[0]["token"] == step["token"]
        theirs = {t["token"]: t["logprob"] for t in top}
        deltas.append(abs(theirs.get(step["token"], min(theirs.values())) - step["logprob"]))
    return same / steps, sum(deltas) / steps


def test_quantized_models_answer_close_to_f16(server, f16_model, q8_events, q4_cli):
    assert q4_cli.returncode == 0, q4_cli.stderr
    for model in ("smol-q8", "smol-q4"):
        chat = server.client().chat(model=model, messages=[
            {"role": "user", "content": "Why is the sky blue?"}],
            options={"temperature": 0, "num_predict": 16})
        assert chat.message.content.strip() and chat.eval_count == 16
    # Measured on SmolLM2-135M (2 cores, 16 positions): q8_0 ~0.88 of positions agree, mean
    # |Δ logprob| ~0.04; q4_K_M ~0.8, ~0.17. A 135M model has near-ties (0.1 apart), so
    # agreement is coarse; the logprob difference is the measure.
    q8_same, q8_delta = closeness(server, f16_model, "smol-q8")
    q4_same, q4_delta = closeness(server, f16_model, "smol-q4")
    print(f"q8_0: {q8_same:.2f} of positions agree, mean |Δ logprob| {q8_delta:.3f}; "
          f"q4_K_M: {q4_same:.2f}, {q4_delta:.3f}")
    assert q8_same >= 0.75 and q8_delta <= 0.1
    assert q4_same >= 0.6 and q4_delta <= 0.5
    assert q8_delta < q4_delta


def test_f32_model_gets_k_quants_on_every_matrix(server, tmp_path):
    source = write_f32_llama(tmp_path / "tiny-f32.gguf")
    client = server.client()
    digest = client.create_blob(source)
    events = [e.model_dump(exclude_none=True) for e in client.create(
        model="tiny-q4", files={source.name: digest}, quantize="Q4_K_M", stream=True)]
    statuses = [e["status"] for e in events]
    assert statuses[0] == "parsing GGUF"
    assert "quantizing F32 model to Q4_K_M" in statuses
    new = model_layer(server, "tiny-q4")
    info = gguf.read(blob(server, new["digest"]))
    two_d = {t["type"] for t in info.tensors if len(t["shape"]) > 1 and t["shape"][1] > 1}
    assert two_d == {"Q4_K", "Q6_K"}  # no fallback: every row is a multiple of 256
    assert re.search(r"to Q4_K_M in .*: 20 tensors \(0 fell back", server.log())
    # 32 bits a weight → 4.5 (Q4_K) or 6.56 (Q6_K: the tied token embeddings, most of this
    # model): 53.0 MiB of tensors → 10.6 MiB, 5.0× (4.45× for the files, tokenizer included).
    ratio = tensor_bytes(gguf.read(source)) / tensor_bytes(info)
    assert 32 / 6.5625 <= ratio < 32 / 4.5, ratio
    shown = httpx.post(f"{server.url}/api/show", json={"model": "tiny-q4"}).json()
    assert shown["details"]["quantization_level"] == "Q4_K_M"
    answer = client.generate(model="tiny-q4", prompt="hello", raw=True,
                             options={"num_predict": 4, "temperature": 0})
    assert answer.eval_count == 4


def test_same_type_keeps_the_model(server, f16_model):
    events = [e.model_dump(exclude_none=True) for e in server.client().create(
        model="smol-f16-copy", from_=f16_model, quantize="f16", stream=True)]
    assert not any(e["status"].startswith("quantizing") for e in events)
    assert model_layer(server, "smol-f16-copy")["digest"] == \
        model_layer(server, f16_model)["digest"]


@pytest.mark.parametrize(("source", "quantize", "status", "error"), [
    ("smol-f16", "q5_K_M", 400,
     "unsupported quantization type Q5_K_M - supported types are F32, F16, Q4_K_S, Q4_K_M, "
     "Q8_0"),
    ("smol-f16", "q4_0", 400,
     "unsupported quantization type Q4_0 - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"),
    ("smollm2:135m", "q8_0", 400, "quantization is only supported for F16, BF16 and F32 models"),
    ("smol-q8", "q8_0", 400, "quantization is only supported for F16, BF16 and F32 models"),
])
def test_bad_quantize_writes_nothing(server, smol, f16_model, q8_events, source, quantize,
                                     status, error):
    before = store_files(server)
    with pytest.raises(ollama.ResponseError) as err:
        server.client().create(model="refused", from_=source, quantize=quantize)
    assert err.value.status_code == status
    assert err.value.error == error
    assert store_files(server) == before


def test_client_gone_stops_the_quantizer(server, f16_model):
    before = store_files(server)
    finished = len(re.findall(r"quantized \S+ to Q4_K_M in", server.log()))
    body = {"model": "smol-cancelled", "from": f16_model, "quantize": "q4_K_M"}
    with httpx.stream("POST", f"{server.url}/api/create", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if json.loads(line)["status"].startswith("quantizing"):
                assert quantizer_children(server)
                break  # leaving the block closes the connection mid-quantization
    wait_until(lambda: not quantizer_children(server), "the quantizer child to end")
    wait_until(lambda: store_files(server) == before, "the temp output to go")
    assert not list((server.models / "blobs").glob("sha256-tmp-*"))
    assert not (server.models / "manifests/registry.ollama.ai/library/smol-cancelled").exists()
    assert len(re.findall(r"quantized \S+ to Q4_K_M in", server.log())) == finished


def test_quantizer_crash_is_an_error_not_a_dead_server(server, f16_model):
    before = store_files(server)
    body = {"model": "smol-crashed", "from": f16_model, "quantize": "q4_K_M"}
    lines = []
    with httpx.stream("POST", f"{server.url}/api/create", json=body, timeout=120) as response:
        assert response.status_code == 200
        killed = False
        for line in response.iter_lines():
            event = json.loads(line)
            lines.append(event)
            if not killed and event.get("status", "").startswith("quantizing"):
                children = quantizer_children(server)
                assert children
                for pid in children:
                    os.kill(pid, signal.SIGSEGV)  # as if llama.cpp had crashed
                killed = True
    assert lines[-1] == {"error": "llama-quantize failed: signal 11 (SIGSEGV, segmentation "
                                  "fault)"}
    assert httpx.get(f"{server.url}/api/version").status_code == 200
    assert store_files(server) == before


def test_engine_refuses_a_quantized_source_with_llama_cpps_reason(smollm2_path, tmp_path):
    output = tmp_path / "out.gguf"
    with pytest.raises(QuantizeError) as err:
        quantize_gguf(Path(smollm2_path), output, "Q4_K_M", lambda _step: None)
    assert str(err.value) == "llama-quantize failed: requantizing from type q4_1 is disabled"
    assert not output.exists()


def test_quantizer_stops_when_its_parent_dies(tmp_path, f16_file):
    """A server killed mid-quantization: its child ends and removes the unfinished output."""
    output = tmp_path / "orphan.gguf"
    script = ("import sys; from pathlib import Path; from pollama.engine.quantize import "
              "quantize_gguf; quantize_gguf(Path(sys.argv[1]), Path(sys.argv[2]), 'Q4_K_M', "
              "lambda step: print(step.done, flush=True))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", script, str(f16_file), str(output)],
                              stdout=subprocess.PIPE, env=env)
    assert parent.stdout is not None
    parent.stdout.readline()  # the first tensor is written
    children = [pid for pid in all_pids() if str(output).encode() in cmdline(pid)
                and pid != parent.pid]
    assert children and output.exists()
    parent.kill()
    parent.wait()
    wait_until(lambda: not any(str(output).encode() in cmdline(pid) for pid in children),
               "the orphaned quantizer to end")
    assert not output.exists()
