"""Which models are loaded: one runner per model, keep_alive timers, eviction, the queue.

A request `acquire`s a runner for a model and releases it when done. A runner is loaded on
demand; concurrent requests for a model being loaded wait for that load instead of starting
another. Loads happen one at a time. When the number of loaded models reaches
OLLAMA_MAX_LOADED_MODELS, or the memory estimate of the new runner (file size + KV cache) does
not fit next to the loaded ones, the least recently used idle runner is unloaded first. A
runner whose last request finished starts its keep_alive timer; at expiry it is stopped (its
process ends, which gives all its memory back). Requests waiting for a load count against
OLLAMA_MAX_QUEUE; beyond it they get Ollama's 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Protocol

from pollama.config import FOREVER, KV_CACHE_BYTES, Config
from pollama.errors import BadRequest, QueueFull
from pollama.go import MAX_DURATION, parse_go_duration

log = logging.getLogger("pollama.inference.scheduler")

DEFAULT_NUM_CTX_CPU = 4096
AUTO_PARALLEL = 4


def parse_keep_alive(value: Any) -> float | None:
    """`keep_alive` as Ollama accepts it (spec SCH-03); seconds, inf = forever, None = unset."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest("Unsupported type: 'bool'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_go_duration(value)
        except ValueError as err:
            raise BadRequest(str(err)) from None
    else:
        raise BadRequest(f"Unsupported type: '{type(value).__name__}'")
    # beyond int64 nanoseconds Go's conversion wraps to a negative duration: forever
    return FOREVER if seconds < 0 or seconds > MAX_DURATION else seconds


def available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (MemAvailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def estimate_kv_bytes(kv: dict[str, Any], arch: str, n_ctx: int,
                      cache_type: str = "f16") -> int:
    """K and V of `cache_type` for every layer over n_ctx tokens, from the GGUF's shape."""
    layers = int(kv.get(f"{arch}.block_count") or 32)
    embd = int(kv.get(f"{arch}.embedding_length") or 4096)
    heads = int(kv.get(f"{arch}.attention.head_count") or 32) or 1
    heads_kv = kv.get(f"{arch}.attention.head_count_kv") or heads
    if isinstance(heads_kv, list):
        heads_kv = max(heads_kv) if heads_kv else heads
    head_dim = int(kv.get(f"{arch}.attention.key_length") or embd // heads)
    return int(2 * KV_CACHE_BYTES[cache_type] * layers * n_ctx * int(heads_kv) * head_dim)


@dataclass
class LoadSpec:
    """What a runner is started with; two requests share a runner when their specs agree."""

    model_path: str
    adapters: tuple[str, ...]
    projector: str | None
    num_ctx: int
    num_parallel: int
    num_batch: int
    num_thread: int
    num_gpu: int
    use_mmap: bool
    embedding: bool = False

    def key(self) -> tuple[str, tuple[str, ...]]:
        return (self.model_path, self.adapters)


class RunnerLike(Protocol):
    """What the scheduler and the inference service use of a started runner: the engine's
    `RunnerHandle` (a child process), or an in-process fake in tests."""

    @property
    def pid(self) -> int:
        """The process id, for the log."""
        ...

    @property
    def info(self) -> Mapping[str, Any]:
        """What the runner reported when ready (`add_bos`, `num_ctx`, ...: protocol.py)."""
        ...

    @property
    def memory_bytes(self) -> int:
        """The runner's memory (0: unknown, the scheduler's estimate stands)."""
        ...

    @property
    def exited(self) -> bool:
        """Whether the runner has ended."""
        ...

    @property
    def exit_description(self) -> str:
        """How it ended, as Ollama says it (`exit status 1`, `signal 9 (SIGKILL, killed)`)."""
        ...

    def last_log_lines(self, n: int = 10) -> list[str]:
        """Its last output lines, logged when it dies."""
        ...

    def completion(self, request: Mapping[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """`{"text"}` chunks then one `{"done": True, ...}`; closing it early cancels it.
        Raises RunnerCrashed when the runner dies, RequestRejected when it refuses."""
        ...

    async def tokenize(self, text: str, add_special: bool = True,
                       parse_special: bool = True,
                       images: Sequence[str] = ()) -> list[int]:
        """Text → token ids; with `images` (base64, one per media marker in `text`, on a
        runner started with a projector) each image counts at its real size."""
        ...

    async def detokenize(self, ids: Sequence[int]) -> str:
        """Token ids → text."""
        ...

    async def close(self) -> None:
        """Stop the runner and give its memory back; idempotent."""
        ...

    async def wait_exited(self) -> int | None:
        """Wait until the runner ends (closed or died); its exit status."""
        ...


@dataclass
class RunnerRef:
    """One loaded (or loading) model: its runner, users and keep_alive (Ollama's runnerRef)."""

    spec: LoadSpec
    name: str
    digest: str
    details: dict[str, Any]
    estimate: int
    keep_alive: float
    handle: RunnerLike | None = None
    loaded: asyncio.Future[RunnerLike] | None = None
    refcount: int = 0
    expires_at: float = 0.0  # wall-clock seconds; inf = forever
    last_used: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None
    unloading: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def memory(self) -> int:
        mem = self.handle.memory_bytes if self.handle is not None else 0
        return int(mem or self.estimate)

    def started(self) -> RunnerLike:
        """The handle of a runner whose start finished (every runner `acquire` yields)."""
        if self.handle is None:
            raise RuntimeError(f"the runner of {self.name} has not started")
        return self.handle


def _load_options(spec: LoadSpec) -> tuple[Any, ...]:
    return (spec.num_ctx, spec.num_batch, spec.num_gpu, spec.num_thread, spec.use_mmap,
            spec.embedding)


StartRunner = Callable[[LoadSpec], Awaitable[RunnerLike]]


class Scheduler:
    """Owns every runner process of the server."""

    def __init__(self, config: Config, start_runner: StartRunner) -> None:
        self.config = config
        self._start_runner = start_runner
        self.runners: dict[tuple[str, tuple[str, ...]], RunnerRef] = {}
        self._load_lock = asyncio.Lock()
        self._pending = 0
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a background task, keeping a reference so it is not garbage-collected."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- decisions -------------------------------------------------------------------------

    def max_loaded(self) -> int:
        return self.config.max_loaded_models or 3

    def default_num_ctx(self, n_ctx_train: int, requested: int | None) -> int:
        num_ctx = requested or self.config.context_length or DEFAULT_NUM_CTX_CPU
        if n_ctx_train > 0:
            num_ctx = min(num_ctx, n_ctx_train)
        return max(num_ctx, 4)

    def num_parallel(self, file_size: int, kv_per_slot: int, embedding: bool) -> int:
        """OLLAMA_NUM_PARALLEL, else 4 slots when they fit in memory (we do better than 1)."""
        if embedding:
            return 1
        if self.config.num_parallel:
            return self.config.num_parallel
        free = available_memory() - sum(r.memory for r in self.runners.values())
        if file_size + AUTO_PARALLEL * kv_per_slot < free * 0.8:
            return AUTO_PARALLEL
        return 1

    # -- acquire / release -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, spec_fn: Callable[[], LoadSpec], *, name: str, digest: str,
                      details: dict[str, Any], estimate: int,
                      keep_alive: float | None) -> AsyncIterator[RunnerRef]:
        """Hold a ready runner for the duration of a request."""
        runner = await self._get_runner(spec_fn, name=name, digest=digest, details=details,
                                        estimate=estimate, keep_alive=keep_alive)
        try:
            yield runner
        finally:
            self._release(runner)

    async def _get_runner(self, spec_fn: Callable[[], LoadSpec], *, name: str, digest: str,
                          details: dict[str, Any], estimate: int,
                          keep_alive: float | None) -> RunnerRef:
        spec = spec_fn()
        runner = self.runners.get(spec.key())
        ready = runner is not None and runner.loaded is not None and runner.loaded.done()
        if runner is not None and ready and self._usable(runner, spec):
            self._attach(runner, keep_alive)  # fast path: loaded, no queue
            return runner
        # Everything else waits for a load, and waiting requests are bounded by the queue.
        if self._pending >= self.config.max_queue:
            raise QueueFull()
        self._pending += 1
        try:
            if runner is not None and self._usable(runner, spec) and runner.loaded is not None:
                self._attach(runner, keep_alive)
                try:
                    await asyncio.shield(runner.loaded)
                except BaseException:
                    runner.refcount -= 1
                    raise
                return runner
            async with self._load_lock:
                runner = self.runners.get(spec.key())
                if runner is not None and self._usable(runner, spec):
                    self._attach(runner, keep_alive)
                    return runner
                if runner is not None:  # loaded with other load-time options: reload
                    await self._unload_when_idle(runner)
                await self._make_room(spec, estimate)
                runner = RunnerRef(spec=spec, name=name, digest=digest, details=details,
                                estimate=estimate,
                                keep_alive=self.config.keep_alive if keep_alive is None
                                else keep_alive)
                runner.loaded = asyncio.get_running_loop().create_future()
                self.runners[spec.key()] = runner
                self._attach(runner, keep_alive)
                try:
                    handle = await self._start_runner(spec)
                except BaseException as err:
                    self.runners.pop(spec.key(), None)
                    runner.loaded.set_exception(err)
                    runner.loaded.exception()  # mark retrieved: waiters re-raise it themselves
                    raise
                runner.handle = handle
                runner.loaded.set_result(handle)
                self._spawn(self._watch(runner))
                return runner
        finally:
            self._pending -= 1

    def _usable(self, runner: RunnerRef, spec: LoadSpec) -> bool:
        """A runner serves a request unless it is going away or its load-time options differ."""
        if runner.unloading:
            return False
        if runner.handle is not None and runner.handle.exited:
            return False
        return _load_options(runner.spec) == _load_options(spec)

    def _attach(self, runner: RunnerRef, keep_alive: float | None) -> None:
        runner.refcount += 1
        runner.idle.clear()
        runner.last_used = time.monotonic()
        if keep_alive is not None:
            runner.keep_alive = keep_alive
        if runner.timer is not None:
            runner.timer.cancel()
            runner.timer = None
        runner.expires_at = self._expiry(runner.keep_alive)

    @staticmethod
    def _expiry(keep_alive: float) -> float:
        return math.inf if keep_alive == FOREVER else time.time() + keep_alive

    def _release(self, runner: RunnerRef) -> None:
        runner.refcount = max(runner.refcount - 1, 0)
        runner.last_used = time.monotonic()
        if runner.refcount:
            return
        runner.idle.set()
        self._spawn(self._notify())  # a load waiting for room may now unload this one
        loop = asyncio.get_running_loop()
        if runner.keep_alive <= 0 or runner.unloading:
            runner.expires_at = time.time()
            self._spawn(self.unload(runner))
        elif runner.keep_alive != FOREVER:
            runner.expires_at = time.time() + runner.keep_alive
            runner.timer = loop.call_later(runner.keep_alive,
                                           lambda: self._spawn(self.unload(runner)))
        else:
            runner.expires_at = math.inf

    # -- unloading -------------------------------------------------------------------------

    async def _watch(self, runner: RunnerRef) -> None:
        """Forget a runner whose process died, so the next request loads it afresh."""
        handle = runner.handle
        if handle is None:
            return
        await handle.wait_exited()
        if self.runners.get(runner.spec.key()) is runner:
            lines = "".join(f"\n    {line}" for line in handle.last_log_lines())
            log.warning("llama runner process for %s (pid %d) has terminated: %s; its last "
                        "output:%s", runner.name, handle.pid, handle.exit_description,
                        lines or " none")
            self.runners.pop(runner.spec.key(), None)
            if runner.timer:
                runner.timer.cancel()
            async with self._changed:
                self._changed.notify_all()

    async def unload(self, runner: RunnerRef) -> None:
        if runner.refcount and not runner.unloading:
            return
        if self.runners.get(runner.spec.key()) is runner:
            self.runners.pop(runner.spec.key(), None)
        if runner.timer:
            runner.timer.cancel()
            runner.timer = None
        if runner.handle is not None:
            with contextlib.suppress(Exception):
                await runner.handle.close()
        async with self._changed:
            self._changed.notify_all()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _unload_when_idle(self, runner: RunnerRef) -> None:
        runner.unloading = True
        if runner.refcount:
            await runner.idle.wait()
        await self.unload(runner)

    def expire(self, model_path: str) -> bool:
        """Unload every runner of a model as soon as it is idle (empty prompt + keep_alive 0)."""
        found = False
        for runner in list(self.runners.values()):
            if runner.spec.model_path == model_path:
                found = True
                runner.keep_alive = 0
                runner.expires_at = time.time()
                if runner.refcount == 0:
                    self._spawn(self.unload(runner))
                else:
                    runner.unloading = True
        return found

    async def _make_room(self, spec: LoadSpec, estimate: int) -> None:
        """Unload idle runners (least recently used first) until the new one fits."""
        while True:
            others = [r for r in self.runners.values() if r.spec.key() != spec.key()]
            too_many = len(others) >= self.max_loaded()
            # Loaded runners are live processes: MemAvailable already excludes their memory.
            too_big = bool(others) and estimate > available_memory() * 0.8
            if not too_many and not too_big:
                return
            idle = sorted((r for r in others if r.refcount == 0), key=lambda r: r.last_used)
            if idle:
                log.info("unloading %s to make room for %s", idle[0].name, spec.model_path)
                await self.unload(idle[0])
                continue
            async with self._changed:
                await self._changed.wait_for(
                    lambda: any(r.refcount == 0 for r in self.runners.values())
                    or len(self.runners) < self.max_loaded())

    async def shutdown(self) -> None:
        """Stop every runner, all at once (each may take a moment to save its KV state)."""
        runners = list(self.runners.values())
        for runner in runners:
            runner.unloading = True
        await asyncio.gather(*(self.unload(runner) for runner in runners))

    # -- reporting -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Requests waiting for a model to load or for room (bounded by OLLAMA_MAX_QUEUE)."""
        return self._pending

    def running(self) -> list[RunnerRef]:
        ready = [r for r in self.runners.values() if r.handle is not None]
        return sorted(ready, key=lambda r: r.expires_at, reverse=True)
