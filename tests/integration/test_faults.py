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
import contextlib
import hashlib
import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.engine.errors import RUNNER_CRASHED
from tests.faults import (
    Mounts,
    alive,
    check_store,
    conversation_db,
    cpu_seconds,
    fill,
    free_bytes,
    gguf_layout,
    kill9,
    make_old,
    patched,
    runner_pids,
    wait_for,
)
from tests.helpers import Server, create_from_gguf
from tests.integration.registry_fixture import Proxy
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
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=TIMEOUT) as r:
                self.status = r.status_code
                for line in r.iter_lines():
                    if line:
                        self.lines.append(line)
                        self.first_line.set()
        except httpx.HTTPError:  # the server was killed: what arrived before is the record
            pass
        finally:
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


@pytest.mark.long
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


@pytest.mark.long
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


@pytest.mark.long
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


# -- damaged GGUF files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    """A small, valid Llama GGUF (tests/vision.py's text model, SmolLM2's tokenizer)."""
    text, _projector = write_vision_model(tmp_path_factory.mktemp("tiny"))
    return text


@pytest.fixture
def other_gguf(tmp_path) -> Path:
    """A second small GGUF, with other weights (so other blobs) than `tiny_gguf`."""
    text, _projector = write_vision_model(tmp_path / "other", seed=1)
    return text


def damaged(good: Path, how: str) -> bytes:
    data = good.read_bytes()
    layout = gguf_layout(good)
    first_tensor = next(iter(layout.tensor_offset_at))
    if how == "truncated":
        return data[:len(data) // 2]
    if how == "wrong magic":
        return b"GGUG" + data[4:]
    if how == "tensor offset past the end":
        return patched(data, layout.tensor_offset_at[first_tensor], 1 << 40)
    if how == "huge key/value count":
        return patched(data, layout.n_kv_at, 1 << 62)
    if how == "huge tensor count":
        return patched(data, layout.n_tensors_at, 1 << 62)
    if how == "huge string length":
        return patched(data, layout.first_key_length_at, 1 << 62)
    if how == "huge array count":
        return patched(data, layout.array_count_at["tokenizer.ggml.tokens"], 1 << 40)
    if how == "array count beyond the file":
        return patched(data, layout.array_count_at["tokenizer.ggml.tokens"], 1 << 25)
    raise ValueError(how)


DAMAGE = {
    "truncated": r'invalid GGUF file: tensor "[^"]+" offset\+size \(\d+\) exceeds file size '
                 r"\(\d+\)",
    "wrong magic": r"supplied file was not in GGUF format",
    "tensor offset past the end": r'invalid GGUF file: tensor "token_embd.weight" '
                                  r"offset\+size \(\d{13,}\) exceeds file size \(\d+\)",
    "huge key/value count": r"invalid GGUF file: GGUF key/value count 4611686018427387904 "
                            r"does not fit in the file \(\d+ bytes\)",
    "huge tensor count": r"invalid GGUF file: GGUF tensor count 4611686018427387904 does not "
                         r"fit in the file \(\d+ bytes\)",
    "huge string length": r"invalid GGUF file: GGUF string length 4611686018427387904 exceeds "
                          r"maximum 16777216",
    "huge array count": r"invalid GGUF file: GGUF array size 1099511627776 exceeds maximum "
                        r"67108864",
    "array count beyond the file": r"invalid GGUF file: GGUF array count 33554432 does not "
                                   r"fit in the file \(\d+ bytes\)",
}


# Each damage costs an upload; the ones a header walk alone finds run in every suite.
QUICK = ("wrong magic", "huge key/value count", "huge string length",
         "array count beyond the file")


@pytest.mark.parametrize("how", [h if h in QUICK else pytest.param(h, marks=pytest.mark.long)
                                 for h in DAMAGE])
def test_create_refuses_a_damaged_gguf(srv, tiny_gguf, tmp_path, how):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(damaged(tiny_gguf, how))
    before = check_store(srv.models)
    digest = "sha256:" + hashlib.sha256(bad.read_bytes()).hexdigest()
    upload = httpx.post(f"{srv.url}/api/blobs/{digest}", content=bad.read_bytes(),
                        timeout=TIMEOUT)
    assert upload.status_code == 201
    r = post(srv, "/api/create", {"model": "damaged", "files": {"bad.gguf": digest},
                                  "stream": False})
    assert r.status_code == 400, r.text
    assert re.fullmatch(DAMAGE[how], r.json()["error"]), r.json()["error"]
    after = check_store(srv.models)
    assert after.problems == [] and after.leftovers == []
    assert after.manifests == before.manifests  # no model was made
    assert after.blobs == before.blobs | {digest}  # the upload stays, unused, as in Ollama
    answers(srv, "smol")  # the server serves on


def test_cli_create_from_a_damaged_gguf_says_why(srv, tiny_gguf, tmp_path):
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(damaged(tiny_gguf, "huge key/value count"))
    (tmp_path / "Modelfile").write_text(f"FROM {bad}\n")
    made = srv.cli("create", "damaged", "-f", str(tmp_path / "Modelfile"))
    assert made.returncode == 1
    assert re.search(r"^Error: invalid GGUF file: GGUF key/value count \d+ does not fit in the "
                     r"file", made.stderr, re.M), made.stderr
    assert "damaged" not in srv.cli("list").stdout


def test_a_gguf_damaged_on_disk_after_create_fails_at_load(tiny_gguf, other_gguf):
    """The blob of a created model is cut short behind the server's back (a bad disk, a copy
    gone wrong): loading it is a clear error; other models are untouched."""
    server = Server(extra_env={"OLLAMA_REPACK": "0"}).start()
    try:
        create_from_gguf(server, "sound", other_gguf)
        create_from_gguf(server, "victim", tiny_gguf)
        answers(server, "victim")
        unload_all(server)
        digest = "sha256:" + hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
        blob = server.models / "blobs" / digest.replace(":", "-")
        os.truncate(blob, blob.stat().st_size // 2)
        # The running server knew the file whole: llama.cpp finds the damage when it loads.
        r = post(server, "/api/generate", {"model": "victim", "prompt": "Hi"})
        assert r.status_code == 500 and r.json()["error"] == (
            "llama runner process has terminated: exit status 1: error loading model: tensor "
            "'token_embd.weight' data is not within the file bounds, model is corrupted or "
            "incomplete")
        # A server started since reads the header first, and says so in every dialect.
        server.restart()
        damaged = (f'model "victim" cannot be loaded: its weights file {blob.name} is damaged '
                   r'\(tensor "[^"]+" offset\+size \(\d+\) exceeds file size \(\d+\)\); remove '
                   "it and pull or create it again")
        for path in ("/api/generate", "/api/chat", "/api/embed", "/v1/chat/completions"):
            r = post(server, path, {"model": "victim", "prompt": "Hi", "input": "Hi",
                                    "messages": [{"role": "user", "content": "Hi"}]})
            assert r.status_code == 500, r.text
            error = r.json()["error"]
            assert re.fullmatch(damaged, error if isinstance(error, str) else error["message"])
        answers(server, "sound")
        size = tiny_gguf.stat().st_size
        assert check_store(server.models).problems == [  # what the helper is for
            f"blob {blob.name} does not hash to its name",
            f"manifest registry.ollama.ai/library/victim/latest: blob {digest} has {size // 2} "
            f"bytes, not {size}"]
        # Gone altogether: as clear.
        blob.unlink()
        r = post(server, "/api/generate", {"model": "victim", "prompt": "Hi"})
        assert r.status_code == 500 and r.json()["error"] == (
            f'model "victim" cannot be loaded: its weights file {blob.name} is missing; remove '
            "it and pull or create it again")
        # Put right (created again from the good file), it runs.
        create_from_gguf(server, "victim", tiny_gguf)
        answers(server, "victim")
        assert "Traceback" not in server.log(), server.log()[-4000:]
    finally:
        server.cleanup()


def test_an_architecture_llama_cpp_cannot_load_fails_at_load(srv, tiny_gguf, tmp_path):
    """A well-formed GGUF whose architecture llama.cpp does not know: created (as Ollama does),
    then refused by the runner with llama.cpp's reason."""
    data = tiny_gguf.read_bytes()
    assert data.count(b"llama") >= 1
    odd = tmp_path / "odd.gguf"
    at = data.index(b"general.architecture") + len(b"general.architecture") + 4 + 8
    assert data[at:at + 5] == b"llama"
    odd.write_bytes(data[:at] + b"llamx" + data[at + 5:])
    create_from_gguf(srv, "odd", odd)
    r = post(srv, "/api/generate", {"model": "odd", "prompt": "Hi", "stream": False})
    assert r.status_code == 500
    assert r.json()["error"] == ("llama runner process has terminated: exit status 1: error "
                                 "loading model: unknown model architecture: 'llamx'")
    answers(srv, "smol")
    assert check_store(srv.models).problems == []


# -- a read-only models folder, a full disk ---------------------------------------------------


def blob_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def upload(server: Server, path: Path) -> httpx.Response:
    return httpx.post(f"{server.url}/api/blobs/{blob_digest(path)}", content=path.read_bytes(),
                      timeout=TIMEOUT)


def error_of(r: httpx.Response) -> str:
    assert r.status_code == 500, r.text
    return r.json()["error"]


@pytest.fixture
def mounts():
    made = Mounts()
    yield made
    made.close()


def in_registry(server: Server, registry, gguf_file: Path, name: str) -> str:
    """A model pushed to the test registry and removed here: pulling it writes new blobs."""
    remote = f"{registry.host}/test/{name}"
    create_from_gguf(server, remote, gguf_file)
    pushed = server.cli("push", remote, "--insecure")
    assert pushed.returncode == 0, pushed.stderr
    assert server.cli("rm", remote).returncode == 0
    return remote


def pull(server: Server, remote: str) -> httpx.Response:
    return post(server, "/api/pull", {"model": remote, "insecure": True, "stream": False})


def test_read_only_models_folder(mounts, tiny_gguf, other_gguf, registry, tmp_path):
    server = Server(extra_env={"OLLAMA_REPACK": "0"})
    server.launcher = mounts.launcher
    server.models.mkdir(parents=True)
    try:
        server.start()
        create_from_gguf(server, "tiny", tiny_gguf)
        assert server.cli("cp", "tiny", "spare").returncode == 0
        remote = in_registry(server, registry, other_gguf, "other")
        before = check_store(server.models)

        mounts.read_only(server.models)
        read_only = "Read-only file system"
        assert error_of(upload(server, other_gguf)) == f"could not write blob: {read_only}"
        made = post(server, "/api/create", {"model": "brief", "from": "tiny", "stream": False,
                                            "system": "Be brief."})
        assert error_of(made) == f"could not write blob: {read_only}"
        assert re.fullmatch(f"could not write blob sha256:[0-9a-f]{{64}}: {read_only}",
                            error_of(pull(server, remote)))
        removed = httpx.request("DELETE", f"{server.url}/api/delete", json={"model": "spare"})
        assert error_of(removed) == f"could not remove model spare: {read_only}"
        copied = post(server, "/api/copy", {"source": "tiny", "destination": "copy"})
        assert error_of(copied) == f"could not write manifest: {read_only}"
        cli = server.cli("rm", "spare")
        assert cli.returncode == 1 and cli.stderr.strip().endswith(
            f"Error: could not remove model spare: {read_only}")
        # Reading and answering go on.
        assert {m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]} == {
            "tiny:latest", "spare:latest"}
        assert post(server, "/api/show", {"model": "spare"}).status_code == 200
        answers(server, "tiny")
        after = check_store(server.models)
        assert after == before and after.problems == [] and after.leftovers == []

        mounts.read_only(server.models, False)  # writable again: the same requests succeed
        assert upload(server, other_gguf).status_code == 201
        assert post(server, "/api/create", {"model": "brief", "from": "tiny", "stream": False,
                                            "system": "Be brief."}).status_code == 200
        assert pull(server, remote).status_code == 200
        assert httpx.request("DELETE", f"{server.url}/api/delete",
                             json={"model": "spare"}).status_code == 200
        assert post(server, "/api/copy", {"source": "tiny", "destination": "copy"}
                    ).status_code == 200
        check = check_store(server.models)
        assert check.problems == [] and check.leftovers == []
        assert "Traceback" not in server.log(), server.log()[-4000:]
    finally:
        server.cleanup()


def test_full_disk_during_upload_create_pull_and_conversation(mounts, tiny_gguf, other_gguf,
                                                              registry, tmp_path):
    """Models and the conversation database on a small disk that another writer fills up:
    each write fails with a clear error and leaves nothing behind; the server serves on; with
    the space back, the same requests succeed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounts.tmpfs(disk, "64m")
    view = mounts.view(disk)  # the disk as this test process sees it
    server = Server(extra_env={"OLLAMA_REPACK": "0", "OLLAMA_MODELS": str(disk / "models"),
                               "OLLAMA_CONVERSATIONS": str(disk / "pollama.db")})
    server.launcher = mounts.launcher
    try:
        server.start()
        create_from_gguf(server, "tiny", tiny_gguf)
        remote = in_registry(server, registry, other_gguf, "other")
        conversation = post(server, "/api/conversations", {"model": "tiny"}).json()["id"]
        turn = {"conversation": conversation, "stream": False, "options": SHORT,
                "messages": [{"role": "user", "content": "Hello."}]}
        assert post(server, "/api/chat", turn).status_code == 200
        _, messages = conversation_db(disk / "pollama.db", mounts.launcher)
        assert len(messages) == 2

        fill(view / "filler")
        full = "no space left on device while writing blob"
        assert error_of(upload(server, other_gguf)) == full
        made = post(server, "/api/create", {"model": "brief", "from": "tiny", "stream": False,
                                            "system": "Be brief."})
        assert error_of(made) == full
        assert error_of(pull(server, remote)).startswith(f"{full} sha256:")
        long_turn = {**turn, "messages": [{"role": "user", "content": "word " * 300_000}]}
        assert "database or disk is full" in error_of(post(server, "/api/chat", long_turn))
        check = check_store(view / "models")
        assert check.problems == [] and check.leftovers == []
        assert set(check.manifests) == {"registry.ollama.ai/library/tiny/latest"}
        integrity, kept = conversation_db(disk / "pollama.db", mounts.launcher)
        assert integrity == "ok" and kept == messages
        answers(server, "tiny")  # still serving
        assert free_bytes(view) < 1 << 20  # nothing was given back that was not taken

        (view / "filler").unlink()
        assert upload(server, other_gguf).status_code == 201
        assert post(server, "/api/create", {"model": "brief", "from": "tiny", "stream": False,
                                            "system": "Be brief."}).status_code == 200
        assert pull(server, remote).status_code == 200
        assert post(server, "/api/chat", long_turn).status_code == 200
        check = check_store(view / "models")
        assert check.problems == [] and check.leftovers == []
        assert len(check.manifests) == 3
        integrity, kept = conversation_db(disk / "pollama.db", mounts.launcher)
        assert integrity == "ok" and kept[:2] == messages and len(kept) == 4
        assert "Traceback" not in server.log(), server.log()[-4000:]
    finally:
        server.cleanup()


# -- the server killed (kill -9) in the middle of writes ---------------------------------------


def slow_upload(server: Server, path: Path) -> threading.Thread:
    """Upload a file as a slow client would (256 KiB every half second) in the background."""
    def chunks():
        data = path.read_bytes()
        for at in range(0, len(data), 256 << 10):
            yield data[at:at + (256 << 10)]
            time.sleep(0.5)

    def run() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{server.url}/api/blobs/{blob_digest(path)}", content=chunks(),
                       timeout=TIMEOUT)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def in_background(call) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(httpx.HTTPError):
            call()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def temp_size(models: Path) -> int:
    return sum(p.stat().st_size for p in (models / "blobs").glob("sha256-tmp-*"))


def pulled_so_far(models: Path, digest: str) -> int:
    with contextlib.suppress(OSError, ValueError, KeyError):
        part = models / "blobs" / f"{digest.replace(':', '-')}-partial-0"
        return int(json.loads(part.read_text())["Completed"])
    return 0


def restart_after_kill(server: Server, runners: list[int]) -> None:
    wait_for("the runners to end with their server", lambda: not any(map(alive, runners)),
             timeout=30)
    server.start()


@pytest.mark.long
def test_kill_9_mid_upload_pull_and_answer_leaves_a_consistent_store(
        smollm2_path, tiny_gguf, other_gguf, registry, tmp_path):
    """One kill -9 cuts a blob upload (the first half of a create), a pull and a streamed
    answer of a stored conversation at once. After the restart: every manifest has its blobs,
    no blob is visible before it is whole, the database is intact with every committed
    message; the pull resumes where it stopped, the upload starts again, and a prune removes
    the stale temp files and unused blobs and nothing else."""
    server = Server(extra_env={"OLLAMA_REPACK": "0"})
    slow = Proxy(registry.host, rate=512 << 10)
    fast = Proxy(registry.host)
    try:
        server.start()
        create_from_gguf(server, "smol", smollm2_path)
        in_registry(server, registry, tiny_gguf, "tiny")
        model_digest = blob_digest(tiny_gguf)
        size = tiny_gguf.stat().st_size
        conversation = post(server, "/api/conversations", {"model": "smol"}).json()["id"]
        first = post(server, "/api/chat", {
            "conversation": conversation, "stream": False, "options": SHORT,
            "messages": [{"role": "user", "content": "Remember: the word is PINEAPPLE."}]})
        assert first.status_code == 200
        db = server.home / ".ollama" / "pollama.db"
        _, committed = conversation_db(db)

        # The slow transfers first (half a minute each), then the answer (hundreds of greedy
        # tokens): the kill lands while all three are under way.
        uploading = slow_upload(server, other_gguf)
        pulling = in_background(lambda: pull(server, f"{slow.host}/test/tiny"))
        wait_for("the upload and the pull to be under way",
                 lambda: temp_size(server.models) >= 1 << 20
                 and pulled_so_far(server.models, model_digest) >= 1 << 20)
        question = "Write a long story about the sea, in many paragraphs."
        answer = Asking(server, "/api/chat", {
            "conversation": conversation, "messages": [{"role": "user", "content": question}],
            "options": {"num_predict": 100_000, "temperature": 0, "seed": 1}})
        answer.start()
        wait_for("the answer to stream", lambda: len(answer.lines) >= 3)
        assert not any('"done":true' in line for line in answer.lines)
        runners = kill9(server)
        for thread in (uploading, pulling, answer):
            thread.join(TIMEOUT)

        for moment in ("killed", "restarted"):
            check = check_store(server.models)
            assert check.problems == [], moment
            assert set(check.manifests) == {"registry.ollama.ai/library/smol/latest"}, moment
            assert model_digest not in check.blobs and blob_digest(other_gguf) not in check.blobs
            partial = f"{model_digest.replace(':', '-')}-partial"
            assert all(name.startswith(("sha256-tmp-", partial)) for name in check.leftovers)
            assert partial in check.leftovers, moment  # the pull's bytes, kept to resume
            assert any(name.startswith("sha256-tmp-") for name in check.leftovers), moment
            integrity, messages = conversation_db(db)
            assert integrity == "ok", moment
            # Every committed message, and the question of the cut turn (committed before
            # its answer began); the cut answer is not there.
            assert messages == [*committed, (conversation, "user", question)], moment
            if moment == "killed":
                restart_after_kill(server, runners)  # young leftovers survive its prune

        done_before = pulled_so_far(server.models, model_digest)
        assert pull(server, f"{fast.host}/test/tiny").status_code == 200
        assert fast.down <= size - done_before + (256 << 10)  # resumed, not started over
        assert upload(server, other_gguf).status_code == 201
        create = post(server, "/api/create", {"model": "other", "stream": False,
                                              "files": {"other.gguf": blob_digest(other_gguf)}})
        assert create.status_code == 200, create.text
        answers(server, "other")
        stale = [p.name for p in (server.models / "blobs").glob("sha256-tmp-*")]
        assert stale  # the cut upload's temp file, which nothing resumes

        # An hour later, the next start prunes: stale files and unused blobs go, every blob a
        # manifest uses stays (all of them are as old).
        assert httpx.request("DELETE", f"{server.url}/api/delete",
                             json={"model": f"{fast.host}/test/tiny"}).status_code == 200
        assert upload(server, tiny_gguf).status_code == 201  # a blob no model uses
        make_old(list((server.models / "blobs").iterdir()))
        server.restart()
        check = check_store(server.models)
        assert check.problems == [] and check.leftovers == [] and check.unreferenced == set()
        assert model_digest not in check.blobs
        assert set(check.manifests) == {"registry.ollama.ai/library/smol/latest",
                                        "registry.ollama.ai/library/other/latest"}
        answers(server, "smol")
        answers(server, "other")
        assert len(conversation_db(db)[1]) == 3
    finally:
        server.cleanup()
        slow.close()
        fast.close()


@pytest.mark.long
def test_kill_9_racing_rm_and_create_never_leaves_a_manifest_without_its_blobs(
        smollm2_path, tiny_gguf, registry, tmp_path):
    """rm and create take milliseconds: the kill lands before, during or after them. Whatever
    it cut, the store after a restart is whole: a model is there with all its blobs or not
    there at all."""
    server = Server(extra_env={"OLLAMA_REPACK": "0"})
    try:
        server.start()
        create_from_gguf(server, "smol", smollm2_path)
        remote = in_registry(server, registry, tiny_gguf, "tiny")
        outcomes = []
        for round_, delay in enumerate((0.02, 0.05, 0.1, 0.2, 0.4)):
            if not (server.models / "manifests" / registry.host / "test" / "tiny").exists():
                assert pull(server, remote).status_code == 200
            removing = in_background(lambda: httpx.request(
                "DELETE", f"{server.url}/api/delete", json={"model": remote}, timeout=TIMEOUT))
            creating = in_background(lambda round_=round_: post(server, "/api/create", {
                "model": f"brief-{round_}", "from": "smol", "system": f"Be brief ({round_}).",
                "template": "{{ .System }} {{ .Prompt }}", "parameters": {"temperature": 0.1},
                "license": "MIT", "stream": False}))
            time.sleep(delay)
            restart_after_kill(server, kill9(server))
            removing.join(TIMEOUT)
            creating.join(TIMEOUT)
            check = check_store(server.models)
            assert check.problems == [], (delay, check.problems)
            assert [n for n in check.leftovers if "partial" in n] == []
            outcomes.append((any(k.startswith(f"{registry.host}/test/tiny/")
                                 for k in check.manifests),
                             f"registry.ollama.ai/library/brief-{round_}/latest"
                             in check.manifests))
        print(f"\n(tiny kept, brief-N made) per kill: {outcomes}")
        make_old(list((server.models / "blobs").iterdir()))
        server.restart()
        check = check_store(server.models)
        assert check.problems == [] and check.leftovers == [] and check.unreferenced == set()
        for name in [n for n in check.manifests if "/brief-" in n]:
            answers(server, name.split("/")[2])
        answers(server, "smol")
    finally:
        server.cleanup()
