"""Images reach the model: a real server, the tiny random-weight vision model of tests/vision.py
(text GGUF + LLaVA projector), created from a Modelfile with two FROM lines, and the official
clients (ollama, OpenAI, Anthropic), the CLI one-shot and the REPL in tmux, a registry round trip.

The weights are random, so answers are noise; what is checked is that the picture changes the
answer (greedy decoding, whole answers compared, num_predict capped) and the prompt's size."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.helpers import Server
from tests.integration.registry_fixture import Registry
from tests.vision import IMAGE_TOKENS, solid_png, write_vision_model

GREEDY = {"temperature": 0, "seed": 7, "num_predict": 12}
RED = solid_png((255, 0, 0))
BLUE = solid_png((0, 0, 255))
HTTP_TIMEOUT = 120


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vision")
    text, projector = write_vision_model(root / "model")
    pictures = root / "my pictures"
    pictures.mkdir()
    (pictures / "red.png").write_bytes(RED)
    (pictures / "blue.png").write_bytes(BLUE)
    (root / "notes.png").write_text("this is text, not a picture")
    return {"text": text, "projector": projector, "red": pictures / "red.png",
            "blue": pictures / "blue.png", "fake": root / "notes.png", "root": root}


@pytest.fixture(scope="module")
def seer(server: Server, files: dict[str, Path]) -> str:
    """The vision model, created by the CLI from a Modelfile naming both GGUF files."""
    modelfile = files["root"] / "Modelfile"
    modelfile.write_text(f"FROM {files['text']}\nFROM {files['projector']}\n"
                         "PARAMETER num_predict 12\nPARAMETER temperature 0\n")
    made = server.cli("create", "seer", "-f", str(modelfile))
    assert made.returncode == 0, made.stderr
    return "seer"


def chat(server: Server, model: str, images: list[str] | None, text: str = "What is this?",
         **extra: Any) -> httpx.Response:
    message: dict[str, Any] = {"role": "user", "content": text}
    if images is not None:
        message["images"] = images
    return httpx.post(f"{server.url}/api/chat", json={
        "model": model, "stream": False, "options": GREEDY, "messages": [message], **extra},
        timeout=HTTP_TIMEOUT)


def answer(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["message"]["content"])


# -- create / show / pull ---------------------------------------------------------------------


def test_two_from_lines_make_a_vision_model(server: Server, seer: str) -> None:
    show = server.client().show(seer)
    assert "vision" in (show.capabilities or [])
    raw = httpx.post(f"{server.url}/api/show", json={"model": seer}, timeout=HTTP_TIMEOUT).json()
    assert raw["projector_info"]["general.architecture"] == "clip"
    printed = server.cli("show", seer)
    assert printed.returncode == 0, printed.stderr
    assert "  Projector\n" in printed.stdout and "clip" in printed.stdout
    assert "    vision" in printed.stdout
    manifest = json.loads((server.models / "manifests/registry.ollama.ai/library/seer/latest")
                          .read_text())
    kinds = [layer["mediaType"] for layer in manifest["layers"]]
    assert kinds.count("application/vnd.ollama.image.projector") == 1
    assert kinds.count("application/vnd.ollama.image.model") == 1


def test_from_a_model_and_a_projector_file(server: Server, seer: str, smol: str,
                                           files: dict[str, Path]) -> None:
    """`FROM <model>` + `FROM ./mmproj.gguf`: the projector joins the model (Ollama drops it);
    a second set of weights is refused, never ignored."""
    text_only = files["root"] / "TextOnly"
    text_only.write_text(f"FROM {files['text']}\n")
    assert server.cli("create", "seer-text", "-f", str(text_only)).returncode == 0
    assert "vision" not in (server.client().show("seer-text").capabilities or [])
    both = files["root"] / "Both"
    both.write_text(f"FROM seer-text\nFROM {files['projector']}\nPARAMETER num_predict 12\n")
    made = server.cli("create", "seer-again", "-f", str(both))
    assert made.returncode == 0, made.stderr
    assert "vision" in (server.client().show("seer-again").capabilities or [])
    assert answer(chat(server, "seer-again", [b64(RED)])) == answer(chat(server, seer,
                                                                         [b64(RED)]))
    twice = files["root"] / "Twice"
    twice.write_text(f"FROM {smol}\nFROM {files['text']}\n")
    refused = server.cli("create", "two-models", "-f", str(twice))
    assert refused.returncode != 0 and "is not a projector" in refused.stderr


def test_a_pulled_projector_layer_works(server: Server, seer: str, registry: Registry,
                                        tmp_path: Path) -> None:
    remote = f"{registry.host}/test/seer:latest"
    assert server.cli("cp", seer, remote).returncode == 0
    pushed = server.cli("push", remote, "--insecure")
    assert pushed.returncode == 0, pushed.stderr
    fresh = Server(root=tmp_path / "fresh").start()
    try:
        pulled = fresh.cli("pull", remote, "--insecure")
        assert pulled.returncode == 0, pulled.stderr
        assert "vision" in (fresh.client().show(remote).capabilities or [])
        here = answer(chat(server, seer, [b64(RED)]))
        there = answer(chat(fresh, remote, [b64(RED)]))
        assert there == here  # same bytes, same greedy answer
    finally:
        fresh.cleanup()


# -- the native API through the official client -------------------------------------------------


def test_ollama_client_images_by_path_and_bytes(server: Server, seer: str,
                                                files: dict[str, Path]) -> None:
    client = server.client()
    by_path = client.chat(model=seer, options=GREEDY, messages=[
        {"role": "user", "content": "What is this?", "images": [str(files["red"])]}])
    by_bytes = client.chat(model=seer, options=GREEDY, messages=[
        {"role": "user", "content": "What is this?", "images": [RED]}])
    plain = client.chat(model=seer, options=GREEDY, messages=[
        {"role": "user", "content": "What is this?"}])
    assert by_path.message.content == by_bytes.message.content
    assert by_path.prompt_eval_count == by_bytes.prompt_eval_count
    assert by_path.prompt_eval_count == (plain.prompt_eval_count or 0) + IMAGE_TOKENS
    generated = client.generate(model=seer, prompt="What is this?", images=[RED],
                                options=GREEDY)
    bare = client.generate(model=seer, prompt="What is this?", options=GREEDY)
    assert generated.prompt_eval_count == (bare.prompt_eval_count or 0) + IMAGE_TOKENS
    assert generated.response


def test_the_picture_decides_the_answer(server: Server, seer: str) -> None:
    red = answer(chat(server, seer, [b64(RED)]))
    blue = answer(chat(server, seer, [b64(BLUE)]))
    assert red and blue and red != blue
    assert answer(chat(server, seer, [b64(RED)])) == red  # the same picture, the same answer
    both = chat(server, seer, [b64(RED), b64(BLUE)])
    one = chat(server, seer, [b64(RED)])
    assert both.json()["prompt_eval_count"] == one.json()["prompt_eval_count"] + IMAGE_TOKENS


def test_history_images_count_and_the_context_argument(server: Server, seer: str) -> None:
    messages = [{"role": "user", "content": "first", "images": [b64(RED)]},
                {"role": "assistant", "content": "a red one"},
                {"role": "user", "content": "and now?", "images": [b64(BLUE)]}]
    r = httpx.post(f"{server.url}/api/chat", json={"model": seer, "stream": False,
                                                   "options": GREEDY, "messages": messages},
                   timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    rendered = httpx.post(f"{server.url}/api/chat", json={
        "model": seer, "messages": messages, "_debug_render_only": True}, timeout=HTTP_TIMEOUT)
    info = rendered.json()["_debug_info"]
    assert info["image_count"] == 2
    assert "[img-0]first" in info["rendered_template"]
    assert "[img-1]and now?" in info["rendered_template"]
    first = httpx.post(f"{server.url}/api/generate", json={
        "model": seer, "prompt": "hello", "stream": False, "options": GREEDY},
        timeout=HTTP_TIMEOUT).json()
    follow = httpx.post(f"{server.url}/api/generate", json={
        "model": seer, "prompt": "this?", "images": [b64(BLUE)], "context": first["context"],
        "stream": False, "options": GREEDY}, timeout=HTTP_TIMEOUT)
    assert follow.status_code == 200, follow.text
    assert follow.json()["prompt_eval_count"] > IMAGE_TOKENS
    # that answer's context holds the image (negative ids): refused, not replayed without it
    again = httpx.post(f"{server.url}/api/generate", json={
        "model": seer, "prompt": "and?", "context": follow.json()["context"], "stream": False,
        "options": GREEDY}, timeout=HTTP_TIMEOUT)
    assert again.status_code == 400
    assert again.json()["error"].startswith("context holds the images of an earlier exchange")


# -- the dialects -----------------------------------------------------------------------------


def test_openai_data_url(server: Server, seer: str) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x")

    def ask(data: bytes | None) -> Any:
        parts: list[Any] = [{"type": "text", "text": "What is this?"}]
        if data is not None:
            parts.append({"type": "image_url",
                          "image_url": {"url": f"data:image/png;base64,{b64(data)}"}})
        return client.chat.completions.create(model=seer, temperature=0, seed=7, max_tokens=12,
                                              messages=[{"role": "user", "content": parts}])

    red, blue, plain = ask(RED), ask(BLUE), ask(None)
    # the image part is a message of its own (Ollama's conversion): its turn's markup as well
    assert red.usage.prompt_tokens >= plain.usage.prompt_tokens + IMAGE_TOKENS
    assert red.choices[0].message.content != blue.choices[0].message.content
    response = client.responses.create(model=seer, temperature=0, max_output_tokens=12, input=[
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{b64(RED)}",
             "detail": "auto"}]}])
    assert response.usage is not None
    assert response.usage.input_tokens >= IMAGE_TOKENS


def test_anthropic_base64_block(server: Server, seer: str) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="x")

    def blocks(data: bytes | None) -> list[Any]:
        out: list[Any] = []
        if data is not None:
            out.append({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                    "data": b64(data)}})
        return [*out, {"type": "text", "text": "What is this?"}]

    def ask(data: bytes | None) -> Any:
        return client.messages.create(model=seer, max_tokens=12,  # the Modelfile: temperature 0
                                      messages=[{"role": "user", "content": blocks(data)}])

    red, blue, plain = ask(RED), ask(BLUE), ask(None)
    assert red.usage.input_tokens == plain.usage.input_tokens + IMAGE_TOKENS
    assert red.content[0].text != blue.content[0].text  # type: ignore[union-attr]
    counted = client.messages.count_tokens(model=seer, messages=[
        {"role": "user", "content": blocks(RED)}])
    assert counted.input_tokens == red.usage.input_tokens


# -- errors: each a 400, the server answers the next request ------------------------------------


def test_refusals_leave_the_server_up(server: Server, seer: str, smol: str) -> None:
    refused = chat(server, smol, [b64(RED)])
    assert refused.status_code == 400
    assert refused.json() == {"error": "registry.ollama.ai/library/smollm2:135m does not "
                                       "support vision"}
    corrupt = chat(server, seer, [b64(RED[:40])])
    assert corrupt.status_code == 400
    assert corrupt.json()["error"].startswith("image 1 of message 1 could not be decoded: "
                                              "corrupt PNG data")
    wave = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 32
    wrong = httpx.post(f"{server.url}/api/generate", json={
        "model": seer, "prompt": "x", "images": [b64(RED), b64(wave)]}, timeout=HTTP_TIMEOUT)
    assert wrong.status_code == 400
    assert wrong.json()["error"].startswith("image 2 could not be decoded: unsupported format: "
                                            "audio")
    url = chat(server, seer, ["data:image/png;base64," + b64(RED)])
    assert url.status_code == 400 and "not standard base64" in url.json()["error"]
    with pytest.raises(ollama.ResponseError) as err:
        server.client().chat(model=seer, messages=[
            {"role": "user", "content": "?", "images": [b"GIF89a broken"]}])
    assert err.value.status_code == 400
    assert answer(chat(server, seer, [b64(BLUE)]))  # still serving images
    assert answer(chat(server, smol, None, "Say hi."))  # and text


# -- the CLI ----------------------------------------------------------------------------------


def test_one_shot_run_attaches_the_files_it_names(server: Server, seer: str, smol: str,
                                                  files: dict[str, Path]) -> None:
    red, blue = files["red"], files["blue"]
    escaped = str(red).replace(" ", "\\ ")
    ran = server.cli("run", seer, f"describe {escaped}")
    assert ran.returncode == 0, ran.stderr
    assert f"Added image '{red}'" in ran.stderr
    again = server.cli("run", seer, "describe", f"'{red}'")
    assert again.stdout == ran.stdout  # the same picture, quoted: the same greedy answer
    other = server.cli("run", seer, "describe " + str(blue).replace(" ", "\\ "))
    assert other.returncode == 0 and other.stdout != ran.stdout
    fake = server.cli("run", seer, f"describe {files['fake']}")
    assert fake.returncode == 1
    assert "invalid file type: text/plain; charset=utf-8" in fake.stderr
    # a model without vision takes the path as text, as Ollama's run does
    (files["root"] / "Short").write_text(f"FROM {smol}\nPARAMETER num_predict 4\n")
    assert server.cli("create", "short", "-f", str(files["root"] / "Short")).returncode == 0
    text_only = server.cli("run", "short", f"describe {escaped}", "--verbose")
    assert text_only.returncode == 0, text_only.stderr
    assert "Added image" not in text_only.stderr


def test_repl_adds_images(server: Server, seer: str, files: dict[str, Path]) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    from tests.integration.test_repl import Term

    term = Term(server, seer, width=300)
    try:
        red = str(files["red"]).replace(" ", "\\ ")
        blue = str(files["blue"]).replace(" ", "\\ ")
        out = term.enter(f"compare {red} with {blue}", timeout=120)
        assert f"Added image '{files['red']}'" in out
        assert f"Added image '{files['blue']}'" in out
        answer_lines = [line for line in out.splitlines() if line and "Added image" not in line]
        assert answer_lines  # the model answered the two pictures
        out = term.enter("/?")
        assert "Use /path/to/file to include .jpg, .png, .webp images" in out
    finally:
        term.close()
