"""The scheduler over fake runners (tests/fakes.py): loads, sharing, eviction, keep_alive, the
queue, dead runners. In-process, milliseconds; the real-model tests live in integration/."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pollama.config import FOREVER, Config
from pollama.errors import QueueFull
from pollama.inference.scheduler import LoadSpec, RunnerRef, Scheduler
from tests.fakes import FakeRunners

T = TypeVar("T")


def spec(model: str) -> LoadSpec:
    return LoadSpec(model_path=f"/models/{model}.gguf", adapters=(), projector=None,
                    num_ctx=128, num_parallel=1, num_batch=512, num_thread=0, num_gpu=-1,
                    use_mmap=True)


def make(tmp_path: Path, **env: str) -> tuple[Scheduler, FakeRunners]:
    config = Config.from_env({"HOME": str(tmp_path), **{f"OLLAMA_{k}": v for k, v in env.items()}})
    runners = FakeRunners()
    return Scheduler(config, runners), runners


def run(test: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(test(), 10))


async def hold(scheduler: Scheduler, model: str, keep_alive: float | None = FOREVER,
               until: asyncio.Event | None = None) -> RunnerRef:
    """One request: acquire the model's runner, hold it until `until` is set, release it."""
    async with scheduler.acquire(lambda: spec(model), name=model, digest="sha256:" + model,
                                 details={}, estimate=1 << 20, keep_alive=keep_alive) as r:
        if until is not None:
            await until.wait()
        return r


async def turns(n: int = 5) -> None:
    """Let background tasks (unloads, watchers) run."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_queue_full_is_ollamas_503(tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path, MAX_QUEUE="1")

    async def test() -> QueueFull:
        runners.gate = asyncio.Event()  # the first load never finishes until released
        first = asyncio.create_task(hold(scheduler, "a"))
        await turns()
        with pytest.raises(QueueFull) as caught:
            await hold(scheduler, "a")
        runners.gate.set()
        await first
        await hold(scheduler, "a")  # the queue has room again
        return caught.value

    err = run(test)
    assert err.status == 503
    assert err.message == "server busy, please try again.  maximum pending requests exceeded"
    assert len(runners.started) == 1


def test_concurrent_requests_share_one_load(tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path)

    async def test() -> list[RunnerRef]:
        runners.gate = asyncio.Event()
        tasks = [asyncio.create_task(hold(scheduler, "a")) for _ in range(3)]
        await turns()
        assert len(runners.specs) == 1  # one start asked for while the others wait on it
        runners.gate.set()
        return list(await asyncio.gather(*tasks))

    got = run(test)
    assert len(runners.started) == 1
    assert all(r is got[0] for r in got)
    assert got[0].handle is runners.last


def test_max_loaded_models_evicts_the_least_recently_used_idle_runner(tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path, MAX_LOADED_MODELS="2")

    async def test() -> None:
        a = await hold(scheduler, "a")
        b = await hold(scheduler, "b")
        assert await hold(scheduler, "a") is a  # a is used again: b is now the older one
        busy = asyncio.Event()
        c_task = asyncio.create_task(hold(scheduler, "c", until=busy))
        await turns()
        assert b.handle is not None and a.handle is not None
        assert runners.started[1].closed  # b's runner unloaded
        assert not runners.started[0].closed  # a's kept
        assert sorted(r.name for r in scheduler.runners.values()) == ["a", "c"]
        busy.set()
        await c_task

    run(test)
    assert [r.spec.model_path for r in runners.started] == [spec(m).model_path for m in "abc"]


def test_a_busy_runner_is_not_evicted(tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path, MAX_LOADED_MODELS="1")

    async def test() -> None:
        done = asyncio.Event()
        a_task = asyncio.create_task(hold(scheduler, "a", until=done))
        await turns()
        b_task = asyncio.create_task(hold(scheduler, "b"))
        await turns(20)
        assert len(runners.started) == 1 and not runners.started[0].closed  # b waits for a
        done.set()
        await a_task
        await b_task

    run(test)
    assert len(runners.started) == 2 and runners.started[0].closed


def test_keep_alive_expiry_unloads(tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path)

    async def test() -> None:
        await hold(scheduler, "a", keep_alive=0.2)
        runner = runners.last
        assert not runner.closed and scheduler.runners  # kept until the timer fires
        await runner.wait_exited()
        await turns()
        assert runner.closed
        assert not scheduler.runners

    run(test)


def test_keep_alive_forever_keeps(tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path)

    async def test() -> None:
        r = await hold(scheduler, "a", keep_alive=FOREVER)
        await turns(20)
        assert r.timer is None and not runners.last.closed

    run(test)


def test_keep_alive_zero_unloads_after_the_request(tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path)

    async def test() -> None:
        done = asyncio.Event()
        task = asyncio.create_task(hold(scheduler, "a", keep_alive=0, until=done))
        await turns()
        assert runners.started and not runners.last.closed  # loaded while in use
        done.set()
        await task
        await turns()
        assert runners.last.closed
        assert not scheduler.runners

    run(test)


def test_a_runner_that_exits_is_forgotten_and_the_next_request_loads_anew(
        tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path)

    async def test() -> None:
        first = await hold(scheduler, "a")
        runners.last.die()
        await turns()
        assert not scheduler.runners  # the watcher forgot it
        second = await hold(scheduler, "a")
        assert second is not first

    run(test)
    assert len(runners.started) == 2
    assert runners.started[0].exited and not runners.started[1].exited


def test_a_failed_start_reaches_every_waiter_and_is_not_kept(tmp_path: Path) -> None:
    scheduler, runners = make(tmp_path)
    runners.fail_start = "error loading model"

    async def test() -> list[Any]:
        runners.gate = asyncio.Event()
        tasks = [asyncio.create_task(hold(scheduler, "a")) for _ in range(2)]
        await turns()
        runners.gate.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    errors = run(test)
    assert [str(e) for e in errors] == [
        "llama runner process has terminated: exit status 1: error loading model"] * 2
    assert not scheduler.runners and not runners.started
