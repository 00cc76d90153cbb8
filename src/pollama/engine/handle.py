"""The server-side handle of one runner process: start it, stream completions, close it.

The handle is all the scheduler knows about a loaded model (Ollama's `LlamaServer`): `start`,
`completion`, `tokenize`, `detokenize`, `embed`, `ping`/`status`, `close`, `pid`, `exited`.
It never imports llama_cpp; the runner is a child process speaking `protocol.py` over pipes,
so a crash inside llama.cpp ends one runner, never the server.

    runner = await RunnerHandle.start(path, num_ctx=2048, num_parallel=4)
    async for chunk in runner.completion({"prompt": "Why is the sky blue?",
                                          "options": {"temperature": 0, "num_predict": 32}}):
        if chunk.get("done"):
            print(chunk["done_reason"], chunk["eval_count"])
        else:
            print(chunk["text"], end="")
    await runner.close()
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import itertools
import logging
import os
import subprocess
import sys
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pollama.engine import protocol, rpc
from pollama.engine.cpu_probe import default_verdict, describe_exit
from pollama.engine.errors import (
    RUNNER_CRASHED,
    PromptTooLong,
    RequestRejected,
    RpcWorkerLost,
    RunnerCrashed,
    RunnerError,
    RunnerStartError,
)

log = logging.getLogger("pollama.runner")

_EXITED = object()  # put on every pending request when the process is gone
# What llama.cpp's RPC client says before it aborts on a broken worker connection.
_RPC_FAILURES = ("Remote RPC server crashed", "Failed to connect to", "RPC handshake failed")


class Embeddings(list):  # type: ignore[type-arg]
    """A list of embedding vectors that also carries `prompt_eval_count` (tokens read)."""

    prompt_eval_count: int = 0


class _Replies:
    """The messages of one request in arrival order (a lighter asyncio.Queue: one waiter)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, message: Any) -> None:
        self._items.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        items = self._items
        while not items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return items.popleft()


class _PipeReader(asyncio.Protocol):
    """Calls back on every read of one pipe (directly: no StreamReader, no extra loop turn)."""

    def __init__(self, on_data: Any, on_open: Any, on_close: Any) -> None:
        self.data_received = on_data  # type: ignore[method-assign]
        self._on_open = on_open
        self._on_close = on_close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._on_open()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_close()


class RunnerHandle:
    """One runner process and the requests in flight to it."""

    def __init__(self, proc: subprocess.Popen[bytes], log_file: str | None,
                 rpc_servers: Sequence[str] = ()) -> None:
        loop = asyncio.get_running_loop()
        self._proc = proc
        self._rpc_servers = tuple(rpc_servers)
        self._rpc_failure = ""  # llama.cpp's line when a worker connection broke
        self._workers_gone: dict[str, str] = {}
        self._stdin: asyncio.WriteTransport | None = None
        self._open_pipes = 0  # stdout and stderr readers, from connected until EOF
        self._connected = False  # every pipe handed to the loop (else `_close` reaps)
        self._handed: set[str] = set()  # pipes a transport owns (it closes them)
        self._reaper: asyncio.Future[None] | None = None
        self._pending: dict[int, _Replies] = {}
        self._ids = itertools.count(1)
        self._out = b""  # an incomplete stdout line
        self._err = b""  # an incomplete stderr line
        self._tail: collections.deque[str] = collections.deque(maxlen=20)
        self._log_file = open(log_file, "a", encoding="utf-8") if log_file else None  # noqa: SIM115
        self._info: dict[str, Any] = {}
        self._fatal = ""
        self._ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._lost: asyncio.Future[None] = loop.create_future()
        self._close_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        model_path: str | os.PathLike[str],
        *,
        num_ctx: int,
        num_parallel: int,
        num_batch: int = 512,
        num_thread: int = 0,
        use_mmap: bool = True,
        num_gpu: int = -1,
        embedding: bool = False,
        adapters: Sequence[str | os.PathLike[str]] = (),
        projector: str | os.PathLike[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        load_timeout: float = 300.0,
        verbose: bool = False,
        repack: bool | None = None,
        flash_attention: str = "auto",
        kv_cache_type: str = "f16",
        state_dir: str | os.PathLike[str] | None = None,
        state_limit: int = 4 << 30,
        rpc_servers: Sequence[str] = (),
        rpc_split: Sequence[float] = (),
    ) -> RunnerHandle:
        """Start a runner process and wait until it has loaded the model.

        Raises RunnerStartError (with the runner's last word) if it exits or stalls first.
        `repack` (llama.cpp's extra buffer types) defaults to this machine's probed verdict.
        `state_dir`: where the runner saves and loads prompts' KV state (`kv_state.py`; the
        files are keyed by the model file, adapters, projector, num_ctx and cache settings),
        at most `state_limit` bytes there. `close` gives it time to save.
        `rpc_servers` (`host:port`): RPC workers to split the layers over (`placement.py`), in
        the `rpc_split` proportions (this machine first) or by free memory; a worker that is
        down or busy is left out (`info["rpc_skipped"]`); `info["devices"]` says where the
        layers went. If a worker goes away later the runner dies and requests get
        RpcWorkerLost naming it.
        """
        if repack is None:
            repack = (await default_verdict()).repack
        args = [
            "--model", os.fspath(model_path), "--ctx-size", str(num_ctx),
            "--parallel", str(num_parallel), "--batch-size", str(num_batch),
            "--threads", str(num_thread), "--n-gpu-layers", str(num_gpu),
        ]
        if not use_mmap:
            args.append("--no-mmap")
        if embedding:
            args.append("--embedding")
        for adapter in adapters:
            args += ["--lora", os.fspath(adapter)]
        if projector is not None:
            args += ["--mmproj", os.fspath(projector)]
        if verbose:
            args.append("--verbose")
        if not repack:
            args.append("--no-repack")
        args += ["--flash-attn", flash_attention, "--cache-type", kv_cache_type]
        if state_dir is not None and not embedding:
            args += ["--state-dir", os.fspath(state_dir), "--state-limit", str(state_limit)]
        env = dict(os.environ)
        if rpc_servers:
            args += ["--rpc-servers", ",".join(rpc_servers)]
            if rpc_split:
                args += ["--rpc-split", ",".join(f"{x:g}" for x in rpc_split)]
            if not verbose:  # llama.cpp's abort would attach gdb for a backtrace: seconds
                env.setdefault("GGML_NO_BACKTRACE", "1")
        src = str(Path(__file__).resolve().parents[2])  # so the child imports this pollama
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pollama.engine.runner", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            bufsize=0, start_new_session=True,  # a Ctrl+C meant for the server skips runners
        )
        handle = cls(proc, os.fspath(log_file) if log_file else None, rpc_servers)
        try:
            await handle._connect()
            handle._info = await asyncio.wait_for(asyncio.shield(handle._ready), load_timeout)
        except TimeoutError:
            await handle.close(grace=0)
            raise RunnerStartError(
                "timed out waiting for llama runner to start", reason="load timeout"
            ) from None
        except BaseException:
            await handle.close(grace=0)
            raise
        return handle

    # -- properties ------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The runner's process id."""
        return self._proc.pid

    @property
    def info(self) -> dict[str, Any]:
        """The metadata the runner reported when ready (n_ctx_train, bos, eos, n_vocab, ...)."""
        return self._info

    @property
    def memory_bytes(self) -> int:
        """Estimated memory of the runner: model file size plus KV cache bytes."""
        return int(self._info.get("memory_bytes", 0))

    @property
    def exited(self) -> bool:
        """Whether the process has ended."""
        return self._lost.done() or self._proc.returncode is not None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended."""
        return self._proc.returncode

    @property
    def last_log_line(self) -> str:
        """The runner's last non-empty stderr line."""
        return self._tail[-1] if self._tail else ""

    def last_log_lines(self, n: int = 10) -> list[str]:
        """The runner's last `n` non-empty stderr lines (for the server log when it dies)."""
        return list(self._tail)[-n:]

    @property
    def exit_description(self) -> str:
        """How the process ended, as Ollama says it: `exit status 1`, or for a death by signal
        `signal 4 (SIGILL, illegal instruction)`."""
        return describe_exit(self.returncode)

    async def wait_exited(self) -> int | None:
        """Wait for the process to end (and its pipes to close); return its exit status."""
        await asyncio.shield(self._lost)
        return self.returncode

    # -- requests --------------------------------------------------------------------------

    async def completion(self, request: Mapping[str, Any]
                         ) -> AsyncGenerator[dict[str, Any], None]:
        """Stream one completion: `{"text", "logprobs"?}` chunks, then the `{"done": True}` one.

        `request["images"]`, for a runner started with a projector (`info["vision"]`): the
        image files (bytes, or base64 text), one per `info["media_marker"]` in the prompt, in
        order. Leaving the loop early (break, aclose, task cancelled) cancels the request in the
        runner. Raises RunnerCrashed if the process dies, PromptTooLong / RequestRejected if
        the runner refuses the request (an image it cannot decode, images without a projector),
        RunnerError if it fails it.
        """
        rid, replies = self._open()
        finished = False
        message = {**request, "op": "completion", "id": rid}
        if request.get("images"):
            message["images"] = _base64_images(request["images"])
        try:
            self._send(message)
            while True:
                msg = await replies.get()
                if msg is _EXITED:
                    finished = True
                    raise self._crashed()
                if "error" in msg:
                    finished = True
                    raise _request_error(msg)
                del msg["id"]
                if msg.get("done"):
                    finished = True
                    yield msg
                    return
                yield msg
        finally:
            self._pending.pop(rid, None)
            if not finished and not self.exited:
                with contextlib.suppress(RunnerCrashed):
                    self._send({"op": "cancel", "id": rid})

    async def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = True,
        images: Sequence[bytes | str] = (),
    ) -> list[int]:
        """Text → token ids with the model's tokenizer.

        With `images` (one per media marker in `text`), the runner tokenizes as a completion
        would: each image stands as many tokens as it costs the model, each carrying the
        image's negative id, so `len()` is the prompt's real size.
        """
        message: dict[str, Any] = {"op": "tokenize", "text": text, "add_special": add_special,
                                   "parse_special": parse_special}
        if images:
            message["images"] = _base64_images(images)
        reply = await self._call(message)
        return reply["tokens"]

    async def detokenize(self, ids: Sequence[int]) -> str:
        """Token ids → text (special tokens rendered)."""
        reply = await self._call({"op": "detokenize", "tokens": list(ids)})
        return reply["text"]

    async def embed(self, texts: Sequence[str], truncate: bool = True) -> Embeddings:
        """Pooled, not yet normalised embeddings of each text (runner started with embedding)."""
        reply = await self._call({"op": "embed", "texts": list(texts), "truncate": truncate})
        result = Embeddings(reply["embeddings"])
        result.prompt_eval_count = int(reply.get("prompt_eval_count", 0))
        return result

    async def status(self, timeout: float | None = 10.0) -> dict[str, Any]:
        """The runner's slot table: `{"ok", "slots", "busy": [slot ids], "queued"}`."""
        reply = await self._call({"op": "status"}, timeout)
        del reply["id"]
        return reply

    async def ping(self, timeout: float = 10.0) -> bool:
        """True if the runner answers within `timeout` seconds."""
        try:
            await self.status(timeout)
        except (RunnerCrashed, RunnerError, TimeoutError):
            return False
        return True

    async def close(self, grace: float = 5.0) -> None:
        """Ask the runner to shut down, kill it after `grace` seconds; idempotent."""
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._close(grace))
        await asyncio.shield(self._close_task)

    # -- plumbing --------------------------------------------------------------------------

    async def _close(self, grace: float) -> None:
        if not self._connected:  # stopped while its pipes were being wired: reap it here
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await asyncio.to_thread(self._proc.wait)
            for name in ("stdin", "stdout", "stderr"):
                pipe = getattr(self._proc, name)
                if name not in self._handed and pipe is not None:
                    pipe.close()
            self._on_lost()
        if not self.exited:
            with contextlib.suppress(RunnerCrashed):
                self._send({"op": "shutdown"})
            if self._stdin is not None:
                self._stdin.close()  # EOF: the runner exits on it too
            try:
                await asyncio.wait_for(asyncio.shield(self._lost), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
        await asyncio.shield(self._lost)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _open(self) -> tuple[int, _Replies]:
        if self.exited:
            raise self._crashed()
        rid = next(self._ids)
        replies = self._pending[rid] = _Replies()
        return rid, replies

    def _send(self, message: dict[str, Any]) -> None:
        stdin = self._stdin
        if self.exited or stdin is None or stdin.is_closing():
            raise self._crashed()
        stdin.write(protocol.encode(message))

    async def _call(self, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        rid, replies = self._open()
        try:
            self._send({**message, "id": rid})
            msg = await asyncio.wait_for(replies.get(), timeout)
        finally:
            self._pending.pop(rid, None)
        if msg is _EXITED:
            raise self._crashed()
        if "error" in msg:
            raise _request_error(msg)
        return msg

    async def _connect(self) -> None:
        # A cancellation can land at each await (the server stopping, a client gone while
        # the runner starts): `_handed` says which pipes a transport owns by then.
        loop = asyncio.get_running_loop()
        proc = self._proc
        for name, on_data in (("stdout", self._on_stdout), ("stderr", self._on_stderr)):
            self._handed.add(name)
            reader = functools.partial(_PipeReader, on_data, self._pipe_opened, self._pipe_closed)
            await loop.connect_read_pipe(reader, getattr(proc, name))
        self._handed.add("stdin")
        self._stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, proc.stdin)
        self._connected = True

    def _pipe_opened(self) -> None:
        self._open_pipes += 1

    def _pipe_closed(self) -> None:
        self._open_pipes -= 1
        if self._open_pipes == 0 and self._connected:  # the runner has exited: reap it
            self._reaper = asyncio.ensure_future(self._reap())

    async def _reap(self) -> None:
        await asyncio.to_thread(self._proc.wait)
        if self._stdin is not None:
            self._stdin.close()
        if self._rpc_failure:
            # Which worker is gone names the failure (llama.cpp's own message does not).
            self._workers_gone = await rpc.unreachable(self._rpc_servers)
        self._on_lost()

    def _crashed(self) -> RunnerCrashed:
        if self._rpc_failure:
            return RpcWorkerLost(self._workers_gone,
                                 last_log_line=self._rpc_failure or self.last_log_line,
                                 returncode=self.returncode)
        detail = f"llama runner process has terminated: {self.exit_description}"
        if self.last_log_line:
            detail += f": {self.last_log_line}"
        return RunnerCrashed(f"{RUNNER_CRASHED}: {detail}", last_log_line=self.last_log_line,
                             returncode=self.returncode)

    def _on_stdout(self, data: bytes) -> None:
        *lines, self._out = (self._out + data).split(b"\n")
        for line in lines:
            try:
                msg = protocol.decode(line)
            except ValueError:
                if line.strip():
                    log.warning("runner %d sent a malformed line: %.200r", self.pid, line)
                continue
            rid = msg.get("id")
            replies = self._pending.get(rid) if isinstance(rid, int) else None
            if replies is not None:
                replies.put(msg)
            elif "ready" in msg:
                if not self._ready.done():
                    self._ready.set_result(msg["ready"])
            elif "fatal" in msg:
                self._fatal = str(msg["fatal"])

    def _on_stderr(self, data: bytes) -> None:
        *lines, self._err = (self._err + data).split(b"\n")
        for line in lines:
            text = line.decode("utf-8", "replace").rstrip()
            if self._log_file is not None:
                self._log_file.write(text + "\n")
                self._log_file.flush()
            else:
                log.debug("runner %d: %s", self.pid, text)
            if text.strip():
                self._tail.append(text)
                if self._rpc_servers and any(f in text for f in _RPC_FAILURES):
                    self._rpc_failure = text.strip()

    def _on_lost(self) -> None:  # the process has exited and its pipes are closed
        if self._lost.done():
            return
        if self._err:
            self._on_stderr(b"\n")
        if not self._ready.done():
            reason = self._fatal or self.last_log_line or "no output"
            if self._rpc_failure:
                reason = str(self._crashed())
            self._ready.set_exception(RunnerStartError(
                f"llama runner process has terminated: {self.exit_description}: {reason}",
                reason=reason, returncode=self.returncode,
            ))
            self._ready.exception()  # retrieved: start() may have given up already
        for replies in self._pending.values():
            replies.put(_EXITED)
        self._lost.set_result(None)


def _base64_images(images: Sequence[bytes | str]) -> list[str]:
    """Images for the protocol: bytes become base64 text; text is taken as base64 already."""
    return [base64.b64encode(i).decode("ascii") if isinstance(i, (bytes, bytearray)) else i
            for i in images]


def _request_error(msg: dict[str, Any]) -> Exception:
    code, text = msg.get("code"), str(msg.get("error"))
    if code == protocol.CODE_PROMPT_TOO_LONG:
        return PromptTooLong()
    if code == protocol.CODE_BAD_REQUEST:
        return RequestRejected(text)
    return RunnerError(text)
