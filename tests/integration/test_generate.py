"""Generate and chat end to end: the official client against a real server and real runners."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import datetime

import httpx
import ollama
import pytest

from tests.helpers import Server, create_from_gguf

GREEDY = {"temperature": 0, "seed": 42, "num_predict": 24}


def runner_pids(server: Server) -> list[int]:
    out = subprocess.run(["pgrep", "-f", "-P", str(server.process.pid), "pollama.engine.runner"],
                         capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_generate_stream_and_not(server, smol):
    client = server.client()
    chunks = list(client.generate(model=smol, prompt="Why is the sky blue?", options=GREEDY,
                                  stream=True))
    assert all(not c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final.done_reason in ("stop", "length")
    text = "".join(c.response for c in chunks)
    assert text.strip()
    assert final.eval_count and final.eval_count <= 24
    assert final.prompt_eval_count and final.total_duration and final.load_duration is not None
    assert isinstance(final.eval_duration, int) and final.eval_duration > 0
    assert final.context and all(isinstance(t, int) for t in final.context)
    whole = client.generate(model=smol, prompt="Why is the sky blue?", options=GREEDY)
    assert whole.response == text  # temperature 0 + seed: identical text
    assert whole.done_reason == final.done_reason


def test_chat_stream_and_not(server, smol):
    client = server.client()
    messages = [{"role": "user", "content": "Name three colors."}]
    first = client.chat(model=smol, messages=messages, options=GREEDY)
    assert first.message.role == "assistant" and first.message.content.strip()
    streamed = list(client.chat(model=smol, messages=messages, options=GREEDY, stream=True))
    assert "".join(c.message.content for c in streamed) == first.message.content
    assert streamed[-1].done and streamed[-1].message.content == ""
    # A seeded, sampled answer is reproducible too.
    sampled = {"temperature": 0.8, "seed": 7, "num_predict": 16}
    a = client.chat(model=smol, messages=messages, options=sampled).message.content
    b = client.chat(model=smol, messages=messages, options=sampled).message.content
    assert a == b


def test_num_predict_gives_length(server, smol):
    r = server.client().generate(model=smol, prompt="Count from one to one hundred:",
                                 options={"temperature": 0, "num_predict": 5})
    assert r.done_reason == "length" and r.eval_count == 5


def test_stop_sequence_is_not_leaked(server, smol):
    client = server.client()
    free = client.generate(model=smol, prompt="List the planets of the solar system.",
                           options=GREEDY).response
    words = free.split()
    assert len(words) > 4
    stop = words[3]
    cut = client.generate(model=smol, prompt="List the planets of the solar system.",
                          options={**GREEDY, "stop": [stop]})
    assert stop not in cut.response
    assert free.startswith(cut.response)
    assert cut.done_reason == "stop"


def test_raw_and_context_round_trip(server, smol):
    client = server.client()
    raw = client.generate(model=smol, prompt="The capital of France is", raw=True,
                          options={"temperature": 0, "num_predict": 4})
    assert raw.response and not raw.context
    first = client.generate(model=smol, prompt="My name is Ada.", options=GREEDY)
    follow = client.generate(model=smol, prompt="What is my name?", context=first.context,
                             options=GREEDY)
    assert follow.response.strip()
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model=smol, prompt="x", raw=True, system="s")
    assert err.value.status_code == 400
    assert "raw mode does not support template, system, or context" in str(err.value)


def test_errors(server, smol):
    client = server.client()
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="missing-model", prompt="hi")
    assert err.value.status_code == 404 and "model 'missing-model' not found" in str(err.value)
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=smol, messages=[{"role": "user", "content": "x"}],
                    tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    assert err.value.status_code == 400
    assert "registry.ollama.ai/library/smollm2:135m does not support tools" in str(err.value)
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=smol, messages=[{"role": "user", "content": "x"}], think=True)
    assert '"smollm2:135m" does not support thinking' in str(err.value)
    r = httpx.post(f"{server.url}/api/generate",
                   json={"model": smol, "prompt": "x", "keep_alive": "300"})
    assert r.status_code == 400
    assert r.json() == {"error": 'time: missing unit in duration "300"'}
    r = httpx.post(f"{server.url}/api/generate",
                   json={"model": smol, "prompt": "x", "options": {"top_k": "many"}})
    assert r.json() == {"error": 'option "top_k" must be of type integer'}
    r = httpx.post(f"{server.url}/api/chat", json={"messages": []})
    assert r.status_code == 400 and r.json() == {"error": "model is required"}
    r = httpx.post(f"{server.url}/api/generate",
                   json={"model": smol, "prompt": "x", "top_logprobs": 21})
    assert r.json() == {"error": "top_logprobs must be between 0 and 20"}


def test_load_unload_and_ps(server, smol):
    client = server.client()
    r = client.generate(model=smol, prompt="", keep_alive="10m")
    assert r.done and r.done_reason == "load" and r.response == ""
    [running] = [m for m in client.ps().models if m.model == smol]
    assert running.size > 0 and running.size_vram == 0 and running.context_length == 4096
    assert running.details.family == "llama"
    remaining = (running.expires_at - datetime.now(running.expires_at.tzinfo)).total_seconds()
    assert 500 < remaining <= 600
    ps_text = server.cli("ps").stdout
    assert ps_text.splitlines()[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT",
                                               "UNTIL"]
    assert "100% CPU" in ps_text and "4096" in ps_text
    r = client.generate(model=smol, prompt="", keep_alive=0)
    assert r.done_reason == "unload"
    deadline = time.monotonic() + 10
    while any(m.model == smol for m in client.ps().models) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(m.model == smol for m in client.ps().models)
    chat = client.chat(model=smol, messages=[], keep_alive=-1)
    assert chat.done_reason == "load"
    [running] = [m for m in client.ps().models if m.model == smol]
    assert running.expires_at.year > datetime.now().year + 20
    assert "Forever" in server.cli("ps").stdout
    stop = server.cli("stop", smol)
    assert stop.returncode == 0, stop.stderr
    deadline = time.monotonic() + 10
    while client.ps().models and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.ps().models
    missing = server.cli("stop", "nothing-here")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error: couldn\'t find model "nothing-here" to stop'


def test_keep_alive_expiry(server, smol):
    client = server.client()
    client.generate(model=smol, prompt="Hi", options={"num_predict": 2}, keep_alive="1s")
    assert any(m.model == smol for m in client.ps().models)
    deadline = time.monotonic() + 15
    while any(m.model == smol for m in client.ps().models) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(m.model == smol for m in client.ps().models)


def test_four_streams_progress_together(server, smol):
    """With 4 slots, every stream gets tokens before any of them finishes."""
    first_token: dict[int, float] = {}
    finished: dict[int, float] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            client = ollama.Client(host=server.url)
            for chunk in client.generate(model=smol, prompt=f"Tell story number {i}.",
                                         options={"temperature": 0, "num_predict": 48,
                                                  "seed": i}, stream=True):
                if chunk.response and i not in first_token:
                    first_token[i] = time.monotonic()
            finished[i] = time.monotonic()
        except BaseException as err:  # surfaced below
            errors.append(err)

    server.client().generate(model=smol, prompt="")  # loaded first, so all start together
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert len(finished) == 4
    assert max(first_token.values()) < min(finished.values())


def test_cli_run_one_shot_and_pipe(server, smol):
    # A sampled answer of a 135M model may ramble for thousands of tokens: bound it.
    server.client().create(model="smol-short", from_=smol,
                           parameters={"num_predict": 24, "temperature": 0})
    out = server.cli("run", "smol-short", "Say hello", env={"OLLAMA_NOHISTORY": "1"}, input="")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "\x1b" not in out.stdout
    piped = server.cli("run", "smol-short", "--verbose", "Summarize this in one word.",
                       input="The quick brown fox jumps over the lazy dog.")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip()
    assert "eval rate:" in piped.stderr and "prompt eval count:" in piped.stderr
    bad = server.cli("run", "smol-short", "--keepalive", "5", "hi")
    assert bad.returncode == 1 and 'missing unit in duration "5"' in bad.stderr


def test_runner_crash_then_recovery(server, smol):
    client = server.client()
    client.generate(model=smol, prompt="")
    [pid] = runner_pids(server)
    stream = client.generate(model=smol, prompt="Write a very long essay about the sea.",
                             options={"num_predict": 2000, "temperature": 0}, stream=True)
    with pytest.raises(ollama.ResponseError) as err:
        for i, _chunk in enumerate(stream):
            if i == 3:
                os.kill(pid, signal.SIGKILL)
    assert "model runner has unexpectedly stopped" in str(err.value)
    # The server is still up and the next request loads the model afresh.
    r = client.generate(model=smol, prompt="Hi", options={"num_predict": 3})
    assert r.done
    assert runner_pids(server) and runner_pids(server) != [pid]


def test_client_disconnect_frees_the_slot(smollm2_path):
    srv = Server(extra_env={"OLLAMA_NUM_PARALLEL": "1"}).start()
    try:
        create_from_gguf(srv, "smol", smollm2_path)
        with httpx.stream("POST", f"{srv.url}/api/generate", json={
                "model": "smol", "prompt": "Write an endless poem.",
                "options": {"num_predict": 100000, "temperature": 0.8}}, timeout=60) as r:
            for i, _line in enumerate(r.iter_lines()):
                if i == 3:
                    break  # closing the connection cancels the generation
        # With one slot, this only finishes if the abandoned request let go of it.
        r = httpx.post(f"{srv.url}/api/generate", json={
            "model": "smol", "prompt": "Hi", "stream": False, "options": {"num_predict": 3}},
            timeout=60)
        assert r.status_code == 200 and r.json()["done"]
    finally:
        srv.cleanup()


def test_two_models_with_max_loaded_one(smollm2_path, tmp_path):
    other = tmp_path / "other.gguf"
    other.write_bytes(smollm2_path.read_bytes() + b"\0" * 32)  # another file, same weights
    srv = Server(extra_env={"OLLAMA_MAX_LOADED_MODELS": "1"}).start()
    try:
        create_from_gguf(srv, "first", smollm2_path)
        create_from_gguf(srv, "second", other)
        client = srv.client()
        client.generate(model="first", prompt="")
        assert [m.model for m in client.ps().models] == ["first:latest"]
        client.generate(model="second", prompt="")
        assert [m.model for m in client.ps().models] == ["second:latest"]
        assert len(runner_pids(srv)) == 1
    finally:
        srv.cleanup()


def test_queue_overflow_gives_503(smollm2_path):
    srv = Server(extra_env={"OLLAMA_MAX_QUEUE": "1"}).start()
    try:
        create_from_gguf(srv, "smol", smollm2_path)
        results: list[httpx.Response] = []

        def call() -> None:
            results.append(httpx.post(f"{srv.url}/api/generate", json={
                "model": "smol", "prompt": "Hi", "stream": False,
                "options": {"num_predict": 2}}, timeout=60))

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        busy = [r for r in results if r.status_code == 503]
        assert busy, [r.status_code for r in results]
        assert busy[0].json() == {"error": "server busy, please try again.  maximum pending "
                                           "requests exceeded"}
        assert any(r.status_code == 200 for r in results)
    finally:
        srv.cleanup()


def test_stream_lines_are_ndjson(server, smol):
    with httpx.stream("POST", f"{server.url}/api/chat", json={
            "model": smol, "messages": [{"role": "user", "content": "Hi"}],
            "options": {"num_predict": 4}}) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[-1]["done"] is True
    assert lines[0]["created_at"].endswith("Z")


def test_load_time_options_reload_the_runner(server, smol):
    client = server.client()
    client.generate(model=smol, prompt="", keep_alive=600)
    [first] = runner_pids(server)
    client.generate(model=smol, prompt="Hi", options={"num_predict": 2, "temperature": 0.5})
    assert runner_pids(server) == [first]  # sampling options do not reload
    client.generate(model=smol, prompt="Hi", options={"num_predict": 2, "num_ctx": 2048})
    [running] = [m for m in client.ps().models if m.model == smol]
    assert running.context_length == 2048
    assert runner_pids(server) != [first] and len(runner_pids(server)) == 1
    client.generate(model=smol, prompt="", keep_alive=0)


@pytest.mark.parametrize(("options", "message"), [
    ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
    ({"num_ctx": "big"}, 'option "num_ctx" must be of type integer'),
    ({"use_mmap": "yes"}, 'option "use_mmap" must be of type boolean'),
    ({"stop": 5}, 'option "stop" must be of type array'),
    ({"stop": ["a", 1]}, 'option "stop" must be of an array of strings'),
])
def test_wrong_option_types_are_bad_requests(server, smol, options, message):
    """GF-01: an option of the wrong JSON type is the client's fault: 400 with Ollama's text
    (Ollama answers 500), on generate and chat, streamed or not, and on a load request."""
    chat = [{"role": "user", "content": "Hi"}]
    for path, body in [("/api/generate", {"prompt": "Hi"}),
                       ("/api/generate", {"prompt": "Hi", "stream": False}),
                       ("/api/generate", {}),  # load only
                       ("/api/chat", {"messages": chat}),
                       ("/api/chat", {"messages": chat, "stream": False}),
                       ("/api/chat", {"messages": []})]:  # load only
        r = httpx.post(f"{server.url}{path}", json={"model": smol, **body, "options": options})
        assert (r.status_code, r.json()) == (400, {"error": message}), (path, body)
    with pytest.raises(ollama.ResponseError) as err:
        server.client().chat(model=smol, messages=chat, options=options)
    assert err.value.status_code == 400 and err.value.error == message
