"""Images through RunnerHandle: real runner processes on the tiny random-weight vision model of
tests/vision.py (a Llama text GGUF + a LLaVA mlp projector), with mtmd doing the encoding.

Answers are noise (random weights), but they depend on the image: tests compare whole greedy
answers, token counts, cache counters and the order in which chunks arrive — never timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pollama.engine import RequestRejected, RunnerHandle
from tests.vision import IMAGE_TOKENS, png_bytes, solid_png, write_vision_model

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
GREEDY = {"temperature": 0, "seed": 42}
RED, BLUE, GREEN = solid_png((255, 0, 0)), solid_png((0, 0, 255)), solid_png((0, 255, 0))
HEAVY = {"image_size": 336, "patch_size": 14, "vision_width": 384, "vision_blocks": 16}
HEAVY_TOKENS = (336 // 14) ** 2  # 576


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory, smollm2_path):
    return write_vision_model(tmp_path_factory.mktemp("vision"))


def _start(loop, path, **kw: Any) -> RunnerHandle:
    kw.setdefault("num_thread", 2)
    return loop.run_until_complete(RunnerHandle.start(path, **kw))


@pytest.fixture(scope="module")
def runner(loop, pair) -> Iterator[RunnerHandle]:
    """The tiny vision model, two slots of 512 tokens."""
    text, projector = pair
    handle = _start(loop, text, num_ctx=512, num_parallel=2, projector=projector)
    yield handle
    loop.run_until_complete(handle.close())


async def _collect(handle: RunnerHandle, prompt: str, images: list[bytes] | None = None,
                   **options: Any) -> tuple[str, dict[str, Any]]:
    request: dict[str, Any] = {"prompt": prompt, "options": {**GREEDY, "num_predict": 12,
                                                             **options}}
    if images is not None:
        request["images"] = images
    text, done = "", {}
    async for chunk in handle.completion(request):
        if chunk.get("done"):
            done = chunk
        else:
            text += chunk["text"]
    return text, done


def complete(loop, handle, prompt, images=None, **options):
    return loop.run_until_complete(_collect(handle, prompt, images, **options))


def status(loop, handle) -> dict[str, Any]:
    return loop.run_until_complete(handle.status())


def ask(marker: str, question: str = "What is in this picture?") -> str:
    return CHAT.format(marker + question)


def test_ready_says_vision_and_the_marker(runner):
    assert runner.info["vision"] is True
    assert runner.info["media_marker"] == "<__media__>"


def test_an_image_costs_its_tokens(loop, runner):
    marker = runner.info["media_marker"]
    _, plain = complete(loop, runner, ask(""))
    _, seen = complete(loop, runner, ask(marker), [RED])
    assert seen["prompt_eval_count"] == plain["prompt_eval_count"] + IMAGE_TOKENS
    assert seen["eval_count"] == 12
    # The count op says the same, so the server can count images when it truncates history.
    tokens = loop.run_until_complete(runner.tokenize(ask(marker), images=[RED]))
    assert len(tokens) == seen["prompt_eval_count"]
    assert tokens.count(tokens[3]) == IMAGE_TOKENS and tokens[3] < 0  # after "<|im_start|>user\n"
    two = loop.run_until_complete(runner.tokenize(ask(marker * 2), images=[RED, BLUE]))
    assert len(two) == len(tokens) + IMAGE_TOKENS


def test_the_answer_depends_on_the_image(loop, runner):
    marker = runner.info["media_marker"]
    red, _ = complete(loop, runner, ask(marker), [RED])
    blue, _ = complete(loop, runner, ask(marker), [BLUE])
    red_again, _ = complete(loop, runner, ask(marker), [RED])
    assert red and blue
    assert red != blue
    assert red == red_again


def test_the_same_pixels_in_another_file_are_the_same_image(loop, runner):
    marker = runner.info["media_marker"]
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16] = (250, 200, 0)
    packed, stored = png_bytes(pixels, level=9), png_bytes(pixels, level=0)
    assert packed != stored
    first, _ = complete(loop, runner, ask(marker), [packed])
    encoded = status(loop, runner)["images_encoded"]
    again, done = complete(loop, runner, ask(marker), [stored])
    assert again == first
    assert done["prompt_cached"] == done["prompt_eval_count"] - 1 or \
        status(loop, runner)["images_encoded"] == encoded


def test_images_in_order(loop, runner):
    marker = runner.info["media_marker"]
    a, done = complete(loop, runner, ask(marker + " then " + marker), [RED, BLUE])
    b, _ = complete(loop, runner, ask(marker + " then " + marker), [BLUE, RED])
    assert a != b
    tokens = loop.run_until_complete(
        runner.tokenize(ask(marker + " then " + marker), images=[RED, BLUE]))
    assert done["prompt_eval_count"] == len(tokens)
    assert sum(1 for t in tokens if t < 0) == 2 * IMAGE_TOKENS
    assert done["tokens"][:len(tokens)] == tokens


def test_a_second_turn_reuses_the_image_in_the_kv_cache(loop, runner):
    marker = runner.info["media_marker"]
    green = solid_png((0, 200, 100))  # an image no other test sends
    first_prompt = ask(marker, "Describe it.")
    answer, first = complete(loop, runner, first_prompt, [green])
    encoded = status(loop, runner)["images_encoded"]
    second_prompt = first_prompt + answer + "<|im_end|>\n" + CHAT.format("And the colour?")
    _, second = complete(loop, runner, second_prompt, [green])
    # The whole first turn (its image included) came from the slot's cache.
    assert second["prompt_cached"] >= first["prompt_eval_count"] > 3 + IMAGE_TOKENS
    assert second["prompt_eval_count"] > first["prompt_eval_count"]
    assert status(loop, runner)["images_encoded"] == encoded


def test_the_same_image_elsewhere_is_not_encoded_again(loop, runner):
    """Where the KV cache cannot help (the image sits after other text), the encoded image
    comes from the runner's cache of embeddings."""
    marker = runner.info["media_marker"]
    complete(loop, runner, ask(marker), [GREEN])
    encoded = status(loop, runner)["images_encoded"]
    elsewhere = "<|im_start|>system\nYou are terse.<|im_end|>\n" + ask(marker)
    _, done = complete(loop, runner, elsewhere, [GREEN])
    assert done["prompt_cached"] < done["prompt_eval_count"] - IMAGE_TOKENS
    assert status(loop, runner)["images_encoded"] == encoded
    complete(loop, runner, elsewhere, [solid_png((1, 2, 3))])
    assert status(loop, runner)["images_encoded"] == encoded + 1


def test_a_bad_image_fails_its_request_only(loop, runner):
    marker = runner.info["media_marker"]
    with pytest.raises(RequestRejected, match="image 1: cannot decode"):
        complete(loop, runner, ask(marker * 2), [RED, b"not an image at all"])
    with pytest.raises(RequestRejected, match="image 0: cannot decode"):
        complete(loop, runner, ask(marker), [RED[:40]])  # a truncated PNG
    with pytest.raises(RequestRejected, match="image markers"):
        complete(loop, runner, ask(marker), [RED, BLUE])
    with pytest.raises(RequestRejected, match="ends with an image"):
        complete(loop, runner, "<|im_start|>user\n" + marker, [RED])
    text, done = complete(loop, runner, ask(marker), [RED])
    assert text and done["done_reason"] == "length"
    assert status(loop, runner)["busy"] == []


def test_a_runner_without_projector_refuses_images(loop, pair):
    text, _ = pair
    handle = _start(loop, text, num_ctx=256, num_parallel=1)
    try:
        assert handle.info["vision"] is False
        with pytest.raises(RequestRejected,
                           match="images need a vision model: this model has no projector"):
            complete(loop, handle, ask(handle.info["media_marker"]), [RED])
        with pytest.raises(RequestRejected, match="no projector"):
            loop.run_until_complete(handle.tokenize("x <__media__>", images=[RED]))
        answer, done = complete(loop, handle, ask(""))
        assert answer and done["eval_count"] == 12
    finally:
        loop.run_until_complete(handle.close())


@pytest.fixture(scope="module")
def heavy(loop, tmp_path_factory, smollm2_path) -> Iterator[RunnerHandle]:
    """A projector whose encoder takes a while (576 tokens an image, 16 blocks of width 384)."""
    text, projector = write_vision_model(tmp_path_factory.mktemp("heavy"), **HEAVY)
    handle = _start(loop, text, num_ctx=1024, num_parallel=2, projector=projector)
    yield handle
    loop.run_until_complete(handle.close())


def test_other_slots_decode_while_an_image_is_encoded(loop, heavy):
    """A text-only answer streams while another request's image is in the encoder: between
    two status replies that both show the encode in flight, text chunks arrive. (Were the
    encoder run on the loop's thread, nothing would be written while it runs.)"""
    marker = heavy.info["media_marker"]
    text_chunks = 0
    samples: list[tuple[int, int]] = []  # (text chunks received, encodes in flight)
    image_done: dict[str, Any] = {}

    async def text_only() -> dict[str, Any]:
        nonlocal text_chunks
        done: dict[str, Any] = {}
        request = {"prompt": CHAT.format("Tell me a long story."),
                   "options": {**GREEDY, "num_predict": 1500}}
        async for chunk in heavy.completion(request):
            if chunk.get("done"):
                done = chunk
            elif not image_done:
                text_chunks += 1
            else:
                break  # enough: the image request is over
        return done

    async def with_image() -> None:
        while text_chunks < 5:  # the text answer is streaming
            await asyncio.sleep(0.001)
        request = {"prompt": ask(marker), "images": [solid_png((9, 99, 199))],
                   "options": {**GREEDY, "num_predict": 8}}
        async for chunk in heavy.completion(request):
            if chunk.get("done"):
                image_done.update(chunk)

    async def watch() -> None:
        while not image_done:
            st = await heavy.status()
            for _ in range(3):
                await asyncio.sleep(0)  # let the text task take what came before the reply
            samples.append((text_chunks, st["images_encoding"]))

    async def all_three() -> None:
        await asyncio.gather(text_only(), with_image(), watch())

    loop.run_until_complete(all_three())
    assert image_done["eval_count"] == 8
    assert image_done["prompt_eval_count"] > HEAVY_TOKENS
    during = [count for count, encoding in samples if encoding]
    assert len(during) >= 2, samples  # the status replies saw the encode in flight
    assert during[-1] - during[0] >= 3, samples


def test_cancel_while_encoding(loop, heavy):
    marker = heavy.info["media_marker"]

    async def cancel_early() -> None:
        stream = heavy.completion({"prompt": ask(marker), "images": [solid_png((7, 7, 7))],
                                   "options": {**GREEDY, "num_predict": 8}})
        task = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)  # the request is sent; its image is being prepared or encoded
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await stream.aclose()  # sends the cancel

    loop.run_until_complete(cancel_early())
    text, done = complete(loop, heavy, ask(marker), [solid_png((7, 7, 7))])
    assert text and done["eval_count"] == 12
    st = status(loop, heavy)
    assert st["busy"] == [] and st["queued"] == 0
