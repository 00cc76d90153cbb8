"""Can this CPU run llama.cpp's extra buffer types? Asked once per machine, in a child process.

llama.cpp moves weights into "extra buffer types" when CPUID says the CPU can use them: AMX
tiles on recent Intel Xeons, repacked Q4_0/IQ4_NL/Q4_K layouts for AVX2/AVX512. Some virtual
machines advertise AMX but fault on its first `tileloadd` (SIGILL or a general protection fault,
SIGSEGV), which kills every runner. So before the first runner starts, a child process builds a
tiny Q4_0 model (every matmul eligible for AMX and for the repacks), loads it with the extra
buffer types on and decodes a batch of 16 tokens and then one token (AMX's two kernels). A
child killed by a fault signal means "off"; a clean exit means "on". The verdict is remembered
in `<home>/cpu-probe.json` under a key made of the CPU's model and flags and the llama.cpp
build, so a new CPU or a new engine asks again. OLLAMA_REPACK=1/0 skips the probe.

    python -m pollama.engine.cpu_probe      # the child: exit 0 when the fast path runs
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import platform
import signal
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

log = logging.getLogger("pollama.cpu_probe")

PROBE_VERSION = 1  # bump when the probe itself changes what it exercises
FAULT_SIGNALS = (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)
CACHE_FILE = "cpu-probe.json"


@dataclass(frozen=True)
class Verdict:
    """Whether runners load weights into llama.cpp's extra buffer types, and why."""

    repack: bool
    reason: str


def describe_exit(returncode: int | None) -> str:
    """`signal 4 (SIGILL, illegal instruction)` for a death by signal, else `exit status N`."""
    if returncode is not None and returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"signal {-returncode}"
        return f"signal {sig.value} ({sig.name}, {(signal.strsignal(sig) or sig.name).lower()})"
    return f"exit status {returncode}"


def machine_key() -> str:
    """The CPU (model name and feature flags), the architecture and the llama.cpp build."""
    model = flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Processor") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(value.split()))
                if model and flags:
                    break
    except OSError:
        pass
    try:
        engine = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        engine = "unknown"
    text = f"{PROBE_VERSION}|{platform.machine()}|{model}|{flags}|{engine}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def probe_command() -> list[str]:
    """The child that exercises the extra buffer types (see `main`)."""
    return [sys.executable, "-m", "pollama.engine.cpu_probe"]


async def run_probe(command: list[str] | None = None, timeout: float = 120.0) -> Verdict | None:
    """Run the probe child; None when it failed for a reason that says nothing about the CPU."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # so the child imports this pollama
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = await asyncio.create_subprocess_exec(
        *(command or probe_command()), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        start_new_session=True)
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        log.warning("the CPU probe did not finish in %.0f s", timeout)
        return None
    tail = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    code = proc.returncode
    if code == 0:
        return Verdict(True, f"extra buffer types work on this CPU ({tail[0]})")
    if code is not None and code < 0 and -code in FAULT_SIGNALS:
        return Verdict(False, f"the probe with extra buffer types died of {describe_exit(code)}")
    log.warning("the CPU probe failed (%s): %s", describe_exit(code), tail[0])
    return None


class RepackDecision:
    """The verdict for this server: from OLLAMA_REPACK, the cache file, or one probe."""

    def __init__(self, setting: bool | None, home: Path,
                 command: list[str] | None = None) -> None:
        self.setting = setting
        self.path = home / CACHE_FILE
        self.command = command
        self._verdict: Verdict | None = None
        self._lock = asyncio.Lock()

    async def verdict(self) -> Verdict:
        """Decide once (probing at most once per machine and engine) and remember."""
        if self._verdict is not None:
            return self._verdict
        async with self._lock:
            if self._verdict is None:
                self._verdict = await self._decide()
                log.info("weights repack (extra buffer types): %s: %s",
                         "on" if self._verdict.repack else "off", self._verdict.reason)
        return self._verdict

    async def _decide(self) -> Verdict:
        if self.setting is not None:
            return Verdict(self.setting, f"OLLAMA_REPACK={int(self.setting)}")
        key = machine_key()
        cached = self._read().get(key)
        if isinstance(cached, dict) and isinstance(cached.get("repack"), bool):
            return Verdict(cached["repack"], f"{cached.get('reason', '')} (cached)")
        verdict = await run_probe(self.command)
        if verdict is None:  # unknown: take the safe path now, ask again next start
            return Verdict(False, "the CPU probe failed; weights are not repacked for now")
        if not verdict.repack:
            log.warning("%s: runners load weights without extra buffer types (slower on some "
                        "models); set OLLAMA_REPACK=1 to force them", verdict.reason)
        self._write(key, verdict)
        return verdict

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, key: str, verdict: Verdict) -> None:
        data = self._read()
        data[key] = {"repack": verdict.repack, "reason": verdict.reason}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False,
                                             prefix=".cpu-probe-") as f:
                json.dump(data, f, indent=1)
            os.replace(f.name, self.path)
        except OSError as err:  # an unwritable home costs a probe per start, nothing else
            log.warning("could not remember the CPU probe's verdict in %s: %s", self.path, err)


_default: RepackDecision | None = None


async def default_verdict() -> Verdict:
    """The verdict for OLLAMA_REPACK and the home of this process's environment (what a runner
    started without an explicit `repack` uses)."""
    global _default
    if _default is None:
        from pollama.config import Config

        config = Config.from_env()
        _default = RepackDecision(config.repack, config.home)
    return await _default.verdict()


# -- the child --------------------------------------------------------------------------------

N_EMBD, N_FF, N_HEAD, N_VOCAB = 128, 256, 4, 64


def write_probe_model(path: Path) -> None:
    """A one-layer llama with random Q4_0 weights, shaped for AMX tiles and the repacks."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list([b"<unk>", b"<s>", b"</s>"] + [f"t{i}".encode() for i in range(3, N_VOCAB)])
    w.add_token_scores([0.0] * N_VOCAB)
    w.add_token_types([2, 3, 3] + [1] * (N_VOCAB - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def q4(name: str, rows: int, cols: int) -> None:
        data = rng.standard_normal((rows, cols), dtype=np.float32) * 0.05
        w.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q4_0),
                     raw_dtype=gguf.GGMLQuantizationType.Q4_0)

    def norm(name: str) -> None:
        w.add_tensor(name, np.ones(N_EMBD, dtype=np.float32))

    q4("token_embd.weight", N_VOCAB, N_EMBD)
    norm("output_norm.weight")
    q4("output.weight", N_VOCAB, N_EMBD)
    norm("blk.0.attn_norm.weight")
    for part in ("q", "k", "v", "output"):
        q4(f"blk.0.attn_{part}.weight", N_EMBD, N_EMBD)
    norm("blk.0.ffn_norm.weight")
    q4("blk.0.ffn_gate.weight", N_FF, N_EMBD)
    q4("blk.0.ffn_up.weight", N_FF, N_EMBD)
    q4("blk.0.ffn_down.weight", N_EMBD, N_FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> int:
    """Load the probe model with extra buffer types and decode 16 tokens, then 1."""
    from llama_cpp import llama_cpp as C

    from pollama.engine.model import LoadedModel, LoadOptions

    with tempfile.TemporaryDirectory(prefix="pollama-probe-") as tmp:
        path = Path(tmp) / "probe.gguf"
        write_probe_model(path)
        model = LoadedModel(str(path), LoadOptions(num_ctx=64, num_batch=32, repack=True))
        try:
            b = model.batch.batch
            for n, tokens in ((16, range(3, 19)), (1, [19])):
                for i, token in enumerate(tokens):
                    b.token[i] = token
                    b.pos[i] = i if n > 1 else 16
                    b.seq_id[i][0] = 0
                    b.logits[i] = 1 if i == n - 1 else 0
                b.n_tokens = n
                if C.llama_decode(model.ctx, b) != 0:
                    print("llama_decode failed", file=sys.stderr)
                    return 1
        finally:
            model.close()
    print("decoded 16 + 1 tokens with extra buffer types", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.stderr.flush()
    code = main()
    sys.stderr.flush()
    os._exit(code)
