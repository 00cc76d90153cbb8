"""Faults a server meets in a long life, injected for real: runners killed at each stage of an
answer, damaged GGUF files, a read-only models folder, a full disk, and the server itself
killed (kill -9) in the middle of a write. Each time: a clear error (status and text), the
server keeps serving, nothing half-written is visible, and the same operation succeeds once
the fault is gone.

What the mount tests need: user namespaces (`unshare --user`, unprivileged) or root; without
either they skip. See tests/faults.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.engine.errors import RUNNER_CRASHED
from tests.faults import cpu_seconds, runner_pids, wait_for
from tests.helpers import Server, create_from_gguf
from tests.vision import solid_png, write_vision_model

KILLED = "llama runner process has terminated: signal 9 (SIGKILL, killed)"
SHORT = {"temperature": 0, "seed": 1, "num_predict": 4}
TIMEOUT = 120
# An encoder that spends seconds of CPU on one image (1,600 positions, 16 blocks of width 384)
# and next to nothing on the few text tokens around it.
HEAVY_ENCODER = {"image_size": 560, "patch_size": 14, "vision_width": 384, "vision_blocks": 16}


def post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=TIMEOUT)


def answers(server: Server, model: str, **extra: Any) -> dict[str, Any]:
    """One short answer, which must succeed."""
    r = post(server, "/api/generate", {"model": model, "prompt": "Hi", "stream": False,
                                       "options": SHORT, **extra})
    assert r.status_code == 200, r.text
    assert r.json()["done"]
    return r.json()


def unload_all(server: Server) -> None:
    for running in httpx.get(server.url + "/api/ps").json()["models"]:
        post(server, "/api/generate", {"model": running["name"], "keep_alive": 0})
    wait_for("the runners to stop", lambda: not runner_pids(server))


@pytest.fixture(scope="module")
def srv(smollm2_path, tmp_path_factory):
    server = Server(extra_env={"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_REPACK": "0"}).start()
    create_from_gguf(server, "smol", smollm2_path)
    yield server
    server.cleanup()


class Asking(threading.Thread):
    """One streamed request in the background: its status, lines, and when the first came."""

    def __init__(self, server: Server, path: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.body = server.url + path, body
        self.status = 0
        self.lines: list[str] = []
        self.first_line = threading.Event()

    def run(self) -> None:
        with httpx.stream("POST", self.url, json=self.body, timeout=TIMEOUT) as r:
            self.status = r.status_code
            for line in r.iter_lines():
                if line:
                    self.lines.append(line)
                    self.first_line.set()
        self.first_line.set()

    def result(self) -> tuple[int, list[str]]:
        self.join(TIMEOUT)
        assert not self.is_alive()
        return self.status, self.lines


def kill_once_busy(server: Server, asking: Asking, cpu: float = 0.3) -> int:
    """SIGKILL the one runner once it has spent `cpu` seconds on the request in flight, before
    its first answer line (the work before that is the stage under test)."""
    [pid] = wait_for("a runner", lambda: runner_pids(server))
    start = cpu_seconds(pid)
    asking.start()
    wait_for("the runner to work on it", lambda: cpu_seconds(pid) - start >= cpu
             or asking.first_line.is_set(), interval=0.005)
    assert not asking.first_line.is_set(), "the answer began before the stage under test ended"
    os.kill(pid, signal.SIGKILL)
    return pid


def assert_recovers(server: Server, model: str, dead: int, **extra: Any) -> None:
    """The server still answers, and the next request loads a new runner."""
    assert httpx.get(server.url + "/api/tags").status_code == 200
    answers(server, model, **extra)
    assert dead not in runner_pids(server) and runner_pids(server)


# -- a runner killed -------------------------------------------------------------------------


def test_runner_killed_while_loading(srv):
    unload_all(srv)
    asking = Asking(srv, "/api/generate", {"model": "smol", "prompt": "Hi", "options": SHORT})
    asking.start()
    [pid] = wait_for("the runner to start", lambda: runner_pids(srv), interval=0.005)
    os.kill(pid, signal.SIGKILL)
    status, lines = asking.result()
    assert status == 500
    [line] = lines
    assert json.loads(line)["error"].startswith(KILLED)  # the load's own error, as Ollama's
    assert_recovers(srv, "smol", pid)


def test_runner_killed_during_prefill(srv):
    answers(srv, "smol")  # loaded and idle
    # ~3,000 tokens of prompt: seconds of prefill before the first token.
    prompt = " ".join(f"item {i}: the sea is blue." for i in range(400)) + " Summarize."
    asking = Asking(srv, "/api/generate", {"model": "smol", "prompt": prompt,
                                           "options": {**SHORT, "num_ctx": 4096}})
    pid = kill_once_busy(srv, asking)
    status, lines = asking.result()
    # No byte of the answer was sent: the error keeps its HTTP status.
    assert status == 500
    assert len(lines) == 1
    assert json.loads(lines[0])["error"].startswith(f"{RUNNER_CRASHED}: {KILLED}")
    assert_recovers(srv, "smol", pid)


def test_runner_killed_during_decode_ends_sse_streams_with_their_error_events(srv):
    answers(srv, "smol")
    poem = [{"role": "user", "content": "Write an endless poem about the sea."}]
    openai_stream = Asking(srv, "/v1/chat/completions", {
        "model": "smol", "stream": True, "max_tokens": 100_000, "messages": poem})
    anthropic_stream = Asking(srv, "/v1/messages", {
        "model": "smol", "stream": True, "max_tokens": 100_000, "messages": poem})
    openai_stream.start()
    anthropic_stream.start()
    wait_for("both answers to stream",
             lambda: len(openai_stream.lines) >= 3 and len(anthropic_stream.lines) >= 6)
    [pid] = runner_pids(srv)
    os.kill(pid, signal.SIGKILL)
    status, lines = openai_stream.result()
    assert status == 200
    error = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert error["message"].startswith(f"{RUNNER_CRASHED}: {KILLED}")
    assert error["type"] == "api_error"
    status, lines = anthropic_stream.result()
    assert status == 200 and lines[-2] == "event: error"
    error = json.loads(lines[-1].removeprefix("data: "))
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert error["error"]["message"].startswith(f"{RUNNER_CRASHED}: {KILLED}")
    assert_recovers(srv, "smol", pid)


def test_runner_killed_while_encoding_an_image(srv, tmp_path):
    text, projector = write_vision_model(tmp_path, **HEAVY_ENCODER)
    client = srv.client()
    files = {}
    for path in (text, projector):
        files[path.name] = client.create_blob(path)
    client.create(model="heavy-seer", files=files)
    unload_all(srv)
    answers(srv, "heavy-seer")  # loaded and idle
    picture = base64.b64encode(solid_png((200, 30, 30))).decode()
    asking = Asking(srv, "/api/chat", {"model": "heavy-seer", "options": SHORT, "messages": [
        {"role": "user", "content": "What is this?", "images": [picture]}]})
    # The encoder runs first and for seconds; the prompt's few text tokens take milliseconds.
    pid = kill_once_busy(srv, asking, cpu=0.5)
    status, lines = asking.result()
    assert status == 500 and len(lines) == 1
    assert json.loads(lines[0])["error"].startswith(f"{RUNNER_CRASHED}: {KILLED}")
    assert_recovers(srv, "heavy-seer", pid)
    r = post(srv, "/api/chat", {"model": "heavy-seer", "stream": False, "options": SHORT,
                                "messages": [{"role": "user", "content": "What is this?",
                                              "images": [picture]}]})
    assert r.status_code == 200, r.text
    unload_all(srv)
