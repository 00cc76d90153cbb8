"""An in-process runner for scheduler and route tests: scripted chunks, no model, no process.

`FakeRunners` is a `StartRunner` (what `create_app(config, start_runner=...)` and `Scheduler`
take); each start gives a `FakeRunner`, which satisfies `RunnerLike` (mypy checks
`_as_start_runner` below in `make test`) and speaks the runner protocol's
shapes (`engine/protocol.py`): `{"text"}` chunks, then one `{"done": True, ...}` message.

    runners = FakeRunners(pieces=["Hello", " world"])
    runners.crash_after = 1        # the next completions die after one chunk (RunnerCrashed)
    runners.fail_start = "boom"    # the next starts fail (RunnerStartError)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from pollama.engine.errors import RUNNER_CRASHED, RequestRejected, RunnerCrashed, RunnerStartError
from pollama.inference.scheduler import LoadSpec, StartRunner

_pids = itertools.count(90001)
IMAGE_TOKENS = 16  # what one image costs a fake runner with a projector


class FakeRunner:
    """One "loaded model": streams `pieces`, records every call."""

    def __init__(self, spec: LoadSpec, pieces: Sequence[str], crash_after: int | None,
                 memory_bytes: int) -> None:
        self.spec = spec
        self.pieces = list(pieces)
        self.crash_after = crash_after  # chunks sent before the "process" dies; None: never
        self.pid = next(_pids)
        self.info: dict[str, Any] = {"num_ctx": spec.num_ctx,
                                     "num_parallel": spec.num_parallel, "add_bos": False}
        if spec.projector:  # as a runner started with --mmproj reports itself
            self.info.update(vision=True, media_marker="<__media__>")
        self.memory_bytes = memory_bytes
        self.calls: list[tuple[str, Any]] = []
        self.returncode: int | None = None
        self.gate: asyncio.Event | None = None  # when set: completions wait for it first
        self._exited = asyncio.Event()

    # -- RunnerLike ------------------------------------------------------------------------

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    @property
    def exit_description(self) -> str:
        if self.returncode is not None and self.returncode < 0:
            return f"signal {-self.returncode} (SIGKILL, killed)"
        return f"exit status {self.returncode}"

    def last_log_lines(self, n: int = 10) -> list[str]:
        return ["fake runner: killed"][-n:]

    async def completion(self, request: Mapping[str, Any]
                         ) -> AsyncGenerator[dict[str, Any], None]:
        self.calls.append(("completion", dict(request)))
        if self.exited:
            raise self._crashed()
        if self.gate is not None:
            await self.gate.wait()
        sent = 0
        for piece in self.pieces:
            if self.crash_after is not None and sent >= self.crash_after:
                self.die()
                raise self._crashed()
            yield {"text": piece}
            sent += 1
            await asyncio.sleep(0)  # a real runner's chunks arrive on later loop turns
        if self.crash_after is not None and sent >= self.crash_after:
            self.die()
            raise self._crashed()
        prompt = _tokens(str(request.get("prompt", "")))
        yield {"done": True, "done_reason": "stop", "prompt_eval_count": len(prompt),
               "prompt_eval_duration": 1000, "eval_count": len(self.pieces),
               "eval_duration": 2000, "prompt_cached": 0, "truncated": False,
               "tokens": prompt + list(range(len(self.pieces)))}

    async def tokenize(self, text: str, add_special: bool = True,
                       parse_special: bool = True,
                       images: Sequence[str] = ()) -> list[int]:
        """One token a word (its length), so prompts fit a tiny num_ctx; an image is
        IMAGE_TOKENS tokens (a runner with a projector: `vision` in its info)."""
        self.calls.append(("tokenize", text))
        if images:
            if not self.info.get("vision"):
                raise RequestRejected("images sent to a runner without a projector")
            text = text.replace(str(self.info["media_marker"]), " ")
        return _tokens(text) + [0] * (IMAGE_TOKENS * len(images or []))

    async def detokenize(self, ids: Sequence[int]) -> str:
        self.calls.append(("detokenize", list(ids)))
        return "".join(f"<{i}>" for i in ids)

    async def close(self) -> None:
        self.calls.append(("close", None))
        if not self.exited:
            self.returncode = 0
            self._exited.set()

    async def wait_exited(self) -> int | None:
        await self._exited.wait()
        return self.returncode

    # -- test controls ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the scheduler closed (unloaded) this runner."""
        return ("close", None) in self.calls

    def die(self, returncode: int = -9) -> None:
        """The "process" ends by itself (as a crash inside llama.cpp would end it)."""
        if not self.exited:
            self.returncode = returncode
            self._exited.set()

    def _crashed(self) -> RunnerCrashed:
        return RunnerCrashed(f"{RUNNER_CRASHED}: llama runner process has terminated: "
                             f"{self.exit_description}: fake runner: killed",
                             last_log_line="fake runner: killed", returncode=self.returncode)


def _tokens(text: str) -> list[int]:
    return [len(word) for word in text.split()]


class FakeRunners:
    """A `StartRunner`: starts `FakeRunner`s and keeps them, in start order."""

    def __init__(self, pieces: Sequence[str] = ("Hello", ",", " world", "!"),
                 memory_bytes: int = 1 << 20) -> None:
        self.pieces = list(pieces)
        self.memory_bytes = memory_bytes
        self.crash_after: int | None = None  # for runners started from now on
        self.fail_start: str | None = None  # the next starts raise RunnerStartError(this)
        self.gate: asyncio.Event | None = None  # when set: starts wait for it
        self.specs: list[LoadSpec] = []  # every start asked for, failed ones included
        self.started: list[FakeRunner] = []

    async def __call__(self, spec: LoadSpec) -> FakeRunner:
        self.specs.append(spec)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail_start is not None:
            raise RunnerStartError(f"llama runner process has terminated: exit status 1: "
                                   f"{self.fail_start}", reason=self.fail_start, returncode=1)
        runner = FakeRunner(spec, self.pieces, self.crash_after, self.memory_bytes)
        self.started.append(runner)
        return runner

    @property
    def last(self) -> FakeRunner:
        return self.started[-1]


def _as_start_runner(runners: FakeRunners) -> StartRunner:
    """For mypy: FakeRunners is a StartRunner, so FakeRunner satisfies RunnerLike."""
    return runners
