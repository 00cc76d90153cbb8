"""Quantize a GGUF file with llama.cpp's own quantizer (`llama_model_quantize`), in a child.

The quantizer runs in a child process, as runners do, so that a crash inside llama.cpp cannot
take the server down, and so that stopping it (a client that went away) is killing the child.
The child logs llama.cpp's lines on stderr; the parent reads them: each tensor llama.cpp
finishes is a line `[  12/ 272] blk.0.ffn_down.weight - [...], type = f16, converting to q4_K
.. size = ...`, which becomes a `QuantizeProgress`. Tensors whose rows are not a multiple of a
K-quant's 256-element block fall back to another type, tensor by tensor; llama.cpp counts them
(`WARNING: 180 of 272 tensor(s) required fallback quantization`) and so does `QuantizeResult`.

The quantizer reads the source through plain host memory (no backend buffers, so none of the
AMX or repacked weight layouts the CPU probe guards). The child exits when its stdin closes
(the server died) and removes its unfinished output.

    python -m pollama.engine.quantize SOURCE OUTPUT TYPE [--threads N] [--allow-requantize]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pollama.engine.cpu_probe import describe_exit
from pollama.engine.errors import EngineError

log = logging.getLogger("pollama.quantize")

# Ollama's quantization names (fs/ggml ParseFileType) → llama.cpp's `llama_ftype`.
FILE_TYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "Q4_K_S": 14, "Q4_K_M": 15, "BF16": 32}

_TENSOR_LINE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
_FALLBACK_LINE = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback quantization")
_SIZE_LINE = re.compile(r"(model|quant) size\s*=\s*(.+)$")
_ERROR_PREFIX = "pollama-quantize error: "  # the child's last line when llama.cpp failed


class QuantizeError(EngineError):
    """llama.cpp's quantizer failed or its process died (Ollama: `llama-quantize failed`)."""


@dataclass(frozen=True, slots=True)
class QuantizeProgress:
    """`done` of `total` tensors are written; `tensor` is the last one finished."""

    done: int
    total: int
    tensor: str


@dataclass(frozen=True, slots=True)
class QuantizeResult:
    tensors: int
    fallback_tensors: int  # tensors written in a non-K type because their rows don't fit
    model_size: str  # llama.cpp's summary, e.g. "256.63 MiB (16.00 BPW)"
    quant_size: str
    seconds: float


def quantize_command(source: Path, output: Path, file_type: str, *, threads: int = 0,
                     allow_requantize: bool = False) -> list[str]:
    args = [sys.executable, "-m", "pollama.engine.quantize", os.fspath(source),
            os.fspath(output), file_type, "--threads", str(threads)]
    if allow_requantize:
        args.append("--allow-requantize")
    return args


def quantize_gguf(source: Path, output: Path, file_type: str,
                  progress: Callable[[QuantizeProgress], None], *, threads: int = 0,
                  allow_requantize: bool = False, heartbeat: float = 1.0) -> QuantizeResult:
    """Write `source` quantized to `file_type` (a FILE_TYPES key) into `output`; blocking.

    `progress` is called for every finished tensor, and at least every `heartbeat` seconds
    with the latest state (so a caller can stop the work by raising from it: the child is
    killed, `output` removed and the exception re-raised). On failure `output` is removed too.
    `allow_requantize` lets a quantized source be re-quantized (test fixtures only: the
    server refuses quantized sources, as Ollama does).
    """
    if file_type not in FILE_TYPES:
        raise ValueError(f"unknown file type {file_type!r}")
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # so the child imports this pollama
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    started = time.monotonic()
    proc = subprocess.Popen(
        quantize_command(source, output, file_type, threads=threads,
                         allow_requantize=allow_requantize),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        start_new_session=True)  # a Ctrl+C meant for the server does not reach it
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    reader = threading.Thread(target=_read_lines, args=(proc, lines), name="quantize-log",
                              daemon=True)
    reader.start()
    state = QuantizeProgress(0, 0, "")
    fallback = 0
    sizes = {"model": "", "quant": ""}
    error = ""
    try:
        while True:
            try:
                line = lines.get(timeout=heartbeat)
            except queue.Empty:
                progress(state)
                continue
            if line is None:
                break
            if m := _TENSOR_LINE.match(line):
                state = QuantizeProgress(int(m.group(1)), int(m.group(2)), m.group(3))
                progress(state)
                continue
            if m := _FALLBACK_LINE.search(line):
                fallback = int(m.group(1))
            elif m := _SIZE_LINE.search(line):
                sizes[m.group(1)] = m.group(2).strip()
            if line.startswith(_ERROR_PREFIX):
                error = line[len(_ERROR_PREFIX):].strip()
        code = proc.wait()
    except BaseException:
        _kill(proc)
        output.unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
    if code != 0:
        output.unlink(missing_ok=True)
        raise QuantizeError(f"llama-quantize failed: {error or describe_exit(code)}")
    result = QuantizeResult(state.total, fallback, sizes["model"], sizes["quant"],
                            time.monotonic() - started)
    log.info("quantized %s to %s in %.1f s: %d tensors (%d fell back to a non-K type, their "
             "rows not a multiple of 256), %s -> %s", source.name, file_type, result.seconds,
             result.tensors, result.fallback_tensors, result.model_size, result.quant_size)
    return result


def _read_lines(proc: subprocess.Popen[bytes], lines: queue.SimpleQueue[str | None]) -> None:
    assert proc.stderr is not None
    try:
        for raw in proc.stderr:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
    finally:
        lines.put(None)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End the child (and anything it started) now; llama.cpp has nothing worth saving."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


# -- the child --------------------------------------------------------------------------------

def _exit_when_parent_goes(output: Path) -> None:
    """stdin reaches EOF when the server is gone: stop, leaving no half-written file."""
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    output.unlink(missing_ok=True)
    os._exit(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pollama.engine.quantize")
    parser.add_argument("source", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("file_type", choices=sorted(FILE_TYPES))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--allow-requantize", action="store_true")
    args = parser.parse_args(argv)
    threading.Thread(target=_exit_when_parent_goes, args=(args.output,), daemon=True).start()

    import ctypes

    from llama_cpp import llama_cpp as C

    from pollama.engine.model import last_error, physical_cores  # sets the log callback

    C.llama_backend_init()
    params = C.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[args.file_type]
    params.nthread = args.threads if args.threads > 0 else physical_cores()
    params.allow_requantize = args.allow_requantize
    # ctypes releases the GIL for the call, so the stdin watcher keeps running meanwhile.
    code = C.llama_model_quantize(os.fsencode(args.source), os.fsencode(args.output),
                                  ctypes.byref(params))
    if code != 0:
        reason = last_error().partition("failed to quantize: ")[2] or last_error()
        print(f"{_ERROR_PREFIX}{reason or f'llama_model_quantize returned {code}'}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    os._exit(status)  # the stdin watcher may still be blocked in read(); don't wait for it
