"""Saved KV state (W2-E): prompts resume from their KV state on disk after a restart.

Engine tests drive real runner processes through RunnerHandle with a state directory; the
server test restarts a real `pollama serve`. What they check: a new runner with the same key
reads only the new tokens (`prompt_cached` counts the rest; `prompt_eval_count` stays the whole
prompt, as for KV reuse within a runner) and answers as a cold runner does; another key, a
corrupt or truncated file, a full disk are ignored; the directory stays under its limit.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.engine import RunnerHandle
from pollama.engine.kv_state import MIN_TOKENS, SUFFIX
from tests.helpers import Server, create_from_gguf
from tests.vision import solid_png, write_vision_model

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 12}
NUM_CTX = 1024
RED, BLUE = solid_png((255, 0, 0)), solid_png((0, 0, 255))


def facts(n: int, start: int = 0) -> str:
    return " ".join(f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}."
                    for i in range(start, start + n))


FIRST = "<|im_start|>system\nAnswer briefly.<|im_end|>\n" + CHAT.format(facts(30) + " Is 7 odd?")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def start(loop, path: Any, state_dir: Path | None, **kw: Any) -> RunnerHandle:
    kw.setdefault("num_thread", 2)
    kw.setdefault("num_ctx", NUM_CTX)
    kw.setdefault("num_parallel", 1)
    return loop.run_until_complete(RunnerHandle.start(path, state_dir=state_dir, **kw))


def complete(loop, handle: RunnerHandle, prompt: str) -> tuple[str, dict[str, Any]]:
    async def run() -> tuple[str, dict[str, Any]]:
        text, done = [], {}
        async for chunk in handle.completion({"prompt": prompt, "options": GREEDY}):
            if chunk.get("done"):
                done = chunk
            else:
                text.append(chunk["text"])
        return "".join(text), done
    return loop.run_until_complete(run())


def one_run(loop, path: Any, state_dir: Path | None, prompt: str,
            **kw: Any) -> tuple[str, dict[str, Any]]:
    """Start a runner, complete one prompt, close it (which saves)."""
    handle = start(loop, path, state_dir, **kw)
    try:
        return complete(loop, handle, prompt)
    finally:
        loop.run_until_complete(handle.close())


def saved_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))


def kept_tokens(done: dict[str, Any]) -> list[int]:
    """The tokens a finished slot holds: the prompt and every generated token but one that
    ended the answer by length (sampled, never decoded)."""
    tokens = done["tokens"]
    return tokens[:-1] if done["done_reason"] == "length" else tokens


def common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.fixture(scope="module")
def first(loop, smollm2_path, tmp_path_factory) -> tuple[Path, str, dict[str, Any]]:
    """A state directory holding FIRST (and its answer), saved by a closed runner."""
    directory = tmp_path_factory.mktemp("kv") / "state"
    text, done = one_run(loop, smollm2_path, directory, FIRST)
    assert done["prompt_eval_count"] > MIN_TOKENS
    return directory, text, done


@pytest.fixture(scope="module")
def second(first) -> str:
    """The conversation of FIRST, its answer, and a new user turn."""
    _, text, _ = first
    return FIRST + text + "<|im_end|>\n" + CHAT.format("And is 8 odd?")


@pytest.fixture(scope="module")
def cold(loop, smollm2_path, second) -> tuple[str, dict[str, Any]]:
    """The second turn on a runner without saved state."""
    return one_run(loop, smollm2_path, None, second)


def test_close_saves_the_slot(first):
    directory, _, done = first
    files = saved_files(directory)
    assert len(files) == 1
    # ~23 KB of f16 K and V per token for SmolLM2-135M: the whole prompt and answer are in it.
    assert files[0].stat().st_size > len(kept_tokens(done)) * 20_000
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_new_runner_resumes_from_disk(loop, smollm2_path, tmp_path, first, second, cold):
    directory = tmp_path / "state"
    shutil.copytree(first[0], directory)
    handle = start(loop, smollm2_path, directory)
    try:
        tokens = loop.run_until_complete(handle.tokenize(second))
        text, done = complete(loop, handle, second)
    finally:
        loop.run_until_complete(handle.close())
    expected = min(common(kept_tokens(first[2]), tokens), len(tokens) - 1)
    assert expected > MIN_TOKENS
    assert done["prompt_eval_count"] == len(tokens)  # the whole prompt, as for slot reuse
    assert done["prompt_cached"] == expected  # only the rest was evaluated
    assert cold[1]["prompt_cached"] == 0
    assert text == cold[0]
    # The longer conversation replaces the file it extends.
    files = saved_files(directory)
    assert len(files) == 1 and files[0].name not in {p.name for p in saved_files(first[0])}


@pytest.mark.parametrize("change", ["num_ctx", "kv_cache_type", "model"])
def test_other_settings_ignore_saved_state(loop, smollm2_path, tmp_path, first, second, cold,
                                           change):
    directory = tmp_path / "state"
    shutil.copytree(first[0], directory)
    before = {p.name for p in saved_files(directory)}
    kw: dict[str, Any] = {}
    path = smollm2_path
    if change == "num_ctx":
        kw["num_ctx"] = NUM_CTX * 2
    elif change == "kv_cache_type":
        kw.update(kv_cache_type="q8_0", flash_attention="on")
    else:
        path = tmp_path / "other.gguf"  # the same bytes, another file: another model
        shutil.copyfile(smollm2_path, path)
    text, done = one_run(loop, path, directory, second, **kw)
    assert done["prompt_cached"] == 0
    if change != "kv_cache_type":  # a quantized cache may change the answer
        assert text == cold[0]
    # Another key's file is not this runner's to judge: still there, next to its own.
    after = {p.name for p in saved_files(directory)}
    assert before < after and len(after) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "header"])
def test_damaged_state_is_ignored_and_removed(loop, smollm2_path, tmp_path, first, second,
                                              cold, damage):
    directory = tmp_path / "state"
    shutil.copytree(first[0], directory)
    (saved,) = saved_files(directory)
    data = bytearray(saved.read_bytes())
    if damage == "flip":  # inside the K/V data: only the checksum can tell
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0xFF
    elif damage == "truncate":
        del data[len(data) * 3 // 4:]
    else:
        data[:8] = b"NOTSTATE"
    saved.write_bytes(bytes(data))
    text, done = one_run(loop, smollm2_path, directory, second)
    assert done["prompt_cached"] == 0
    assert text == cold[0]
    assert not saved.exists()
    assert len(saved_files(directory)) == 1  # the new conversation, saved on close


def test_directory_stays_under_its_limit(loop, smollm2_path, tmp_path, first):
    directory = tmp_path / "state"
    one_file = saved_files(first[0])[0].stat().st_size
    limit = int(one_file * 2.5)  # room for two files of this size
    handle = start(loop, smollm2_path, directory, state_limit=limit)
    prompts = [CHAT.format(facts(30, start) + " Which is odd?") for start in (100, 200, 300, 400)]
    try:
        for prompt in prompts:  # one slot: each prompt evicts (and saves) the one before
            complete(loop, handle, prompt)
            sizes = [p.stat().st_size for p in saved_files(directory)]
            assert sum(sizes) <= limit
    finally:
        loop.run_until_complete(handle.close())
    files = saved_files(directory)
    assert sum(p.stat().st_size for p in files) <= limit
    assert len(files) == 2  # the two most recent prompts; the older ones were evicted
    # The most recently saved one is the last prompt's: a new runner resumes from it.
    handle = start(loop, smollm2_path, directory, state_limit=limit)
    try:
        _, done = complete(loop, handle, prompts[-1] + " Yes.")
    finally:
        loop.run_until_complete(handle.close())
    assert done["prompt_cached"] > MIN_TOKENS


def test_full_disk_skips_the_write(loop, smollm2_path, small_disk, second, cold):
    directory = small_disk / "state"
    text, _ = one_run(loop, smollm2_path, directory, second)
    assert text == cold[0]
    assert saved_files(directory) == []  # a 40 MB disk is below the free-space reserve
    assert not list(directory.iterdir())


def test_image_positions_resume_from_disk(loop, tmp_path):
    """Image positions are saved with the text: a second turn about the same picture loads
    them (the image is not encoded again); another picture does not match them."""
    text_model, projector = write_vision_model(tmp_path / "vision")
    directory = tmp_path / "state"

    def run(state: Path | None, prompt: str, image: bytes) -> tuple[str, dict[str, Any], int]:
        handle = start(loop, text_model, state, projector=projector)
        try:
            marker = handle.info["media_marker"]

            async def go() -> tuple[str, dict[str, Any]]:
                out, done = [], {}
                async for chunk in handle.completion({"prompt": prompt.format(marker),
                                                      "images": [image], "options": GREEDY}):
                    if chunk.get("done"):
                        done = chunk
                    else:
                        out.append(chunk["text"])
                return "".join(out), done
            answer, done = loop.run_until_complete(go())
            encoded = loop.run_until_complete(handle.status())["images_encoded"]
            return answer, done, encoded
        finally:
            loop.run_until_complete(handle.close())

    first_prompt = CHAT.replace("{}", "{} " + facts(20) + " Describe it.")
    answer, first, _ = run(directory, first_prompt, RED)
    assert first["prompt_eval_count"] > MIN_TOKENS
    second_prompt = first_prompt + answer.replace("{", "{{").replace("}", "}}") + \
        "<|im_end|>\n" + CHAT.format("And the colour?")
    resumed, second, encoded = run(directory, second_prompt, RED)
    assert second["prompt_cached"] >= first["prompt_eval_count"]
    assert encoded == 0  # its positions came from disk
    cold, cold_done, cold_encoded = run(None, second_prompt, RED)
    assert cold_encoded == 1 and cold_done["prompt_cached"] == 0
    assert resumed == cold
    _, other, encoded = run(directory, second_prompt, BLUE)
    assert encoded == 1 and other["prompt_cached"] < 8  # the text before the image, at most


# -- the server: a conversation survives a restart ----------------------------------------

RESTORED = re.compile(r"kv state: restored (\d+) tokens into slot \d+ .*: (\d+) of the "
                      r"prompt's (\d+) tokens")


def chat(server: Server, messages: list[dict[str, str]]) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/api/chat", timeout=300, json={
        "model": "smollm2:135m", "messages": messages, "stream": False,
        "options": {"temperature": 0, "seed": 1, "num_predict": 16}})
    assert r.status_code == 200, r.text
    return r.json()


def test_conversation_resumes_after_server_restart(smollm2_path):
    server = Server({"OLLAMA_DEBUG": "1", "OLLAMA_NUM_PARALLEL": "1"}).start()
    try:
        create_from_gguf(server, "smollm2:135m", smollm2_path)
        messages = [{"role": "system", "content": "Answer briefly. " + facts(140)},
                    {"role": "user", "content": "Is 7 odd?"}]
        one = chat(server, messages)
        assert one["prompt_eval_count"] > 1500
        messages += [one["message"], {"role": "user", "content": "And is 8 odd?"}]
        server.restart()
        cache = server.home / ".ollama" / "kv-cache"
        assert len(saved_files(cache)) == 1
        two = chat(server, messages)
        found = RESTORED.findall(server.log())
        assert len(found) == 1
        _, shared, prompt = map(int, found[0])
        assert prompt == two["prompt_eval_count"]
        # Everything up to the new turn came from disk: the first prompt and the answer that
        # the template renders the same way (its end may tokenize differently).
        assert shared >= one["prompt_eval_count"]
        assert two["prompt_eval_count"] - shared < 40
        server.env["OLLAMA_KV_CACHE_DIR"] = "off"  # the same turn, evaluated in full
        server.restart()
        cold = chat(server, messages)
        assert cold["prompt_eval_count"] == two["prompt_eval_count"]
        assert cold["message"]["content"] == two["message"]["content"]
        assert len(RESTORED.findall(server.log())) == 1
    finally:
        server.cleanup()


def test_kv_cache_dir_setting(smollm2_path, tmp_path):
    """OLLAMA_KV_CACHE_DIR moves the cache."""
    directory = tmp_path / "elsewhere"
    server = Server({"OLLAMA_KV_CACHE_DIR": str(directory), "OLLAMA_NUM_PARALLEL": "1"}).start()
    try:
        create_from_gguf(server, "smollm2:135m", smollm2_path)
        chat(server, [{"role": "user", "content": facts(40) + " Is 7 odd?"}])
        server.stop()
        assert len(saved_files(directory)) == 1
        assert not (server.home / ".ollama" / "kv-cache").exists()
    finally:
        server.cleanup()
    assert os.path.isdir(directory)
