"""Engine settings act, and a runner that dies says why: real servers, the real model.

- OLLAMA_REPACK / the CPU probe decide the extra buffer types (AMX, repacks) per machine;
- OLLAMA_FLASH_ATTENTION and OLLAMA_KV_CACHE_TYPE reach the context (`/api/ps` size, the log);
- a runner killed by a signal is reported with the signal's name in the API error and the log;
- DRAFT (speculative decoding) is refused, never silently dropped;
- answers cannot run away: loops of short sequences end, num_predict -2 fills the context.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from pollama.engine.cpu_probe import CACHE_FILE
from tests.helpers import Server, create_from_gguf

PROMPT = "The capital of France is"
GREEDY = {"temperature": 0, "num_predict": 12, "seed": 1}


def runner_pids(server: Server) -> list[int]:
    """The server's runner processes (children running pollama.engine.runner)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server.process.pid and b"pollama.engine.runner" in cmdline:
            pids.append(int(entry.name))
    return pids


def runner_cmdline(server: Server) -> list[str]:
    (pid,) = runner_pids(server)
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def generate(server: Server, model: str, **body) -> httpx.Response:
    body = {"model": model, "prompt": PROMPT, "raw": True, "stream": False, "options": GREEDY,
            **body}
    return httpx.post(f"{server.url}/api/generate", json=body, timeout=300)


def started_server(env: dict[str, str], smollm2_path: Path, name: str = "smollm2:135m"):
    # Runners that sleep rather than spin at OpenMP barriers: a loaded CI machine slows the
    # few hundred tokens of the loop test instead of stalling them (see test_structured).
    server = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE", **env}).start()
    create_from_gguf(server, name, smollm2_path)
    return server


@pytest.fixture(scope="module")
def f16_server(smollm2_path):
    server = started_server({}, smollm2_path)
    yield server
    server.cleanup()


# -- extra buffer types ------------------------------------------------------------------------


def test_the_probe_decides_once_and_is_logged(f16_server, smollm2_path) -> None:
    answer = generate(f16_server, "smollm2:135m")
    assert answer.status_code == 200, answer.text
    assert "Paris" in answer.json()["response"]
    log = f16_server.log()
    assert "weights repack (extra buffer types): " in log
    saved = json.loads((f16_server.home / ".ollama" / CACHE_FILE).read_text())
    (verdict,) = saved.values()
    repack = "--no-repack" not in runner_cmdline(f16_server)
    assert repack is verdict["repack"]
    assert f"repack={'on' if repack else 'off'}" in log


def test_ollama_repack_off_loads_without_extra_buffer_types(smollm2_path) -> None:
    server = started_server({"OLLAMA_REPACK": "0"}, smollm2_path)
    try:
        answer = generate(server, "smollm2:135m")
        assert answer.status_code == 200, answer.text
        assert "Paris" in answer.json()["response"]
        assert "--no-repack" in runner_cmdline(server)
        assert "weights repack (extra buffer types): off: OLLAMA_REPACK=0" in server.log()
        assert not (server.home / ".ollama" / CACHE_FILE).exists()  # no probe was run
    finally:
        server.cleanup()


def test_forcing_repack_where_the_probe_said_off_fails_with_the_signal(f16_server,
                                                                       smollm2_path) -> None:
    """Where this CPU faults on the extra buffer types (an AMX VM), forcing them shows what a
    user gets without the probe: a clear error naming the signal, and a server that lives."""
    generate(f16_server, "smollm2:135m")
    saved = json.loads((f16_server.home / ".ollama" / CACHE_FILE).read_text())
    if next(iter(saved.values()))["repack"]:
        pytest.skip("this CPU runs llama.cpp's extra buffer types")
    server = started_server({"OLLAMA_REPACK": "1"}, smollm2_path)
    try:
        answer = generate(server, "smollm2:135m")
        assert answer.status_code == 500
        error = answer.json()["error"]
        assert error.startswith("llama runner process has terminated: signal ")
        assert "(SIGILL, illegal instruction)" in error or "(SIGSEGV, segmentation fault)" in error
        assert httpx.get(f"{server.url}/api/version").status_code == 200
    finally:
        server.cleanup()


# -- a runner that dies ------------------------------------------------------------------------


def test_a_runner_killed_by_sigill_mid_stream_names_the_signal(f16_server) -> None:
    generate(f16_server, "smollm2:135m")  # loaded
    body = {"model": "smollm2:135m", "prompt": "Tell me a long story about a dragon.",
            "options": {"temperature": 1, "seed": 3, "num_predict": 100000}}
    lines = []
    with httpx.stream("POST", f"{f16_server.url}/api/generate", json=body, timeout=300) as r:
        assert r.status_code == 200
        chunks = r.iter_lines()
        lines.append(json.loads(next(chunks)))
        (pid,) = runner_pids(f16_server)
        os.kill(pid, signal.SIGILL)
        lines += [json.loads(line) for line in chunks if line]
    error = lines[-1]["error"]
    assert error.startswith("model runner has unexpectedly stopped, this may be due to resource"
                            " limitations or an internal error, check ollama server logs for "
                            "details: llama runner process has terminated: signal 4 (SIGILL, "
                            "illegal instruction)")
    deadline = time.monotonic() + 30
    while "has terminated: signal 4 (SIGILL" not in f16_server.log():
        assert time.monotonic() < deadline, f16_server.log()[-3000:]
        time.sleep(0.1)
    assert "its last output:" in f16_server.log()
    # The next request loads a fresh runner.
    answer = generate(f16_server, "smollm2:135m")
    assert answer.status_code == 200 and "Paris" in answer.json()["response"]


def test_a_runner_killed_during_a_non_streaming_request_answers_500(f16_server) -> None:
    generate(f16_server, "smollm2:135m")
    (pid,) = runner_pids(f16_server)
    result: dict[str, httpx.Response] = {}
    body = {"model": "smollm2:135m", "prompt": "Tell me a long story about a dragon.",
            "stream": False, "options": {"temperature": 1, "seed": 3, "num_predict": 100000}}
    thread = threading.Thread(target=lambda: result.setdefault("r", httpx.post(
        f"{f16_server.url}/api/generate", json=body, timeout=300)))

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = cpu_ticks()
    thread.start()
    deadline = time.monotonic() + 60
    while cpu_ticks() < before + 20:  # the runner is generating this request
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(pid, signal.SIGSEGV)
    thread.join(120)
    answer = result["r"]
    assert answer.status_code == 500
    assert "llama runner process has terminated: signal 11 (SIGSEGV, segmentation fault)" in \
        answer.json()["error"]


# -- flash attention and the KV cache type -----------------------------------------------------


def kv_bytes(server: Server, model_size: int) -> int:
    (entry,) = httpx.get(f"{server.url}/api/ps").json()["models"]
    return entry["size"] - model_size


@pytest.mark.parametrize(("env", "expect_fa", "cache", "per_element"), [
    ({"OLLAMA_KV_CACHE_TYPE": "q8_0"}, "on", "q8_0", 34 / 32),
    ({"OLLAMA_KV_CACHE_TYPE": "q4_0", "OLLAMA_FLASH_ATTENTION": "1"}, "on", "q4_0", 18 / 32),
    ({"OLLAMA_FLASH_ATTENTION": "0"}, "off", "f16", 2.0),
    ({"OLLAMA_FLASH_ATTENTION": "1"}, "on", "f16", 2.0),
])
def test_flash_attention_and_kv_cache_type_reach_the_context(f16_server, smollm2_path, env,
                                                            expect_fa, cache, per_element):
    model_size = smollm2_path.stat().st_size
    assert generate(f16_server, "smollm2:135m").status_code == 200
    f16_kv = kv_bytes(f16_server, model_size)
    server = started_server(env, smollm2_path)
    try:
        answer = generate(server, "smollm2:135m")
        assert answer.status_code == 200, answer.text
        assert "Paris" in answer.json()["response"]  # still a right answer at temperature 0
        assert kv_bytes(server, model_size) == int(f16_kv / 2.0 * per_element)
        assert f"flash_attention={expect_fa} kv_cache_type={cache}" in server.log()
    finally:
        server.cleanup()


def test_flash_attention_auto_is_resolved_by_llama_cpp(f16_server) -> None:
    assert generate(f16_server, "smollm2:135m").status_code == 200
    assert "flash_attention=on kv_cache_type=f16" in f16_server.log()  # CPUs support it


@pytest.mark.parametrize(("env", "message"), [
    ({"OLLAMA_KV_CACHE_TYPE": "q3"}, "OLLAMA_KV_CACHE_TYPE='q3' is not a K/V cache type"),
    ({"OLLAMA_KV_CACHE_TYPE": "q8_0", "OLLAMA_FLASH_ATTENTION": "false"},
     "OLLAMA_KV_CACHE_TYPE=q8_0 needs flash attention, but OLLAMA_FLASH_ATTENTION turns it off"),
])
def test_serve_refuses_settings_it_cannot_honour(env, message) -> None:
    server = Server(extra_env=env)
    try:
        with pytest.raises(RuntimeError) as failed:
            server.start()
        assert f"Error: {message}" in str(failed.value)
        assert server.process.returncode == 1
    finally:
        server.cleanup()


# -- speculative decoding ----------------------------------------------------------------------


def test_draft_is_refused_not_dropped(f16_server, smollm2_path, tmp_path) -> None:
    client = f16_server.client()
    digest = client.create_blob(smollm2_path)
    answer = httpx.post(f"{f16_server.url}/api/create", json={
        "model": "withdraft", "files": {"m.gguf": digest}, "draft_files": {"d.gguf": digest},
        "stream": False}, timeout=60)
    assert answer.status_code == 400
    assert "speculative decoding" in answer.json()["error"]
    assert httpx.post(f"{f16_server.url}/api/show", json={"model": "withdraft"}).status_code == 404
    # The CLI says so before it uploads anything.
    (tmp_path / "d.gguf").write_bytes(b"GGUF")
    (tmp_path / "Modelfile").write_text(f"FROM {smollm2_path}\nDRAFT ./d.gguf\n")
    done = f16_server.cli("create", "withdraft", "-f", str(tmp_path / "Modelfile"))
    assert done.returncode == 1
    assert "speculative decoding" in done.stderr


@pytest.mark.parametrize("where", ["options", "parameters"])
def test_draft_num_predict_is_refused(f16_server, smollm2_path, where) -> None:
    if where == "options":
        answer = generate(f16_server, "smollm2:135m", options={**GREEDY, "draft_num_predict": 4})
    else:
        answer = httpx.post(f"{f16_server.url}/api/create", json={
            "model": "d2", "from": "smollm2:135m", "parameters": {"draft_num_predict": 4},
            "stream": False}, timeout=60)
    assert answer.status_code == 400
    assert "speculative decoding" in answer.json()["error"]
    ok = generate(f16_server, "smollm2:135m", options={**GREEDY, "draft_num_predict": 0})
    assert ok.status_code == 200


# -- runaway answers ---------------------------------------------------------------------------


def test_a_loop_of_a_short_sequence_ends_the_answer(f16_server) -> None:
    """SmolLM2 at temperature 0 goes on repeating a pattern it is given; the runner stops it
    once the last 256 tokens are one short block repeated, instead of generating 4,000."""
    answer = generate(f16_server, "smollm2:135m", raw=True, prompt="keyfile." * 60,
                      options={"temperature": 0, "num_predict": 4000, "seed": 1})
    assert answer.status_code == 200
    done = answer.json()
    assert done["done_reason"] == "stop"
    assert 256 <= done["eval_count"] < 600, done["eval_count"]
    text = done["response"]
    assert text.count("keyfile") > 40  # it was looping, and it was stopped for that


def test_num_predict_minus_two_fills_the_context_and_stops(f16_server) -> None:
    """Counting never ends by itself: -1 shifts the context and goes on, -2 stops at the window
    (llama.cpp's "fill the context", which `pollama run` uses unless num_predict is set)."""
    counting = "1, 2, 3, 4, 5, 6, 7,"
    options = {"temperature": 0, "num_ctx": 64}
    filled = generate(f16_server, "smollm2:135m", prompt=counting,
                      options={**options, "num_predict": -2}).json()
    assert filled["done_reason"] == "length"
    # The window holds 64 tokens; the last answer token is sampled from the full window.
    assert filled["prompt_eval_count"] + filled["eval_count"] == 64 + 1
    shifted = generate(f16_server, "smollm2:135m", prompt=counting,
                       options={**options, "num_predict": 100}).json()
    assert shifted["eval_count"] == 100


def test_pollama_run_ends_a_runaway_answer_at_the_context(f16_server, smollm2_path,
                                                          tmp_path) -> None:
    """`pollama run` sends num_predict -2 unless the model sets num_predict: counting stops when
    the 64-token window is full instead of going on for 10×num_ctx tokens."""
    (tmp_path / "Modelfile").write_text(f"FROM {smollm2_path}\nPARAMETER num_ctx 64\n"
                                        'PARAMETER temperature 0\nTEMPLATE "{{ .Prompt }}"\n')
    made = f16_server.cli("create", "counter", "-f", str(tmp_path / "Modelfile"))
    assert made.returncode == 0, made.stderr
    ran = f16_server.cli("run", "counter", "--verbose", input="1, 2, 3, 4, 5, 6, 7,")
    assert ran.returncode == 0, ran.stderr
    counts = dict(line.split(":", 1) for line in ran.stderr.splitlines() if "count:" in line)
    prompt = int(counts["prompt eval count"].split()[0])
    answer = int(counts["eval count"].split()[0])
    assert prompt + answer == 64 + 1
    # With num_predict set in the Modelfile, run leaves it alone.
    (tmp_path / "Modelfile").write_text("FROM counter\nPARAMETER num_predict 100\n")
    assert f16_server.cli("create", "counter100", "-f", str(tmp_path / "Modelfile")).returncode == 0
    ran = f16_server.cli("run", "counter100", "--verbose", input="1, 2, 3, 4, 5, 6, 7,")
    assert "eval count:           100 token(s)" in ran.stderr


def test_images_to_a_model_without_vision_are_refused(f16_server) -> None:
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
           "RU5ErkJggg==")
    answer = generate(f16_server, "smollm2:135m", images=[png])
    assert answer.status_code == 400
    assert answer.json()["error"] == ("registry.ollama.ai/library/smollm2:135m does not support "
                                      "vision")
    chat = httpx.post(f"{f16_server.url}/api/chat", json={
        "model": "smollm2:135m", "stream": False,
        "messages": [{"role": "user", "content": "What is this?", "images": [png]}]}, timeout=60)
    assert chat.status_code == 400
    assert chat.json()["error"] == answer.json()["error"]
