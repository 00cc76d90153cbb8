"""A model split over RPC workers (W2-I): two real `pollama worker` processes on loopback
ports, a real `pollama serve` using both through OLLAMA_RPC_SERVERS, SmolLM2.

What a user sees: the same greedy answer, token for token, as a server without workers;
`/api/ps` saying where the layers live; the worker's tensor cache sparing a second load the
weights; OLLAMA_RPC_SPLIT and num_gpu moving layers; a worker killed mid-answer ending that
answer with an error naming it, and the next request answered on what remains.

The tests share the workers and run in file order; the last one kills a worker.
Skipped (with the reason) only where the installed llama-cpp-python lacks the RPC backend;
`make install` builds it with RPC, so CI runs them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.engine import rpc
from tests.helpers import Server, Worker, create_from_gguf

_WHY_NOT = rpc.library_check()
needs_rpc = pytest.mark.skipif(_WHY_NOT == rpc.NOT_BUILT, reason=_WHY_NOT)

MODEL = "smollm2:135m"
PROMPT = "Why is the sky blue?"
# Greedy, and the same kernels on both sides: workers never repack weights, so runners don't
# either (on CPUs where the probe allows repacks they would add a second code path).
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 32}
ENV = {"OLLAMA_REPACK": "0", "OLLAMA_NUM_PARALLEL": "1"}


@pytest.mark.skipif(_WHY_NOT != rpc.NOT_BUILT, reason="this llama-cpp-python has RPC")
def test_without_rpc_worker_and_serve_refuse_clearly(tmp_path):
    worker = Worker(tmp_path)
    with pytest.raises(RuntimeError, match="worker exited"):
        worker.start()
    assert worker.stop() == 3
    assert rpc.NOT_BUILT in worker.log()
    server = Server({"OLLAMA_RPC_SERVERS": "127.0.0.1:50052"})
    try:
        with pytest.raises(RuntimeError, match="server exited") as err:
            server.start()
        assert f"OLLAMA_RPC_SERVERS is set, but {rpc.NOT_BUILT}" in str(err.value)
    finally:
        server.cleanup()


def test_runner_with_an_absent_worker(smollm2_path):
    """A worker nobody answers on is left out (the model loads here); without an RPC build
    the runner says so, and never blames the worker."""
    from pollama.engine import RunnerHandle, RunnerStartError

    async def load() -> dict[str, Any]:
        handle = await RunnerHandle.start(smollm2_path, num_ctx=256, num_parallel=1,
                                          repack=False, rpc_servers=["127.0.0.1:1"])
        await handle.close()
        return dict(handle.info)

    if _WHY_NOT == rpc.NOT_BUILT:
        with pytest.raises(RunnerStartError) as err:
            asyncio.run(load())
        assert rpc.NOT_BUILT in str(err.value) and "went away" not in str(err.value)
        return
    info = asyncio.run(load())
    assert info["rpc_skipped"] == {"127.0.0.1:1": "connection refused"}
    assert [(d["name"], d["layers"]) for d in info["devices"]] == [("CPU", 31)]


@needs_rpc
def test_library_is_usable():
    assert _WHY_NOT == "", _WHY_NOT  # anything but "built without RPC" is a broken install


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rpc")


@pytest.fixture(scope="module")
def workers(root) -> Iterator[list[Worker]]:
    started = [Worker(root).start(), Worker(root).start()]
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def baseline(smollm2_path) -> Iterator[dict[str, Any]]:
    """The answer of a server without workers (then stopped: the cores go to the others)."""
    server = Server(ENV).start()
    try:
        create_from_gguf(server, MODEL, smollm2_path)
        yield generate(server)
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def split_server(workers, smollm2_path) -> Iterator[Server]:
    servers = ",".join(w.endpoint for w in workers)
    server = Server({**ENV, "OLLAMA_RPC_SERVERS": servers}).start()
    create_from_gguf(server, MODEL, smollm2_path)
    yield server
    server.cleanup()


def generate(server: Server, **options: Any) -> dict[str, Any]:
    reply = httpx.post(f"{server.url}/api/generate", timeout=120, json={
        "model": MODEL, "prompt": PROMPT, "stream": False, "options": {**GREEDY, **options}})
    assert reply.status_code == 200, reply.text
    return reply.json()


def devices(server: Server) -> list[dict[str, Any]]:
    (model,) = httpx.get(f"{server.url}/api/ps", timeout=10).json()["models"]
    return model["devices"]


def unload(server: Server) -> None:
    reply = httpx.post(f"{server.url}/api/generate", timeout=30,
                       json={"model": MODEL, "keep_alive": 0})
    assert reply.status_code == 200, reply.text
    for _ in range(300):
        if not httpx.get(f"{server.url}/api/ps", timeout=10).json()["models"]:
            return
        time.sleep(0.05)
    raise AssertionError("the model did not unload")


def saved_to(worker: Worker) -> int:
    """How many tensors the worker received whole and wrote to its cache."""
    return worker.log().count("saved to '")


@needs_rpc
def test_worker_flags_and_clean_stops(tmp_path):
    remote = Worker(tmp_path)
    remote.args = ("--listen", f"0.0.0.0:{remote.port}", "--allow-remote", "--no-cache")
    remote.start()
    assert remote.process is not None
    remote.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert remote.process.wait(15) == 0
    log = remote.log()
    assert "no authentication" in log and f"listening on 0.0.0.0:{remote.port}" in log
    assert "Devices:" in log and "MiB free)" in log  # llama.cpp's banner: devices, memory
    assert "local cache    : n/a" in log and not remote.cache.exists()
    assert "pollama worker stopped" in log
    local = Worker(tmp_path).start()
    assert local.stop() == 0  # SIGTERM
    assert f"local cache    : {local.cache}" in local.log()
    assert "WARNING" not in local.log()


@needs_rpc
def test_split_answers_as_one_machine_does(split_server, workers, baseline):
    answer = generate(split_server)
    assert answer["response"] == baseline["response"]
    assert answer["context"] == baseline["context"]  # token for token
    placed = devices(split_server)
    assert [d["name"] for d in placed] == ["CPU"] + [f"RPC[{w.endpoint}]" for w in workers]
    assert sum(d["layers"] for d in placed) == 31  # SmolLM2's 30 layers and its output
    assert all(d["layers"] >= 5 and d["memory"] > 0 for d in placed), placed  # about a third


@needs_rpc
def test_a_busy_worker_says_so(split_server, workers):
    generate(split_server)  # loaded: its runner holds both workers
    with pytest.raises(rpc.WorkerUnavailable, match="busy"):
        rpc.probe(workers[0].endpoint, timeout=1)


@needs_rpc
def test_second_load_takes_weights_from_the_worker_cache(split_server, workers, baseline):
    generate(split_server)
    sent = [saved_to(w) for w in workers]
    # The output layer (SmolLM2 ties it to the 28 MiB token embeddings) is over llama.cpp's
    # 10 MiB threshold: the worker holding it stored it.
    assert sum(sent) >= 1
    cached = {p.name for w in workers if w.cache.exists() for p in w.cache.iterdir()}
    assert any(not name.startswith(".") for name in cached)
    unload(split_server)
    assert generate(split_server)["response"] == baseline["response"]
    assert [saved_to(w) for w in workers] == sent  # only hashes went over the wire


@needs_rpc
def test_split_setting_and_num_gpu_move_layers(workers, smollm2_path, split_server, baseline):
    unload(split_server)  # a worker serves one runner at a time
    servers = ",".join(w.endpoint for w in workers)
    server = Server({**ENV, "OLLAMA_RPC_SERVERS": servers, "OLLAMA_RPC_SPLIT": "0,1,3"})
    server.start()
    try:
        create_from_gguf(server, MODEL, smollm2_path)
        assert generate(server)["response"] == baseline["response"]
        assert [d["layers"] for d in devices(server)] == [0, 8, 23]  # 31 layers as 0:1:3
        # num_gpu (Ollama: layers to offload) = layers that leave this machine
        assert generate(server, num_gpu=4)["response"] == baseline["response"]
        placed = devices(server)
        assert placed[0]["layers"] == 27 and placed[1]["layers"] + placed[2]["layers"] == 4
    finally:
        server.cleanup()


@needs_rpc
def test_worker_killed_mid_answer_is_named_and_the_rest_serve(split_server, workers, baseline):
    dead = workers[1]
    assert generate(split_server)["response"] == baseline["response"]
    lines = []
    with httpx.stream("POST", f"{split_server.url}/api/generate", timeout=120, json={
            "model": MODEL, "prompt": "Write a long story about a lighthouse keeper.",
            "options": {**GREEDY, "num_predict": 400}}) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            lines.append(json.loads(line))
            if len(lines) == 5:
                assert dead.process is not None
                dead.process.send_signal(signal.SIGKILL)  # no goodbye: its child follows
    assert "error" in lines[-1], lines[-1]
    error = lines[-1]["error"]
    assert f"RPC worker {dead.endpoint} (connection refused) went away" in error, error
    assert not any(line.get("done") for line in lines)
    # The next request loads the model again on this machine and the worker that remains.
    assert generate(split_server)["response"] == baseline["response"]
    placed = devices(split_server)
    assert [d["name"] for d in placed] == ["CPU", f"RPC[{workers[0].endpoint}]"]
    assert placed[1]["layers"] > 0
    log = split_server.log()
    assert f"RPC worker {dead.endpoint} left out" in log
