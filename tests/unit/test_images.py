"""Images before a runner sees them: decoding and normalising (inference/images.py), Ollama's
`[img]` placeholder rule and truncation with images (template/prompt.py), and what generate and
chat send a runner with a projector (fake runners, tests/fakes.py; the real model is in
integration/test_vision.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pollama.config import Config
from pollama.engine.cpu_probe import write_probe_model
from pollama.errors import InvalidImage
from pollama.inference import images
from pollama.server.app import create_app
from pollama.template.prompt import PromptTemplate, fit_messages, media_prompt, tag_images
from tests.fakes import IMAGE_TOKENS, FakeRunners
from tests.vision import solid_png, write_vision_model

RED = solid_png((255, 0, 0))
BLUE = solid_png((0, 0, 255))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encoded(fmt: str, **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 10), (0, 200, 0)).save(out, format=fmt, **save)
    return out.getvalue()


def roundtrip(data: bytes) -> Image.Image:
    out = base64.b64decode(images.prepare([b64(data)], "image {n}")[0])
    image = Image.open(io.BytesIO(out))
    image.load()
    return image


# -- images.py ---------------------------------------------------------------------------------


def test_png_and_jpeg_go_to_the_runner_as_sent() -> None:
    jpeg = encoded("JPEG")
    assert images.prepare([b64(RED), b64(jpeg)], "image {n}") == [b64(RED), b64(jpeg)]


@pytest.mark.parametrize("fmt", ["WEBP", "GIF"])
def test_webp_and_gif_become_png(fmt: str) -> None:
    image = roundtrip(encoded(fmt))
    assert image.format == "PNG" and image.size == (20, 10)
    assert image.convert("RGB").getpixel((5, 5)) == pytest.approx((0, 200, 0), abs=8)


def test_an_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    image = roundtrip(out.getvalue())
    assert image.convert("RGB").getpixel((3, 3)) == (255, 0, 0)


def test_a_cmyk_jpeg_becomes_an_rgb_png() -> None:
    out = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(out, format="JPEG")
    image = roundtrip(out.getvalue())
    assert image.format == "PNG" and image.mode == "RGB"


def _png_header_only(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    idat = b"IDAT" + zlib.compress(b"\x00" * 1000)  # a stream that stops far short
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(c) - 4) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)
        for c in (chunk, idat))


@pytest.mark.parametrize(("data", "why"), [
    (RED[: len(RED) // 2], "corrupt PNG data"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "corrupt JPEG data"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio"),
    (b"BM" + b"\x00" * 60, "a BMP image"),
    (b"hello, world", "text, not an image"),
    (b"", "empty"),
    (_png_header_only(9000, 9000), "too large: 9000x9000 pixels (at most 67108864 pixels)"),
    (_png_header_only(50000, 50000), "too large (at most 67108864 pixels)"),
])
def test_what_cannot_be_an_image_is_a_400_naming_it(data: bytes, why: str) -> None:
    with pytest.raises(InvalidImage) as err:
        images.prepare([b64(RED), b64(data)], "image {n} of message 3")
    assert err.value.status == 400
    assert str(err.value).startswith("image 2 of message 3 could not be decoded: ")
    assert why in str(err.value)


@pytest.mark.parametrize("text", ["data:image/png;base64," + b64(RED), "!!!!", "QUJD="])
def test_only_standard_base64_is_read(text: str) -> None:
    with pytest.raises(InvalidImage, match="image 1 could not be decoded: not standard base64"):
        images.prepare([text], "image {n}")


def test_base64_with_line_breaks_is_read_as_go_reads_it() -> None:
    text = b64(RED)
    wrapped = "\n".join(text[i:i + 60] for i in range(0, len(text), 60))
    assert images.prepare([wrapped], "image {n}") == [text]


# -- placeholders and truncation ----------------------------------------------------------------


def test_tags_replace_img_placeholders_else_prefix_the_text() -> None:
    messages = [{"role": "user", "content": "look", "images": ["a", "b"]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "left [img] right [img]", "images": ["c"]}]
    tagged, found = tag_images(messages)
    assert [m["content"] for m in tagged] == ["[img-0][img-1]look", "ok",
                                              "left [img-2] right [img]"]
    assert found == ["a", "b", "c"]
    assert messages[0]["content"] == "look"  # the request's messages are left alone


def test_media_prompt_puts_the_runners_marker_in_each_tag() -> None:
    assert media_prompt("x[img-0]y[img-1]", 2, "<M>") == "x<M>y<M>"
    with pytest.raises(ValueError, match="image 2"):
        media_prompt("x[img-0]y", 2, "<M>")


def test_truncation_counts_images_and_keeps_only_kept_messages_images() -> None:
    template = PromptTemplate(go_template="{{ range .Messages }}{{ .Content }} {{ end }}",
                              chat_template=None)
    messages = [{"role": "system", "content": "sys"},
                {"role": "user", "content": "old", "images": ["A"]},
                {"role": "assistant", "content": "fine"},
                {"role": "user", "content": "new", "images": ["B"]}]
    seen: list[tuple[str, list[str]]] = []

    async def count(prompt: str, imgs: list[str]) -> int:
        seen.append((prompt, imgs))
        return len(prompt.split()) + 100 * len(imgs)

    fitted = asyncio.run(fit_messages(template, messages, num_ctx=150, truncate=True,
                                      count_tokens=count))
    assert fitted.prompt == "sys fine [img-0]new " and fitted.images == ["B"]
    assert fitted.dropped == 1
    assert seen[0] == ("sys [img-0]old fine [img-1]new ", ["A", "B"])  # 204 > 150
    fitted = asyncio.run(fit_messages(template, messages, num_ctx=300, truncate=True,
                                      count_tokens=count))
    assert fitted.images == ["A", "B"] and fitted.dropped == 0


# -- generate and chat over fake runners ---------------------------------------------------------


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("vision")
    text, projector = write_vision_model(root)
    write_probe_model(root / "tiny.gguf")
    return {"text": text.read_bytes(), "projector": projector.read_bytes(),
            "tiny": (root / "tiny.gguf").read_bytes()}


@pytest.fixture
def runners() -> FakeRunners:
    return FakeRunners(pieces=["A", " picture"])


@pytest.fixture
def client(tmp_path: Path, blobs: dict[str, bytes], runners: FakeRunners
           ) -> Iterator[TestClient]:
    config = Config.from_env({"HOME": str(tmp_path), "OLLAMA_MODELS": str(tmp_path / "models")})
    app = create_app(config, start_runner=runners)
    with TestClient(app, base_url="http://127.0.0.1:11434") as client:
        digests = {}
        for key, data in blobs.items():
            digests[key] = "sha256:" + hashlib.sha256(data).hexdigest()
            assert client.post(f"/api/blobs/{digests[key]}", content=data).status_code == 201
        for name, files in (("seer", {"model.gguf": digests["text"],
                                      "mmproj.gguf": digests["projector"]}),
                            ("blind", {"model.gguf": digests["text"]})):
            r = client.post("/api/create", json={"model": name, "files": files,
                                                 "stream": False})
            assert r.status_code == 200, r.text
        yield client


def completion(runners: FakeRunners) -> dict[str, Any]:
    _kind, request = [c for c in runners.last.calls if c[0] == "completion"][-1]
    return dict(request)


def test_a_vision_model_shows_vision_and_its_projector(client: TestClient) -> None:
    show = client.post("/api/show", json={"model": "seer"}).json()
    assert "vision" in show["capabilities"]
    assert show["projector_info"]["general.architecture"] == "clip"
    blind = client.post("/api/show", json={"model": "blind"}).json()
    assert "vision" not in blind["capabilities"] and "projector_info" not in blind


def test_chat_sends_the_images_with_a_marker_each(client: TestClient,
                                                  runners: FakeRunners) -> None:
    r = client.post("/api/chat", json={"model": "seer", "stream": False, "messages": [
        {"role": "user", "content": "what is this?", "images": [b64(RED), b64(BLUE)]}]})
    assert r.status_code == 200, r.text
    assert r.json()["message"]["content"] == "A picture"
    sent = completion(runners)
    assert sent["images"] == [b64(RED), b64(BLUE)]
    assert "<__media__><__media__>what is this?" in sent["prompt"]
    assert runners.last.spec.projector is not None


def test_images_of_truncated_messages_are_not_sent(client: TestClient,
                                                   runners: FakeRunners) -> None:
    old = "words " * 2040  # with its image, more than the 2048 a vision model gets at least
    messages = [{"role": "user", "content": old, "images": [b64(RED)]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "and [img] this?", "images": [b64(BLUE)]}]
    r = client.post("/api/chat", json={"model": "seer", "stream": False, "messages": messages,
                                       "options": {"num_ctx": 64}})
    assert r.status_code == 200, r.text
    assert runners.last.spec.num_ctx == 2048
    sent = completion(runners)
    assert sent["images"] == [b64(BLUE)] and "words" not in sent["prompt"]
    assert "and <__media__> this?" in sent["prompt"]
    # counted with its image: the runner tokenized the kept window with the marker in it
    assert any(kind == "tokenize" and "<__media__> this?" in text
               for kind, text in runners.last.calls)


def test_generate_sends_images_and_debug_render_shows_tags(client: TestClient,
                                                           runners: FakeRunners) -> None:
    r = client.post("/api/generate", json={"model": "seer", "prompt": "describe", "stream": False,
                                           "images": [b64(RED)]})
    assert r.status_code == 200, r.text
    sent = completion(runners)
    assert sent["images"] == [b64(RED)] and "<__media__>describe" in sent["prompt"]
    r = client.post("/api/generate", json={"model": "seer", "prompt": "describe",
                                           "images": [b64(RED), b64(BLUE)],
                                           "_debug_render_only": True})
    info = r.json()["_debug_info"]
    assert info["image_count"] == 2 and "[img-0][img-1]describe" in info["rendered_template"]


def test_raw_generate_places_images_by_the_placeholder(client: TestClient,
                                                      runners: FakeRunners) -> None:
    r = client.post("/api/generate", json={"model": "seer", "prompt": "a [img] b", "raw": True,
                                           "stream": False, "images": [b64(RED)]})
    assert r.status_code == 200, r.text
    assert completion(runners)["prompt"] == "a <__media__> b"


def test_webp_reaches_the_runner_as_png(client: TestClient, runners: FakeRunners) -> None:
    r = client.post("/api/generate", json={"model": "seer", "prompt": "x", "stream": False,
                                           "images": [b64(encoded("WEBP"))]})
    assert r.status_code == 200, r.text
    assert base64.b64decode(completion(runners)["images"][0]).startswith(b"\x89PNG")


def test_a_model_without_vision_refuses_images(client: TestClient,
                                               runners: FakeRunners) -> None:
    for path, body in (("/api/chat", {"messages": [{"role": "user", "content": "hi",
                                                    "images": [b64(RED)]}]}),
                       ("/api/generate", {"prompt": "hi", "images": [b64(RED)]})):
        r = client.post(path, json={"model": "blind", **body})
        assert r.status_code == 400
        assert r.json() == {"error": "registry.ollama.ai/library/blind:latest does not support "
                                     "vision"}
    assert not runners.started


def test_a_corrupt_image_is_a_400_naming_it(client: TestClient, runners: FakeRunners) -> None:
    messages = [{"role": "user", "content": "a", "images": [b64(RED)]},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c", "images": [b64(RED), b64(b"not an image")]}]
    r = client.post("/api/chat", json={"model": "seer", "messages": messages})
    assert r.status_code == 400
    assert r.json()["error"].startswith("image 2 of message 3 could not be decoded: "
                                        "unsupported format")
    assert not runners.started


def test_the_marker_in_a_users_text_is_refused(client: TestClient) -> None:
    r = client.post("/api/chat", json={"model": "seer", "messages": [
        {"role": "user", "content": "a <__media__> b", "images": [b64(RED)]}]})
    assert r.status_code == 400 and "<__media__>" in r.json()["error"]


def test_openai_and_anthropic_images_reach_the_runner(client: TestClient,
                                                      runners: FakeRunners) -> None:
    r = client.post("/v1/chat/completions", json={"model": "seer", "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "what?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(RED)}}]}]})
    assert r.status_code == 200, r.text
    assert completion(runners)["images"] == [b64(RED)]
    r = client.post("/v1/messages", json={"model": "seer", "max_tokens": 8, "messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": b64(BLUE)}},
            {"type": "text", "text": "what?"}]}]})
    assert r.status_code == 200, r.text
    assert completion(runners)["images"] == [b64(BLUE)]
    body = {"model": "seer", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": b64(BLUE)}}, {"type": "text", "text": "what?"}]}]}
    with_image = client.post("/v1/messages/count_tokens", json=body)
    assert with_image.status_code == 200, with_image.text
    body["messages"][0]["content"] = [{"type": "text", "text": "what?"}]  # type: ignore[index]
    without = client.post("/v1/messages/count_tokens", json=body)
    assert with_image.json()["input_tokens"] == without.json()["input_tokens"] + IMAGE_TOKENS
    r = client.post("/v1/responses", json={"model": "seer", "input": [
        {"role": "user", "content": [
            {"type": "input_text", "text": "what?"},
            {"type": "input_image", "image_url": "data:image/png;base64," + b64(RED)}]}]})
    assert r.status_code == 200, r.text
    assert completion(runners)["images"] == [b64(RED)]
    assert json.loads(json.dumps(r.json()))["status"] == "completed"
