"""Quantize throughput (llama.cpp's quantizer in pollama's child process) next to a file copy.

The source is SmolLM2-135M as F16 (271 MB, written by tests/unquantized.py). For each type,
pollama's `engine.quantize.quantize_gguf` (a child process: Python start, llama.cpp load, the
quantizer, the output written) and then the store's commit of the result (sha256 + fsync +
rename: what `/api/create` adds), against `shutil.copyfile` of the same input bytes, in the same
run, interleaved. MB/s = input bytes / seconds. Prints the figures and the ratio
(quantize MB/s / copy MB/s; the median of the per-round ratios, with their range), and how many
threads llama.cpp used. Asserts nothing.

    PYTHONPATH=src:. .venv/bin/python bench/bench_quantize.py [--runs 5] [--types Q8_0,Q4_K_M]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.unquantized import f16_smollm2  # noqa: E402

from pollama.engine.model import physical_cores  # noqa: E402
from pollama.engine.quantize import FILE_TYPES, quantize_gguf  # noqa: E402
from pollama.store import Store  # noqa: E402

MB = 1000 * 1000


def time_copy(source: Path, work: Path) -> float:
    target = work / "copy.gguf"
    start = time.perf_counter()
    shutil.copyfile(source, target)
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def time_quantize(source: Path, store: Store, file_type: str) -> tuple[float, float, int]:
    """(seconds quantizing, seconds committing to the store, output bytes)."""
    output = store.blobs.temp_path()
    start = time.perf_counter()
    quantize_gguf(source, output, file_type, lambda _step: None)
    quantized = time.perf_counter() - start
    digest, size, _ = store.blobs.commit_file(output)
    committed = time.perf_counter() - start - quantized
    store.blobs.remove(digest)
    return quantized, committed, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--types", default="Q8_0,Q4_K_M")
    args = parser.parse_args()
    types = [t.strip().upper() for t in args.types.split(",")]
    unknown = [t for t in types if t not in FILE_TYPES]
    if unknown:
        sys.exit(f"unknown types {unknown}; known: {sorted(FILE_TYPES)}")

    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        work = Path(tmp)
        source = f16_smollm2(work)
        size = source.stat().st_size / MB
        store = Store(work / "models")
        print(f"source: {source.name}, {size:.1f} MB; quantizer threads: {physical_cores()}")
        print(f"{'type':<8}{'out MB':>8}{'copy MB/s':>11}{'quant MB/s':>12}{'ratio':>7}"
              f"{'+commit MB/s':>14}{'ratio':>7}")
        time_copy(source, work)  # warm the page cache for both
        for file_type in types:
            copies, quants, totals = [], [], []
            out_size = 0
            for _ in range(args.runs):
                copies.append(time_copy(source, work))
                quantized, committed, out_size = time_quantize(source, store, file_type)
                quants.append(quantized)
                totals.append(quantized + committed)
            ratios = sorted(c / q for c, q in zip(copies, quants, strict=True))
            with_commit = statistics.median(c / t for c, t in zip(copies, totals, strict=True))
            copy, quant = statistics.median(copies), statistics.median(quants)
            total = statistics.median(totals)
            print(f"{file_type:<8}{out_size / MB:>8.1f}{size / copy:>11.1f}{size / quant:>12.1f}"
                  f"{statistics.median(ratios):>7.3f}{size / total:>14.1f}{with_commit:>7.3f}"
                  f"   [{ratios[0]:.3f}..{ratios[-1]:.3f}]")


if __name__ == "__main__":
    main()
