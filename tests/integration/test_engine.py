"""The engine through RunnerHandle: real runner processes on the real SmolLM2 GGUF.

Each module-scoped runner is loaded once; tests generate 8–32 tokens at temperature 0. Nothing
here asserts a timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pollama.engine import (
    PromptTooLong,
    RequestRejected,
    RunnerCrashed,
    RunnerHandle,
    RunnerStartError,
)
from pollama.engine.errors import PROMPT_TOO_LONG, RUNNER_CRASHED
from pollama.inference.grammar import format_grammar

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
STORY = CHAT.format("Write a story about a cat.")
GREEDY = {"temperature": 0, "seed": 42}


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _start(loop: asyncio.AbstractEventLoop, path: Any, **kw: Any) -> RunnerHandle:
    kw.setdefault("num_thread", 2)
    return loop.run_until_complete(RunnerHandle.start(path, **kw))


@pytest.fixture(scope="module")
def runner(loop, smollm2_path) -> Iterator[RunnerHandle]:
    """Four slots of 1024 tokens."""
    handle = _start(loop, smollm2_path, num_ctx=1024, num_parallel=4)
    yield handle
    loop.run_until_complete(handle.close())


@pytest.fixture(scope="module")
def small(loop, smollm2_path) -> Iterator[RunnerHandle]:
    """One slot of 128 tokens: slot contention and the end of the window."""
    handle = _start(loop, smollm2_path, num_ctx=128, num_parallel=1)
    yield handle
    loop.run_until_complete(handle.close())


async def _collect(stream: AsyncIterator[dict[str, Any]]) -> tuple[str, dict[str, Any],
                                                                   list[dict[str, Any]]]:
    chunks, done = [], {}
    async for chunk in stream:
        if chunk.get("done"):
            done = chunk
        else:
            chunks.append(chunk)
    return "".join(c["text"] for c in chunks), done, chunks


def complete(loop, handle: RunnerHandle, prompt: Any, **request: Any):
    request.setdefault("options", dict(GREEDY, num_predict=32))
    return loop.run_until_complete(_collect(handle.completion({"prompt": prompt, **request})))


def test_tokenize_detokenize_round_trip(loop, runner):
    text = "<|im_start|>user\nHello, wörld! 你好 🙂<|im_end|>"
    ids = loop.run_until_complete(runner.tokenize(text))
    assert ids[0] == 1  # <|im_start|> parsed as a special token
    assert loop.run_until_complete(runner.detokenize(ids)) == text
    plain = loop.run_until_complete(runner.tokenize(text, parse_special=False))
    assert len(plain) > len(ids)


def test_runner_reports_metadata(runner):
    info = runner.info
    assert info["num_ctx"] == 1024 and info["num_parallel"] == 4
    assert info["n_ctx_train"] == 8192 and info["n_vocab"] == 49152
    assert runner.memory_bytes > info["model_size"] > 0
    assert runner.pid > 0 and not runner.exited


def test_same_seed_same_text(loop, runner):
    first, done, _ = complete(loop, runner, STORY)
    again, _, _ = complete(loop, runner, STORY)
    assert first and first == again
    assert done["done_reason"] == "length" and done["eval_count"] == 32
    sampled = {"temperature": 0.8, "seed": 7, "num_predict": 24}
    a, _, _ = complete(loop, runner, STORY, options=sampled)
    b, _, _ = complete(loop, runner, STORY, options=sampled)
    assert a == b


def test_num_predict_ends_with_length(loop, runner):
    _, done, _ = complete(loop, runner, STORY, options=dict(GREEDY, num_predict=8))
    assert done["done_reason"] == "length"
    assert done["eval_count"] == 8
    assert done["prompt_eval_count"] == len(done["tokens"]) - 8
    assert isinstance(done["eval_duration"], int) and isinstance(done["prompt_eval_duration"], int)


def test_stop_sequences_never_leak(loop, runner):
    reference, done, _ = complete(loop, runner, STORY)
    generated = done["tokens"][done["prompt_eval_count"]:]
    pieces = [loop.run_until_complete(runner.detokenize([t])) for t in generated]
    assert "".join(pieces) == reference
    # A stop string spanning a token boundary: the end of one token, the start of the next.
    k = next(i for i in range(3, len(pieces) - 1)
             if len(pieces[i].strip()) >= 2 and len(pieces[i + 1].strip()) >= 2)
    spanning = pieces[k][-2:] + pieces[k + 1][:2]
    # And one inside a single token.
    inside = pieces[k + 3][1:] if len(pieces[k + 3]) > 2 else pieces[k + 3]
    for stop in (spanning, inside):
        text, done, chunks = complete(loop, runner, STORY, stop=[stop, "never appears"])
        assert text == reference[: reference.index(stop)], stop
        assert stop not in text and all(stop not in c["text"] for c in chunks)
        assert done["done_reason"] == "stop"


def test_grammar_constrains_output(loop, runner):
    prompt = CHAT.format("Is the sky blue? Answer yes or no.")
    text, done, _ = complete(loop, runner, prompt, grammar='root ::= "yes" | "no"')
    assert text in ("yes", "no")
    assert done["done_reason"] == "stop"


def test_a_model_stuck_repeating_itself_is_stopped(loop, runner):
    """More than 30 tokens in a row that read the same without their whitespace end the answer
    (Ollama's rule): here a grammar makes the model write whitespace, then "end"."""
    grammar = 'root ::= ws "end"\nws ::= [ \\n]{1000}'
    text, done, _ = complete(loop, runner, STORY, grammar=grammar,
                             options=dict(GREEDY, num_predict=100))
    assert done["done_reason"] == "stop"
    assert done["eval_count"] == 31  # all read "" (as the start does): the 31st repeat stops
    assert text.strip() == ""
    # Without the loop, the same model writes its answer to the end.
    text, done, _ = complete(loop, runner, STORY, grammar='root ::= [ \\n]+ "end"',
                             options=dict(GREEDY, num_predict=100))
    assert text.endswith("end") and done["eval_count"] < 31


def test_format_json_schema(loop, runner):
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"]}
    prompt = CHAT.format("Describe a person as JSON with their name and age.")
    text, done, _ = complete(loop, runner, prompt, grammar=format_grammar(schema),
                             options=dict(GREEDY, num_predict=48))
    value = json.loads(text)
    assert isinstance(value["name"], str) and isinstance(value["age"], int)
    assert done["done_reason"] == "stop"
    text, _, _ = complete(loop, runner, prompt, grammar=format_grammar("json"),
                          options=dict(GREEDY, num_predict=12))
    assert text.startswith("{")


def test_bad_grammar_is_rejected(loop, runner):
    with pytest.raises(RequestRejected, match="grammar"):
        complete(loop, runner, STORY, grammar="root ::= answer")


def test_bad_requests_leave_the_runner_up(loop, runner):
    for prompt, request in (({"not": "a prompt"}, {}), (STORY, {"options": {"top_k": "many"}}),
                            ([1, 10**9], {}), ("", {})):
        with pytest.raises(RequestRejected):
            complete(loop, runner, prompt, **request)
    with pytest.raises(RequestRejected, match="empty input"):
        loop.run_until_complete(runner.embed(["fine", ""]))
    vectors = loop.run_until_complete(runner.embed(["a generative runner embeds too"]))
    assert len(vectors) == 1 and len(vectors[0]) == runner.info["n_embd"]
    assert loop.run_until_complete(runner.ping())
    text, _, _ = complete(loop, runner, STORY, options=dict(GREEDY, num_predict=4))
    assert text


def test_logprobs_shapes(loop, runner):
    options = dict(GREEDY, num_predict=8)
    text, done, chunks = complete(loop, runner, STORY, options=options, logprobs=True,
                                  top_logprobs=3)
    entries = [e for c in chunks for e in c["logprobs"]]
    assert len(entries) == done["eval_count"] == 8
    for entry in entries:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode("utf-8", "replace") == entry["token"]
        top = entry["top_logprobs"]
        assert len(top) == 3
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert top[0]["token"] == entry["token"]  # greedy picks the most likely token
        assert top[0]["logprob"] == pytest.approx(entry["logprob"])
    assert "".join(e["token"] for e in entries) == text
    _, _, plain = complete(loop, runner, STORY, options=options)
    assert all("logprobs" not in c for c in plain)


def _cpu_and_sleeping(pid: int) -> tuple[int, bool]:
    """A process's CPU time in clock ticks, and whether every one of its threads sleeps."""
    ticks, sleeping = 0, True
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread just ended
            continue
        sleeping = sleeping and fields[0] == "S"
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks, sleeping


def _wait_until_idle(pid: int, timeout: float = 240.0) -> None:
    """Block until process `pid` has nothing left to do: all its threads sleep, twice in a row,
    with no CPU time spent in between. Progress, not a fixed time, so a slow machine only
    makes it wait longer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ticks, sleeping = _cpu_and_sleeping(pid)
        if sleeping and last == ticks:
            return
        last = ticks if sleeping else None
        time.sleep(0.25)
    raise AssertionError(f"process {pid} was still busy after {timeout} s")


def test_slow_reader_gets_merged_chunks(loop, runner):
    request = {"prompt": STORY, "options": dict(GREEDY, num_predict=64), "logprobs": True,
               "top_logprobs": 20}  # ~2 KB a token: 64 of them overflow a 64 KiB pipe

    async def slow() -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        chunks, done = [], {}
        async for chunk in runner.completion(request):
            if chunk.get("done"):
                done = chunk
            else:
                if not chunks:
                    # block the event loop until the runner has written the whole answer:
                    # what did not fit the pipe had to queue (and merge) in the runner
                    _wait_until_idle(runner.pid)
                chunks.append(chunk)
        return "".join(c["text"] for c in chunks), done, chunks

    text, done, chunks = loop.run_until_complete(slow())
    reference, _, _ = complete(loop, runner, STORY, options=dict(GREEDY, num_predict=64))
    assert text == reference
    assert sum(len(c["logprobs"]) for c in chunks) == done["eval_count"] == 64
    assert len(chunks) < 64  # tokens were merged into fewer messages


def test_utf8_is_never_split(loop, runner):
    prompt = CHAT.format("Repeat exactly: 你好世界, ça va? 🙂🙂 日本語")
    text, _, chunks = complete(loop, runner, prompt)
    assert any(ord(ch) > 0x7F for ch in text)
    assert all("\ufffd" not in c["text"] for c in chunks)


def test_concurrent_streams_all_start_before_any_finishes(loop, runner):
    events: list[tuple[str, int]] = []

    async def stream(i: int) -> None:
        prompt = CHAT.format(f"Count from {i} to {i + 40}, one number per line.")
        request = {"prompt": prompt, "options": dict(GREEDY, num_predict=24)}
        async for chunk in runner.completion(request):
            events.append(("done" if chunk.get("done") else "text", i))

    async def all_four() -> None:
        await asyncio.gather(*(stream(i) for i in range(4)))

    loop.run_until_complete(all_four())
    first_done = next(n for n, (kind, _) in enumerate(events) if kind == "done")
    assert {i for kind, i in events[:first_done] if kind == "text"} == {0, 1, 2, 3}


def test_cancel_frees_the_slot(loop, small):
    async def scenario() -> tuple[list[int], str]:
        stream = small.completion({"prompt": STORY, "options": dict(GREEDY, num_predict=-1)})
        async for _ in stream:
            status = await small.status()
            assert status["busy"] == [0]
            break
        await stream.aclose()  # leaving the loop sends cancel
        deadline = time.monotonic() + 120  # one step can take seconds on a loaded machine
        while (status := await small.status())["busy"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        # Freed by the cancel within a step or two, not at the end of the answer (num_predict
        # -1 is 1,280 tokens here): the slot's cache holds the prompt and a few tokens.
        assert status["cells"][0] < len(await small.tokenize(STORY)) + 8
        _, done, _ = await asyncio.wait_for(
            _collect(small.completion({"prompt": STORY,
                                       "options": dict(GREEDY, num_predict=8)})), 120)
        return status["busy"], done["done_reason"]

    busy, reason = loop.run_until_complete(scenario())
    assert busy == []
    assert reason == "length"


def test_kv_prefix_is_reused(loop, runner):
    records = "\n".join(f"Record {i}: station {i * 7 % 97} logged {i * 13 % 51} readings."
                        for i in range(30))
    prefix = f"<|im_start|>system\n{records}<|im_end|>\n"
    first_prompt = prefix + CHAT.format("Which station logged the most readings?")
    n_prefix = len(loop.run_until_complete(runner.tokenize(prefix)))
    assert n_prefix >= 300
    options = dict(GREEDY, num_predict=8)
    _, first, _ = complete(loop, runner, first_prompt, options=options)
    assert first["prompt_cached"] < n_prefix
    # Turn 2 of a chat: the whole first turn (prompt + answer) is already in the cache.
    turn2 = first["tokens"] + loop.run_until_complete(
        runner.tokenize("<|im_end|>\n" + CHAT.format("Why?")))
    _, second, _ = complete(loop, runner, turn2, options=options)
    assert second["prompt_cached"] >= len(first["tokens"]) - 1
    assert second["prompt_eval_count"] == len(turn2)
    # Another question on the same records only evaluates the question.
    _, third, _ = complete(loop, runner, prefix + CHAT.format("Name one station."),
                           options=options)
    assert third["prompt_cached"] >= n_prefix
    assert third["prompt_eval_count"] - third["prompt_cached"] < 30


def test_prompt_too_long(loop, small):
    long_prompt = CHAT.format(" ".join(["word"] * 200))
    with pytest.raises(PromptTooLong) as err:
        complete(loop, small, long_prompt, shift=False)
    assert str(err.value) == PROMPT_TOO_LONG
    with pytest.raises(PromptTooLong):
        complete(loop, small, long_prompt, truncate=False)
    # With shift (the default) the prompt is cut to fit: keep num_keep, drop about half.
    _, done, _ = complete(loop, small, long_prompt, options=dict(GREEDY, num_predict=8))
    assert done["truncated"] is True
    assert done["prompt_eval_count"] == 128 - (128 - 4) // 2


def test_generation_at_window_end(loop, small):
    prompt = CHAT.format("Write a long story about a dragon. " * 8)
    n_prompt = len(loop.run_until_complete(small.tokenize(prompt)))
    room = 128 - n_prompt + 1  # the last token sampled is never decoded
    options = dict(GREEDY, num_predict=room + 20)
    _, done, _ = complete(loop, small, prompt, options=options, shift=False)
    assert done["done_reason"] == "length" and done["eval_count"] == room
    _, shifted, _ = complete(loop, small, prompt, options=options)
    assert shifted["eval_count"] == room + 20  # kept going after a context shift


def test_runner_killed_mid_stream(loop, smollm2_path):
    handle = _start(loop, smollm2_path, num_ctx=256, num_parallel=1)

    async def scenario() -> None:
        async for chunk in handle.completion({"prompt": STORY,
                                              "options": dict(GREEDY, num_predict=-1)}):
            if chunk.get("text"):
                os.kill(handle.pid, signal.SIGKILL)

    try:
        with pytest.raises(RunnerCrashed) as err:
            loop.run_until_complete(scenario())
        assert str(err.value).startswith(
            f"{RUNNER_CRASHED}: llama runner process has terminated: signal 9 (SIGKILL, killed)")
        assert handle.exited
        with pytest.raises(RunnerCrashed):
            loop.run_until_complete(handle.tokenize("hello"))
        assert loop.run_until_complete(handle.ping()) is False
    finally:
        loop.run_until_complete(handle.close())
    loop.run_until_complete(handle.close())  # idempotent


def test_start_error_names_the_reason(loop, tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(RunnerStartError) as err:
        _start(loop, bogus, num_ctx=256, num_parallel=1)
    assert "llama runner process has terminated" in str(err.value)
    assert err.value.reason
    with pytest.raises(RunnerStartError, match="not found"):
        _start(loop, tmp_path / "missing.gguf", num_ctx=256, num_parallel=1)


def _runners_with(arg: str) -> list[int]:
    """Live runner processes whose command line holds `arg` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"pollama.engine.runner" in cmdline and arg.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


@pytest.mark.parametrize("turns", range(7))
def test_a_start_cancelled_at_any_step_ends_the_runner_and_returns(loop, smollm2_path, turns):
    """Cancelled after `turns` loop turns (the server stopping, a client gone while its model
    starts): the start returns (CancelledError) and the process is gone. A cancel while the
    pipes were being wired used to wait forever for pipes that were never watched."""
    async def scenario() -> None:
        start = asyncio.ensure_future(RunnerHandle.start(smollm2_path, num_ctx=264,
                                                         num_parallel=1, repack=False))
        for _ in range(turns):
            await asyncio.sleep(0)
        start.cancel()
        done, _ = await asyncio.wait({start}, timeout=60)  # a hang guard, not a timing
        assert done, "the cancelled start never returned"
        assert start.cancelled()

    loop.run_until_complete(scenario())
    deadline = time.monotonic() + 30
    while _runners_with("264") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _runners_with("264") == []


def _write_lora(path: Any) -> None:
    """A random rank-8 LoRA on the first two layers' attention, written with `gguf`."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 8.0)
    rng = np.random.default_rng(0)
    for layer in range(2):
        for name, n_out in (("attn_q", 576), ("attn_v", 192)):
            a = rng.normal(0, 0.5, (8, 576)).astype(np.float32)
            b = rng.normal(0, 0.5, (n_out, 8)).astype(np.float32)
            writer.add_tensor(f"blk.{layer}.{name}.weight.lora_a", a)
            writer.add_tensor(f"blk.{layer}.{name}.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_lora_adapter_changes_output(loop, runner, smollm2_path, tmp_path):
    adapter = tmp_path / "adapter.gguf"
    _write_lora(adapter)
    handle = _start(loop, smollm2_path, num_ctx=256, num_parallel=1, adapters=[adapter])
    try:
        assert handle.info["adapters"] == [str(adapter)]
        adapted, _, _ = complete(loop, handle, STORY, options=dict(GREEDY, num_predict=8))
    finally:
        loop.run_until_complete(handle.close())
    base, _, _ = complete(loop, runner, STORY, options=dict(GREEDY, num_predict=8))
    assert adapted != base
    with pytest.raises(RunnerStartError, match="adapter"):
        _start(loop, smollm2_path, num_ctx=256, num_parallel=1,
               adapters=[tmp_path / "missing.gguf"])


def test_embeddings(loop, smollm2_path):
    handle = _start(loop, smollm2_path, num_ctx=256, num_parallel=2, embedding=True)
    try:
        texts = ["The cat sat on the mat.", "Stock markets fell sharply today.", "hello"]
        vectors = loop.run_until_complete(handle.embed(texts))
        assert len(vectors) == 3 and all(len(v) == handle.info["n_embd"] for v in vectors)
        assert vectors[0] != vectors[1]
        assert vectors.prompt_eval_count > 3
        again = loop.run_until_complete(handle.embed(texts[:1]))
        assert again[0] == pytest.approx(vectors[0], rel=1e-3, abs=1e-4)
        with pytest.raises(RequestRejected, match="exceeds the context length"):
            loop.run_until_complete(handle.embed(["word " * 400], truncate=False))
        cut = loop.run_until_complete(handle.embed(["word " * 400]))
        assert cut.prompt_eval_count == 256
    finally:
        loop.run_until_complete(handle.close())


def test_stream_false_holds_the_text_until_the_end(loop, runner):
    """`"stream": false` sends the whole text in one message before `done` (the server then
    handles two messages, not one per token), and the text and logprobs are the same."""
    options = dict(GREEDY, num_predict=24)
    streamed, done, chunks = complete(loop, runner, STORY, options=options, top_logprobs=2)
    held, held_done, held_chunks = complete(loop, runner, STORY, options=options,
                                            top_logprobs=2, stream=False)
    assert len(chunks) > 1 and len(held_chunks) == 1
    assert held == streamed
    assert held_chunks[0]["logprobs"] == [lp for c in chunks for lp in c["logprobs"]]
    assert held_done["eval_count"] == done["eval_count"] == 24


def test_an_embed_waiting_for_a_slot_goes_before_later_completions(loop, small):
    """A generative runner embeds in free slots. With the only slot busy, an embed request and
    then a completion arrive: the embed is served first (arrival order), so completions that
    keep the queue full cannot starve it."""
    events: list[str] = []

    async def scenario() -> None:
        first = small.completion({"prompt": STORY, "options": dict(GREEDY, num_predict=24)})
        await anext(first)  # the slot is taken

        async def finish_first() -> None:
            async for chunk in first:
                if chunk.get("done"):
                    events.append("first done")

        async def embed() -> None:
            await small.embed(["Embed me while the slot is busy."])
            events.append("embed")

        async def later() -> None:
            request = {"prompt": CHAT.format("Hi"), "options": dict(GREEDY, num_predict=4)}
            async for chunk in small.completion(request):
                events.append("later done" if chunk.get("done") else "later text")

        tasks = [asyncio.create_task(finish_first()), asyncio.create_task(embed())]
        await asyncio.sleep(0)  # the embed request is sent before the next completion
        tasks.append(asyncio.create_task(later()))
        await asyncio.wait_for(asyncio.gather(*tasks), 300)

    loop.run_until_complete(scenario())
    assert events.index("first done") < events.index("embed") < events.index("later text"), \
        events
