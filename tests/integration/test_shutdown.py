"""`pollama serve` told to stop (Ctrl-C = SIGINT, or SIGTERM) while answers stream in every
dialect: each stream ends with its error line, the runners stop, the process exits, and the
log holds no traceback. The time it takes is printed (`-s`), never asserted."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from tests.faults import alive, runner_pids, wait_for
from tests.helpers import Server, create_from_gguf

SHUTTING_DOWN = "the server is shutting down"
ENDLESS = "Write an endless poem about the sea."
LONG = 100_000

STREAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "generate": ("/api/generate", {"model": "smol", "prompt": ENDLESS,
                                   "options": {"num_predict": LONG}}),
    "chat": ("/api/chat", {"model": "smol", "messages": [{"role": "user", "content": ENDLESS}],
                           "options": {"num_predict": LONG}}),
    "openai": ("/v1/chat/completions", {"model": "smol", "stream": True, "max_tokens": LONG,
                                        "messages": [{"role": "user", "content": ENDLESS}]}),
    "anthropic": ("/v1/messages", {"model": "smol", "stream": True, "max_tokens": LONG,
                                   "messages": [{"role": "user", "content": ENDLESS}]}),
}


class Reader(threading.Thread):
    """Reads one streaming answer to its end; notes when its third line arrived."""

    def __init__(self, url: str, path: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.path, self.body = url + path, path, body
        self.lines: list[str] = []
        self.streaming = threading.Event()
        self.ended_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=120) as r:
                assert r.status_code == 200, r.read()
                for line in r.iter_lines():
                    if line:
                        self.lines.append(line)
                    if len(self.lines) >= 3:
                        self.streaming.set()
        except BaseException as err:  # reported by the test
            self.error = err
        finally:
            self.ended_at = time.monotonic()
            self.streaming.set()


def error_line(kind: str, lines: list[str]) -> Any:
    """The error a stream ended with, in its dialect's shape."""
    if kind in ("generate", "chat"):
        return json.loads(lines[-1])
    if kind == "openai":
        assert lines[-1].startswith("data: ")
        return json.loads(lines[-1].removeprefix("data: "))
    assert lines[-2] == "event: error", lines[-3:]
    return json.loads(lines[-1].removeprefix("data: "))


# Ctrl-C in every suite; SIGTERM (the same handler, uvicorn re-raises it) with the long tests.
@pytest.mark.parametrize("sig", [
    pytest.param(signal.SIGINT, id="SIGINT"),
    pytest.param(signal.SIGTERM, id="SIGTERM", marks=pytest.mark.long)])
def test_stop_signal_ends_every_stream_with_an_error_then_the_runners(smollm2_path, sig):
    srv = Server(extra_env={"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_REPACK": "0"})
    srv.new_session = True  # a Ctrl-C reaches the server alone, as from its own terminal
    srv.start()
    try:
        create_from_gguf(srv, "smol", smollm2_path)
        readers = {kind: Reader(srv.url, *request) for kind, request in STREAMS.items()}
        for reader in readers.values():
            reader.start()
        for kind, reader in readers.items():
            assert reader.streaming.wait(120), kind
            assert reader.error is None and len(reader.lines) >= 3, (kind, reader.error)
        [runner] = runner_pids(srv)
        assert srv.process is not None

        signalled = time.monotonic()
        srv.process.send_signal(sig)
        srv.process.wait(30)  # a hang guard, not a timing
        exited = time.monotonic()
        for reader in readers.values():
            reader.join(30)
        wait_for("the runner to end", lambda: not alive(runner), timeout=30)
        print(f"\n{sig.name}: exited {exited - signalled:.2f} s after the signal "
              f"(status {srv.process.returncode})")

        assert srv.process.returncode in (0, -sig)  # uvicorn re-raises a SIGTERM it handled
        for kind, reader in readers.items():
            assert reader.error is None, (kind, reader.error)
            error = error_line(kind, reader.lines)
            if kind == "openai":
                assert error["error"]["message"] == SHUTTING_DOWN
            elif kind == "anthropic":
                assert error["type"] == "error" and error["error"]["message"] == SHUTTING_DOWN
            else:
                assert error == {"error": SHUTTING_DOWN}
            assert reader.ended_at <= exited  # each stream was ended by the server, not cut
        log = srv.log()
        assert "Traceback" not in log and "graceful shutdown exceeded" not in log, log[-4000:]
        assert f"received {sig.name}, shutting down" in log
        assert "ending 4 request(s) in progress" in log
    finally:
        srv.cleanup()


def test_an_answer_not_yet_sent_is_a_503(smollm2_path):
    """The signal arrives while the model loads for a `stream: false` request: it is answered
    with an error, not dropped."""
    srv = Server(extra_env={"OLLAMA_REPACK": "0"}).start()
    try:
        create_from_gguf(srv, "smol", smollm2_path)
        answers: list[httpx.Response | httpx.HTTPError] = []

        def ask() -> None:
            try:
                answers.append(httpx.post(srv.url + "/api/generate", timeout=120, json={
                    "model": "smol", "prompt": "Hi", "stream": False}))
            except httpx.HTTPError as err:
                answers.append(err)

        asking = threading.Thread(target=ask)
        asking.start()
        [runner] = wait_for("the runner to start loading", lambda: runner_pids(srv))
        assert srv.process is not None
        srv.process.send_signal(signal.SIGTERM)
        asking.join(60)
        srv.process.wait(30)
        wait_for("the runner to end", lambda: not alive(runner), timeout=30)
        [answer] = answers
        assert isinstance(answer, httpx.Response), (answer, srv.log()[-3000:])
        assert answer.status_code == 503 and answer.json() == {"error": SHUTTING_DOWN}, (
            answer.text, srv.log()[-3000:])
        assert "Traceback" not in srv.log(), srv.log()[-4000:]
    finally:
        srv.cleanup()
