"""Load on a real server (OLLAMA_NUM_PARALLEL=4, OLLAMA_MAX_QUEUE=8, SmolLM2, loopback only):
every request is answered in full or refused with Ollama's 503 text, none hangs or fails
otherwise; streaming clients that vanish give their slots back; memory does not run away.

The big runs (50 clients, 200 and 1,000 requests) are marked long (`make test-long`);
`bench/bench_load.py` prints the same run's figures against a single-client baseline.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Server, create_from_gguf
from tests.load import KINDS, Report, memory, run_load

MODEL = "smollm2:135m"
TIMEOUT = 600  # a request unanswered this long counts as hung
LONG_ANSWER = "root ::= [a-z]{300}"  # a grammar no answer can end before 300 letters
# 30,000 letters (llama.cpp caps one repetition at 2,000): with num_predict -1, an answer that
# goes on far longer than any test
ENDLESS = "root ::= " + " ".join(["[a-z]{1000}"] * 30)


@pytest.fixture(scope="module")
def busy(smollm2_path):
    srv = Server(extra_env={"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_MAX_QUEUE": "8",
                            "OMP_WAIT_POLICY": "PASSIVE"}).start()
    create_from_gguf(srv, MODEL, smollm2_path)
    yield srv
    srv.cleanup()


def unload(server: Server) -> None:
    r = httpx.post(f"{server.url}/api/generate", json={"model": MODEL, "keep_alive": 0},
                   timeout=TIMEOUT)
    assert r.status_code == 200
    assert httpx.get(f"{server.url}/api/ps").json()["models"] == []


def check(report: Report, total: int) -> None:
    print(report.summary())
    print(f"  p50/slowest by kind: {report.by_kind()}")
    assert report.failures == [], report.failures[:5]
    assert len(report.outcomes) == total
    assert report.count(200) + report.count(503) == total


def test_a_burst_on_a_cold_model_is_answered_or_told_busy(busy):
    """Clients arriving while the model loads wait in the queue (8), the rest get Ollama's 503
    at once; nobody hangs, and every kind of request works once the model is up."""
    unload(busy)
    cold = run_load(busy.url, MODEL, total=24, clients=24, timeout=TIMEOUT)
    check(cold, 24)
    assert cold.count(503) > 0 and cold.count(200) > 0
    warm = run_load(busy.url, MODEL, total=28, clients=10, timeout=TIMEOUT)
    check(warm, 28)
    answered = {o.kind for o in warm.outcomes if o.status == 200}
    assert answered == set(KINDS)


def in_flight(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "pollama_model_requests_in_flight":
            return sum(s.value for s in family.samples)
    return 0.0


def test_streaming_clients_that_vanish_free_their_slots(busy):
    """20 clients read the first chunk of an answer that would never end and close the
    socket: each next one gets a slot (a slot kept for a client that left would hold it
    forever, and the clients after it would hang). Then 4 answers all start before any of them
    ends: every slot is free."""
    httpx.post(f"{busy.url}/api/generate", json={"model": MODEL}, timeout=TIMEOUT)  # loaded

    def vanish(n: int) -> None:
        with httpx.Client(base_url=busy.url, timeout=300) as client, client.stream(
                "POST", "/api/generate", json={
                    "model": MODEL, "prompt": f"Write letters, take {n}.",
                    "options": {"grammar": ENDLESS, "num_predict": -1}}) as r:
            assert r.status_code == 200
            assert json.loads(next(r.iter_lines()))["done"] is False
        # leaving both blocks closes the connection with the answer unfinished

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(vanish, range(20)))
    deadline = time.monotonic() + TIMEOUT
    while in_flight(busy) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert in_flight(busy) == 0  # the scheduler let go of all 20

    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def probe(n: int) -> None:
        with httpx.stream("POST", f"{busy.url}/api/generate", json={
                "model": MODEL, "prompt": f"Letters again, probe {n}.",
                "options": {"grammar": LONG_ANSWER, "num_predict": 120}},
                timeout=TIMEOUT) as r:
            lines = r.iter_lines()
            next(lines)
            with lock:
                events.append(("first", n))
            last = [json.loads(line) for line in lines if line][-1]
            with lock:
                events.append(("done", n))
        assert last["done"] is True

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(probe, range(4)))
    assert [kind for kind, _ in events[:4]] == ["first"] * 4, events


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_200_requests_from_50_clients(busy):
    unload(busy)
    cold = run_load(busy.url, MODEL, total=50, clients=50, timeout=TIMEOUT)
    check(cold, 50)
    report = run_load(busy.url, MODEL, total=200, clients=50, timeout=TIMEOUT)
    check(report, 200)
    assert report.count(200) > 0


@pytest.mark.long
@pytest.mark.timeout(3600)
def test_memory_returns_to_its_baseline_over_1000_requests(busy):
    """RSS of the server and of its runner after a warm-up, then after 1,000 more requests:
    printed, and bounded generously (a leak of a few KB a request would pass; a runaway
    would not)."""
    warm = run_load(busy.url, MODEL, total=100, clients=16, timeout=TIMEOUT)
    check(warm, 100)
    assert busy.process is not None
    server_before, runner_before = memory(busy.process.pid)
    report = run_load(busy.url, MODEL, total=1000, clients=16, timeout=TIMEOUT)
    check(report, 1000)
    server_after, runner_after = memory(busy.process.pid)
    mib = 1 << 20
    print(f"RSS server {server_before / mib:.0f} → {server_after / mib:.0f} MiB, runner "
          f"{runner_before / mib:.0f} → {runner_after / mib:.0f} MiB")
    assert server_after - server_before < 128 * mib
    assert runner_after - runner_before < 256 * mib
