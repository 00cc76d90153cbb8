"""The native inference routes over fake runners (tests/fakes.py): statuses, error texts, NDJSON
streams and their stream:false collapse. In-process (TestClient), a tiny generated GGUF; the
real-model route tests live in integration/."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pollama.config import Config
from pollama.engine.cpu_probe import write_probe_model
from pollama.engine.errors import RUNNER_CRASHED
from pollama.server.app import create_app
from tests.fakes import FakeRunners

CRASH = (f"{RUNNER_CRASHED}: llama runner process has terminated: signal 9 (SIGKILL, killed): "
         "fake runner: killed")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_probe_model(path)
    return path.read_bytes()


@pytest.fixture
def runners() -> FakeRunners:
    return FakeRunners(pieces=["Hello", ",", " world", "!"])


@pytest.fixture
def client(tmp_path: Path, tiny_gguf: bytes, runners: FakeRunners) -> Iterator[TestClient]:
    config = Config.from_env({"HOME": str(tmp_path), "OLLAMA_MODELS": str(tmp_path / "models")})
    app = create_app(config, start_runner=runners)
    with TestClient(app, base_url="http://127.0.0.1:11434") as client:
        digest = "sha256:" + hashlib.sha256(tiny_gguf).hexdigest()
        assert client.post(f"/api/blobs/{digest}", content=tiny_gguf).status_code == 201
        r = client.post("/api/create", json={"model": "tiny", "files": {"tiny.gguf": digest},
                                             "stream": False})
        assert r.status_code == 200, r.text
        yield client


def lines(response: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_generate_streams_the_runners_chunks(client: TestClient, runners: FakeRunners) -> None:
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "why is the sky blue"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-ndjson"
    got = lines(r)
    assert [c["response"] for c in got] == ["Hello", ",", " world", "!", ""]
    assert [c["done"] for c in got] == [False] * 4 + [True]
    assert got[-1]["done_reason"] == "stop"
    assert got[-1]["eval_count"] == 4 and got[-1]["prompt_eval_count"] == 5  # fake: a word
    assert got[-1]["context"] == [3, 2, 3, 3, 4, 0, 1, 2, 3]  # a token, its length
    assert len(runners.started) == 1
    kind, request = runners.last.calls[-1]
    assert kind == "completion" and request["prompt"] == "why is the sky blue"


def test_stream_false_collapses_into_one_answer(client: TestClient) -> None:
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False})
    assert r.status_code == 200
    body = r.json()
    assert body["response"] == "Hello, world!"
    assert body["done"] is True and body["done_reason"] == "stop"
    assert body["eval_count"] == 4
    r = client.post("/api/chat", json={"model": "tiny", "stream": False,
                                       "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert r.json()["message"] == {"role": "assistant", "content": "Hello, world!"}


def test_unknown_model_is_404(client: TestClient, runners: FakeRunners) -> None:
    r = client.post("/api/generate", json={"model": "nope", "prompt": "hi"})
    assert r.status_code == 404
    assert r.json() == {"error": "model 'nope' not found"}
    r = client.post("/api/chat", json={"model": "nope", "messages": []})
    assert r.status_code == 404
    assert r.json() == {"error": "model 'nope' not found"}
    assert not runners.specs


def test_bad_json_is_400(client: TestClient) -> None:
    r = client.post("/api/generate", content=b'{"model": "tiny", "prompt": ')
    assert r.status_code == 400
    assert r.json() == {"error": "unexpected EOF"}
    r = client.post("/api/chat", content=b"{model}")
    assert r.status_code == 400
    assert r.json() == {"error": "invalid character 'm' looking for beginning of value"}


def test_an_option_of_the_wrong_type_is_400(client: TestClient, runners: FakeRunners) -> None:
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi",
                                           "options": {"temperature": "hot"}})
    assert r.status_code == 400
    assert r.json() == {"error": "option \"temperature\" must be of type float32"}
    assert not runners.specs


def test_a_crash_mid_stream_is_an_error_line(client: TestClient, runners: FakeRunners) -> None:
    runners.crash_after = 2
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi"})
    assert r.status_code == 200
    got = lines(r)
    assert got[:2] == [{**got[0], "response": "Hello", "done": False},
                       {**got[1], "response": ",", "done": False}]
    assert got[2:] == [{"error": CRASH}]


def test_a_crash_before_the_first_chunk_is_a_500(client: TestClient,
                                                 runners: FakeRunners) -> None:
    runners.crash_after = 0
    r = client.post("/api/chat", json={"model": "tiny",
                                       "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 500
    assert r.json() == {"error": CRASH}
    # the dead runner is forgotten: the next request loads a new one and is answered
    runners.crash_after = None
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False})
    assert r.status_code == 200 and r.json()["response"] == "Hello, world!"
    assert len(runners.started) == 2


def test_a_failed_start_is_a_500_with_the_runners_word(client: TestClient,
                                                       runners: FakeRunners) -> None:
    runners.fail_start = "error loading model: tensor data is not within the file bounds"
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi"})
    assert r.status_code == 500
    assert r.json() == {"error": "llama runner process has terminated: exit status 1: "
                                 "error loading model: tensor data is not within the file "
                                 "bounds"}


def test_ps_lists_the_loaded_runner(client: TestClient, runners: FakeRunners) -> None:
    assert client.get("/api/ps").json() == {"models": []}
    client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False})
    models = client.get("/api/ps").json()["models"]
    assert [(m["name"], m["size"], m["context_length"]) for m in models] == [
        ("tiny:latest", runners.memory_bytes, runners.last.spec.num_ctx)]
    r = client.post("/api/generate", json={"model": "tiny", "keep_alive": 0})
    assert r.json()["done_reason"] == "unload"


@pytest.mark.parametrize("keep_alive", [1e300, 1e18, "99999999999999999999h", -1])
def test_a_keep_alive_past_gos_longest_duration_leaves_ps_readable(
        client: TestClient, keep_alive: Any) -> None:
    """Found by fuzzing: a huge keep_alive made every later /api/ps a 500 (a timestamp past
    what the platform formats). Past int64 nanoseconds, Go's number wraps to forever and its
    duration string is invalid."""
    r = client.post("/api/generate", json={"model": "tiny", "keep_alive": keep_alive})
    if isinstance(keep_alive, str):
        assert r.status_code == 400
        assert r.json() == {"error": f'time: invalid duration "{keep_alive}"'}
        return
    assert r.status_code == 200, r.text
    ps = client.get("/api/ps")
    assert ps.status_code == 200, ps.text
    assert ps.json()["models"][0]["expires_at"].startswith("23")  # now + 292 years


@pytest.mark.parametrize(("num_batch", "expected"), [
    (1, None),  # fewer than the slots: llama.cpp aborted (GGML_ASSERT n_outputs_max)
    (-3, 512), (0, 512),  # as in Ollama, the default
    (100_000_000, None),  # a runner allocated buffers for it and stalled past a minute
])
def test_a_batch_the_engine_cannot_take_is_brought_within_its_bounds(
        client: TestClient, runners: FakeRunners, num_batch: int, expected: int | None) -> None:
    """Found by fuzzing /api/tokenize's options: each of these killed or stalled the runner."""
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False,
                                           "options": {"num_batch": num_batch}})
    assert r.status_code == 200, r.text
    spec = runners.specs[-1]
    assert spec.num_parallel <= spec.num_batch <= spec.num_ctx * spec.num_parallel
    if expected is not None:
        assert spec.num_batch == expected


def test_more_threads_than_ggml_runs_is_a_400(client: TestClient, runners: FakeRunners) -> None:
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi",
                                           "options": {"num_thread": 100_000}})
    assert r.status_code == 400
    assert r.json() == {"error": "num_thread must be at most 512"}
    assert runners.specs == []
    r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False,
                                           "options": {"num_thread": -4}})
    assert r.status_code == 200 and runners.specs[-1].num_thread == 0  # auto, as Ollama
