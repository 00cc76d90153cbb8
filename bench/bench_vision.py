"""Benchmark of images in the engine: prints figures and same-run ratios, never asserts.

    .venv/bin/python bench/bench_vision.py [--rounds 5] [--image-size 448] [--blocks 16]

Model: tests/vision.py's random-weight vision model (a 2-layer Llama text model with SmolLM2's
tokenizer) with a heavier LLaVA mlp projector than the tests' (`--image-size` / 14 squared
tokens an image, `--blocks` encoder blocks of width 384), so an encode takes a noticeable time.
Threads: 2 for the runner (and so for its encoder).

(a) time to first token of one image + a short question (a new image each round, so it is
    decoded, encoded and decoded into the slot) against the same question without the image.
(b) tokens/s of a text-only stream while another request's image is being read, encoded and
    decoded (the window from sending the image request to its end), against the same stream
    over the same token positions with nothing else running. The encoder runs on the runner's
    worker thread, so the stream keeps going; both share the machine's cores, so a ratio below
    1 is the encoder's CPU share.

Each round runs candidate and baseline back to back; the ratio printed is the median of the
per-round ratios, with its range.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.vision import solid_png, write_vision_model

from pollama.engine import RunnerHandle

THREADS = 2
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
STORY = CHAT.format("Tell me a long story about a lighthouse.")


async def first_token(runner: RunnerHandle, prompt: str, images: list[bytes]) -> float:
    """Seconds from sending the request to its first text chunk."""
    t0 = time.perf_counter()
    first = 0.0
    request = {"prompt": prompt, "images": images,
               "options": {"temperature": 0, "num_predict": 2}}
    async for chunk in runner.completion(request):
        if not chunk.get("done") and not first:
            first = time.perf_counter() - t0
    return first


async def stream(runner: RunnerHandle, n_tokens: int, image: bytes | None,
                 marker: str) -> tuple[list[float], tuple[float, float] | None]:
    """Arrival times of a text-only stream's chunks; with `image`, also the window in which
    another request with that image ran (sent once the stream is going)."""
    stamps: list[float] = []
    window: list[float] = []

    async def text() -> None:
        request = {"prompt": STORY, "options": {"temperature": 0, "num_predict": n_tokens}}
        async for chunk in runner.completion(request):
            if not chunk.get("done"):
                stamps.append(time.perf_counter())

    async def with_image() -> None:
        while len(stamps) < 10:
            await asyncio.sleep(0.001)
        window.append(time.perf_counter())
        request = {"prompt": CHAT.format(marker + "What is it?"), "images": [image],
                   "options": {"temperature": 0, "num_predict": 1}}
        async for _ in runner.completion(request):
            pass
        window.append(time.perf_counter())

    if image is None:
        await text()
        return stamps, None
    await asyncio.gather(text(), with_image())
    return stamps, (window[0], window[1])


async def stream_rates(runner: RunnerHandle, n_tokens: int, image: bytes,
                       marker: str) -> tuple[float, float]:
    """(alone, busy): chunks/s of the stream over the same chunk positions (the context
    grows along a stream, so later tokens cost more), alone and while the image ran."""
    busy_stamps, window = await stream(runner, n_tokens, image, marker)
    assert window is not None
    start, end = window
    inside = [i for i, t in enumerate(busy_stamps) if start <= t <= end]
    if len(inside) < 2:
        return 1.0, 0.0
    first, last = inside[0], inside[-1]
    busy = len(inside) / (end - start)
    alone_stamps, _ = await stream(runner, n_tokens, None, marker)
    alone = (last - first) / (alone_stamps[last] - alone_stamps[first])
    return alone, busy


def _ratios(pairs: list[tuple[float, float]]) -> tuple[float, float, float, float, float]:
    m = statistics.median
    ratios = sorted(b / a for a, b in pairs)
    return m(a for a, _ in pairs), m(b for _, b in pairs), m(ratios), ratios[0], ratios[-1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=800)
    args = parser.parse_args()
    patch = 14
    n_image = (args.image_size // patch) ** 2
    root = tempfile.mkdtemp(prefix="bench-vision-")
    text, projector = write_vision_model(root, image_size=args.image_size, patch_size=patch,
                                         vision_width=384, vision_blocks=args.blocks)
    print(f"tiny random-weight vision model: {n_image} tokens an image, {args.blocks} encoder "
          f"blocks of width 384; threads {THREADS}, {args.rounds} rounds; load average "
          f"{os.getloadavg()[0]:.2f}")
    runner = await RunnerHandle.start(text, num_ctx=4096, num_parallel=2, num_thread=THREADS,
                                      projector=projector)
    marker = runner.info["media_marker"]
    try:
        question = "What is in this picture?"
        await first_token(runner, CHAT.format(question), [])  # warm up
        ttft, rates = [], []
        colour = 0
        for _ in range(args.rounds):
            colour += 1
            image = solid_png((colour * 37 % 256, colour * 91 % 256, colour * 13 % 256))
            plain = await first_token(runner, CHAT.format(question), [])
            seen = await first_token(runner, CHAT.format(marker + question), [image])
            ttft.append((plain, seen))
            colour += 1
            image = solid_png((colour * 37 % 256, colour * 91 % 256, colour * 13 % 256))
            rates.append(await stream_rates(runner, args.tokens, image, marker))
        status = await runner.status()
        plain, seen, ratio, lo, hi = _ratios(ttft)
        print("\n(a) time to first token (medians)")
        print(f"    question alone               {plain * 1e3:8.1f} ms   (baseline)")
        print(f"    one new image + question     {seen * 1e3:8.1f} ms   ratio {ratio:.1f} "
              f"[{lo:.1f}..{hi:.1f}]")
        alone, busy, ratio, lo, hi = _ratios(rates)
        print("\n(b) a text stream's chunks/s (one chunk a token while the client keeps up)")
        print(f"    stream alone                 {alone:8.1f} /s   (baseline)")
        print(f"    while an image is processed  {busy:8.1f} /s   ratio {ratio:.2f} "
              f"[{lo:.2f}..{hi:.2f}]  (0 would mean the loop stalls on the encoder)")
        print(f"\nimages encoded {status.get('images_encoded')}; load average at the end "
              f"{os.getloadavg()[0]:.2f}")
    finally:
        await runner.close()


if __name__ == "__main__":
    asyncio.run(main())
