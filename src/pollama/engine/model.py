"""One loaded model and its context: the llama.cpp objects a runner owns, and what they answer.

Ownership follows llama-cpp-python's `_internals`: one Python owner per C object, each freed
once; the context registers its own close on the model's stack, so it is freed first, and
`LoadedModel.close()` frees everything explicitly instead of trusting `__del__`.
"""

from __future__ import annotations

import ctypes
import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_cpp import llama_cpp as C
from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaModel

from pollama.config import KV_CACHE_BYTES
from pollama.engine.placement import Placement, place

_POOLING_NAMES = {0: None, 1: "mean", 2: "cls", 3: "last", 4: "rank"}

# ggml's type id of each cache type in config.KV_CACHE_TYPES.
KV_CACHE_GGML_TYPES = {"f32": 0, "f16": 1, "bf16": 30, "q8_0": 8, "q4_0": 2, "q4_1": 3,
                       "iq4_nl": 20, "q5_0": 6, "q5_1": 7}
FLASH_ATTENTION_TYPES = {"auto": C.LLAMA_FLASH_ATTN_TYPE_AUTO,
                         "on": C.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                         "off": C.LLAMA_FLASH_ATTN_TYPE_DISABLED}


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Load-time settings of a runner (Ollama's `api.Runner` options)."""

    num_ctx: int = 2048
    num_parallel: int = 1
    num_batch: int = 512
    num_thread: int = 0  # 0 = one per physical core
    use_mmap: bool = True
    num_gpu: int = -1  # -1 = llama.cpp's default
    embedding: bool = False
    adapters: tuple[str, ...] = ()
    verbose: bool = False
    repack: bool = True  # llama.cpp's extra buffer types (AMX, AVX2/AVX512 weight repacks)
    flash_attention: str = "auto"  # "on", "off" or "auto" (llama.cpp decides per device)
    kv_cache_type: str = "f16"  # K and V cache type: f16, q8_0, q4_0, ... (see KV_CACHE_TYPES)
    rpc_servers: tuple[str, ...] = ()  # RPC workers to split the layers over (placement.py)
    rpc_split: tuple[float, ...] = ()  # this machine's share, then each worker's; () = by memory


# ggml_log_level of this llama.cpp (llama-cpp-python's own _logger still has the older order,
# where 3 was an error and 4 debug): 1 debug, 2 info, 3 warn, 4 error, 5 continues a line.
_LOG_DEBUG, _LOG_ERROR, _LOG_CONT = 1, 4, 5


class _Log:
    """Routes llama.cpp/ggml logs to stderr (debug only when verbose) and keeps the last error,
    and the first since `reset()`: the cause (llama.cpp's later lines only say it failed)."""

    def __init__(self) -> None:
        self.verbose = False
        self.last_error = ""
        self.first_error = ""
        self.flash_attention = ""  # "on"/"off" once llama.cpp has resolved "auto"
        self._last_level = 1
        self.recording: list[str] | None = None  # every line, while a load is placed on workers
        self._callback = C.llama_log_callback(self._log)
        C.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _log(self, level: int, text: bytes, _user: Any) -> None:
        level = self._last_level if level == _LOG_CONT else level
        self._last_level = level
        message = text.decode("utf-8", "replace")
        if self.recording is not None:
            self.recording.append(message)
        if level == _LOG_ERROR and message.strip():
            self.last_error = message.strip()
            self.first_error = self.first_error or self.last_error
        elif "flash_attn" in message or "Flash Attention" in message:
            # "llama_context: flash_attn = enabled", or for auto "... Flash Attention enabled".
            words = message.split()
            if words and words[-1] in ("enabled", "disabled"):
                self.flash_attention = "on" if words[-1] == "enabled" else "off"
        if level != _LOG_DEBUG or self.verbose:
            sys.stderr.write(message)
            sys.stderr.flush()

    def reset(self) -> None:
        self.last_error = self.first_error = ""


_log = _Log()


def log_callback() -> Any:
    """The C log callback llama.cpp uses here (mtmd logs through it too)."""
    return _log._callback


def last_error() -> str:
    """The last error line llama.cpp (or mtmd) logged."""
    return _log.last_error


def physical_cores() -> int:
    """Physical CPU cores (what llama.cpp's own default uses), falling back to logical ones."""
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "physical id":
                    physical = value
                elif key == "core id":
                    core = value
                elif not key:
                    if core:
                        cores.add((physical, core))
                    physical = core = ""
        if core:
            cores.add((physical, core))
    except OSError:
        pass
    return len(cores) or os.cpu_count() or 1


class LoadedModel:
    """A model, one context of `num_ctx × num_parallel` cells in `num_parallel` sequences."""

    def __init__(self, path: str, options: LoadOptions) -> None:
        _log.verbose = options.verbose
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file not found: {path}")
        self.path = path
        self.options = options
        self._stack = ExitStack()
        try:
            self._load(path, options)
        except BaseException:
            self._stack.close()
            raise

    def _load(self, path: str, options: LoadOptions) -> None:
        C.llama_backend_init()
        mparams = C.llama_model_default_params()
        mparams.use_mmap = options.use_mmap
        mparams.use_extra_bufts = options.repack
        if options.num_gpu >= 0:
            mparams.n_gpu_layers = options.num_gpu
        self.placement: Placement | None = None
        self.devices: list[dict[str, Any]] = []
        if options.rpc_servers:
            self.placement = place(path, options.rpc_servers, options.rpc_split, options.num_gpu)
            self.placement.apply(mparams)
            _log.recording = []
        try:
            self._load_model_and_context(path, options, mparams)
        finally:
            if self.placement is not None and _log.recording is not None:
                self.devices = self.placement.report(_log.recording)
            _log.recording = None

    def _load_model_and_context(self, path: str, options: LoadOptions, mparams: Any) -> None:
        _log.reset()
        try:
            self.model = LlamaModel(path_model=path, params=mparams, verbose=True)
        except ValueError:
            reason = _log.first_error or f"failed to load model from file: {path}"
            # "llama_model_load: error loading model: ..." → Ollama's "error loading model: ..."
            reason = reason[max(reason.find("error loading model"), 0):]
            raise RuntimeError(reason) from None
        self._stack.callback(self.model.close)
        self.vocab = self.model.vocab
        self.n_vocab = self.model.n_vocab()
        self.n_embd = self.model.n_embd()
        self.arch = self.meta("general.architecture") or ""
        self.add_bos = bool(C.llama_vocab_get_add_bos(self.vocab))

        self.num_ctx = options.num_ctx
        self.num_parallel = max(1, options.num_parallel)
        self.threads = options.num_thread if options.num_thread > 0 else physical_cores()
        self.n_batch = max(1, options.num_batch)
        cparams = C.llama_context_default_params()
        cparams.n_ctx = self.num_ctx * self.num_parallel
        cparams.n_seq_max = self.num_parallel
        cparams.n_threads = self.threads
        cparams.n_threads_batch = self.threads
        cparams.kv_unified = False  # one KV stream per slot: a slot only attends to its own cells
        cparams.no_perf = True
        cparams.flash_attn_type = FLASH_ATTENTION_TYPES[options.flash_attention]
        cparams.type_k = cparams.type_v = KV_CACHE_GGML_TYPES[options.kv_cache_type]
        # Every context gets a pooling type: an embedding model's own, else the last token
        # (as Ollama's runner pools generative models). It only acts while embeddings are on,
        # so a generative runner's completions are the same with it (test_engine checks).
        pooling = self._model_pooling()
        cparams.pooling_type = pooling
        self.pooling: str | None = _POOLING_NAMES.get(pooling)
        self.n_seq_embed = self.num_parallel  # sequences one embedding decode may hold
        if options.embedding:
            # A dedicated embedding runner keeps nothing between requests: one unified cache
            # the size of a batch, and as many sequences per decode as llama.cpp allows, so
            # short inputs share a decode. Non-causal models need a whole input in one
            # ubatch: n_ubatch = n_batch, and a longer input is refused (the server retries
            # it truncated to num_batch, as Ollama does).
            cparams.embeddings = True
            cparams.kv_unified = True
            cparams.n_ctx = max(self.num_ctx, self.n_batch)
            self.n_seq_embed = max(1, min(self.n_batch, C.llama_max_parallel_sequences()))
            cparams.n_seq_max = self.n_seq_embed
        cparams.n_batch = cparams.n_ubatch = self.n_batch
        try:
            self.context = LlamaContext(model=self.model, params=cparams, verbose=True)
        except ValueError:
            raise RuntimeError(_log.first_error or "failed to create the llama context") from None
        # A generative model warns that its default pooling is not LAST: not an error, and
        # it must not stand as the reason of a later failure (a missing adapter).
        _log.reset()
        self.ctx = self.context.ctx
        self.memory = self.context.memory
        self.n_ctx = C.llama_n_ctx(self.ctx)
        self.can_shift = bool(self.memory) and bool(C.llama_memory_can_shift(self.memory))
        self._set_adapters(options.adapters)
        self.batch = LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._stack.callback(self.batch.close)
        for i in range(self.n_batch):
            self.batch.batch.n_seq_id[i] = 1
        self.pieces: list[bytes | None] = [None] * self.n_vocab  # token → bytes, filled lazily

    def _model_pooling(self) -> int:
        """The model's pooling; generative models (none) pool the last token, as Ollama's runner."""
        raw = self.meta(f"{self.arch}.pooling_type")
        pooling = int(raw) if raw and raw.lstrip("-").isdigit() else 0
        return C.LLAMA_POOLING_TYPE_LAST if pooling <= 0 else pooling

    def _set_adapters(self, paths: tuple[str, ...]) -> None:
        if not paths:
            return
        # Adapters live as long as the model, which frees them.
        adapters = (C.llama_adapter_lora_p_ctypes * len(paths))()
        for i, path in enumerate(paths):
            adapter = C.llama_adapter_lora_init(self.model.model, path.encode())
            if not adapter:
                raise RuntimeError(_log.first_error or f"failed to load LoRA adapter: {path}")
            adapters[i] = adapter
        scales = (ctypes.c_float * len(paths))(*([1.0] * len(paths)))
        if C.llama_set_adapters_lora(self.ctx, adapters, len(paths), scales) != 0:
            raise RuntimeError("failed to apply LoRA adapters")

    def warm_up(self) -> None:
        """Decode two tokens and forget them, as llama.cpp's own tools do before serving: the
        first decode touches every weight and kernel, so a CPU that faults on one faults while
        loading, not in the middle of someone's answer."""
        b = self.batch.batch
        bos, eos = self.model.token_bos(), self.model.token_eos()
        tokens = [t if 0 <= t < self.n_vocab else 0 for t in (bos, eos)][: self.n_batch]
        for i, token in enumerate(tokens):
            b.token[i], b.pos[i], b.seq_id[i][0], b.logits[i] = token, i, 0, 0
        b.logits[len(tokens) - 1] = 1  # within the batch even when num_batch is 1
        b.n_tokens = len(tokens)
        if C.llama_decode(self.ctx, b) != 0:
            raise RuntimeError(_log.first_error or "the warm-up decode failed")
        if self.memory:
            C.llama_memory_clear(self.memory, True)

    def close(self) -> None:
        """Free batch, context and model (in that order); idempotent."""
        self._stack.close()

    # -- metadata --------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None."""
        buf = ctypes.create_string_buffer(256)
        n = C.llama_model_meta_val_str(self.model.model, key.encode(), buf, 256)
        if n < 0:
            return None
        if n >= 256:
            buf = ctypes.create_string_buffer(n + 1)
            C.llama_model_meta_val_str(self.model.model, key.encode(), buf, n + 1)
        return buf.value.decode("utf-8", "replace")

    def kv_bytes(self) -> int:
        """Bytes of the KV cache (K and V of the cache type, every layer, every cell)."""
        n_head = max(1, C.llama_model_n_head(self.model.model))
        n_head_kv = C.llama_model_n_head_kv(self.model.model)
        head_k = int(self.meta(f"{self.arch}.attention.key_length") or self.n_embd // n_head)
        head_v = int(self.meta(f"{self.arch}.attention.value_length") or self.n_embd // n_head)
        n_layer = C.llama_model_n_layer(self.model.model)
        per_element = KV_CACHE_BYTES[self.options.kv_cache_type]
        return int(self.n_ctx * n_layer * n_head_kv * (head_k + head_v) * per_element)

    def info(self) -> dict[str, Any]:
        """What the server needs to know about the loaded runner (the `ready` message)."""
        model_size = os.path.getsize(self.path)
        kv_bytes = self.kv_bytes() if not self.options.embedding else 0
        return {
            "model": self.path,
            "architecture": self.arch,
            "n_ctx": self.n_ctx,
            "num_ctx": self.num_ctx,
            "num_parallel": self.num_parallel,
            "num_batch": self.n_batch,
            "num_thread": self.threads,
            "n_ctx_train": self.model.n_ctx_train(),
            "n_vocab": self.n_vocab,
            "n_embd": self.n_embd,
            "bos": self.model.token_bos(),
            "eos": self.model.token_eos(),
            "add_bos": self.add_bos,
            "add_eos": bool(C.llama_vocab_get_add_eos(self.vocab)),
            "model_size": model_size,
            "kv_bytes": kv_bytes,
            "memory_bytes": model_size + kv_bytes,
            "embedding": self.options.embedding,
            "pooling": self.pooling,
            "can_shift": self.can_shift,
            "adapters": list(self.options.adapters),
            "repack": self.options.repack,
            "flash_attention": _log.flash_attention or self.options.flash_attention,
            "kv_cache_type": self.options.kv_cache_type,
            "pid": os.getpid(),
            # With RPC workers: where the layers live, and the workers left out (and why).
            "devices": self.devices,
            "rpc_skipped": self.placement.skipped if self.placement is not None else {},
        }

    # -- text ------------------------------------------------------------------------------

    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        """Text → token ids (thread-safe: it only reads the vocabulary)."""
        data = text.encode("utf-8")
        room = len(data) + 8
        buf = (C.llama_token * room)()
        n = C.llama_tokenize(self.vocab, data, len(data), buf, room, add_special, parse_special)
        if n < 0:
            room = -n
            buf = (C.llama_token * room)()
            n = C.llama_tokenize(self.vocab, data, len(data), buf, room, add_special,
                                 parse_special)
            if n < 0:
                raise ValueError("failed to tokenize")
        return buf[:n]

    def detokenize(self, tokens: list[int]) -> str:
        """Token ids → text, special tokens rendered (the inverse of tokenize with specials)."""
        self.check_tokens(tokens)
        arr = (C.llama_token * len(tokens))(*tokens)
        room = max(64, len(tokens) * 8)
        buf = ctypes.create_string_buffer(room)
        n = C.llama_detokenize(self.vocab, arr, len(tokens), buf, room, False, True)
        if n < 0:
            room = -n
            buf = ctypes.create_string_buffer(room)
            n = C.llama_detokenize(self.vocab, arr, len(tokens), buf, room, False, True)
        return buf.raw[: max(n, 0)].decode("utf-8", "replace")

    def check_tokens(self, tokens: list[int]) -> None:
        """Raise ValueError unless every id is in the vocabulary (llama.cpp would abort)."""
        if tokens and (min(tokens) < 0 or max(tokens) >= self.n_vocab):
            raise ValueError(f"token id out of range [0, {self.n_vocab})")

    def piece(self, token: int) -> bytes:
        """The bytes one generated token adds to the output (cached per token id)."""
        piece = self.pieces[token]
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = C.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = C.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            piece = self.pieces[token] = buf.raw[:n]
        return piece

    def is_eog(self, token: int) -> bool:
        """End-of-generation tokens (EOS, EOT, ...) end a completion with done_reason "stop"."""
        return C.llama_vocab_is_eog(self.vocab, token)

    # -- logits and embeddings -------------------------------------------------------------

    def logprobs(self, index: int, token: int, top: int) -> dict[str, Any]:
        """Log-softmax of the raw logits of batch row `index`: the token's entry and the top."""
        row = np.ctypeslib.as_array(C.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        peak = float(row.max())
        lse = peak + float(np.log(np.exp(row - peak).sum()))
        entry = self._logprob_entry(token, float(row[token]) - lse)
        if top > 0:
            best = np.argpartition(row, -top)[-top:]
            best = best[np.argsort(row[best])[::-1]]
            entry["top_logprobs"] = [
                self._logprob_entry(int(t), float(row[t]) - lse) for t in best
            ]
        return entry

    def _logprob_entry(self, token: int, logprob: float) -> dict[str, Any]:
        piece = self.piece(token)
        return {"token": piece.decode("utf-8", "replace"), "logprob": logprob,
                "bytes": list(piece)}

    def embed_tokens(self, text: str, truncate: bool) -> list[int]:
        """An input's tokens (special tokens added, as llama-server does for embeddings)."""
        tokens = self.tokenize(text, True, True)
        if len(tokens) > self.num_ctx:
            if not truncate:
                raise ValueError("the input length exceeds the context length")
            tokens = tokens[: self.num_ctx]
        if not tokens:
            raise ValueError("cannot embed an empty input")
        return tokens

    def embed(self, texts: list[str], truncate: bool) -> tuple[list[list[float]], int]:
        """Pooled embeddings of each text (not normalised) and the number of tokens read, on
        a dedicated embedding context (`--embedding`): short inputs share one decode."""
        inputs = [self.embed_tokens(text, truncate) for text in texts]
        for tokens in inputs:
            if len(tokens) > self.n_batch:
                raise ValueError("input is too large to process. increase the physical batch "
                                 f"size ({len(tokens)} tokens, num_batch {self.n_batch})")
        out: list[list[float]] = []
        i = 0
        while i < len(inputs):
            group = [inputs[i]]
            used = len(inputs[i])
            while (i + len(group) < len(inputs) and len(group) < self.n_seq_embed
                   and used + len(inputs[i + len(group)]) <= self.n_batch):
                used += len(inputs[i + len(group)])
                group.append(inputs[i + len(group)])
            if self.memory:
                C.llama_memory_clear(self.memory, True)
            out.extend(self.embed_decode(list(enumerate(group))))
            i += len(group)
        return out, sum(len(t) for t in inputs)

    def embed_decode(self, group: list[tuple[int, list[int]]]) -> list[list[float]]:
        """One decode of whole inputs, each `(sequence id, tokens)` from position 0, with
        embeddings on; their pooled vectors. Every row is an output: llama.cpp wants that of
        an embedding decode (and would override the flags with a warning)."""
        b = self.batch.batch
        n = 0
        for seq, tokens in group:
            for pos, token in enumerate(tokens):
                b.token[n] = token
                b.pos[n] = pos
                b.seq_id[n][0] = seq
                b.logits[n] = 1
                n += 1
        b.n_tokens = n
        rc = C.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed while embedding (code {rc})")
        vectors = []
        for seq, _ in group:
            ptr = C.llama_get_embeddings_seq(self.ctx, seq)
            if not ptr:
                raise RuntimeError("the model returned no pooled embedding")
            vectors.append(np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).tolist())
        return vectors
