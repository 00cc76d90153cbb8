"""The web chat page in real headless Chromium (Debian `chromium`, PyPI `playwright`) against a
real `pollama serve`: load, stream, reload, stop, regenerate, rename, search, delete, images,
pull, API keys, themes, phone width, XSS. No timing assertions: every wait is for a DOM state.

Screenshots go to tests/artifacts/web/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Server
from tests.integration.registry_fixture import Registry
from tests.vision import solid_png, write_vision_model

sync_api = pytest.importorskip("playwright.sync_api", reason="PyPI playwright is not installed")
expect = sync_api.expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
TIMEOUT = 120_000  # ms: a generous bound for a model to load and answer on 2 busy cores
KEY = "web-test-key-7f3a"
expect.set_options(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def tiny(server: Server, smol: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """SmolLM2 with short, greedy answers."""
    modelfile = tmp_path_factory.mktemp("tiny") / "Modelfile"
    modelfile.write_text(f"FROM {smol}\nPARAMETER num_predict 24\nPARAMETER temperature 0\n")
    made = server.cli("create", "tiny", "-f", str(modelfile))
    assert made.returncode == 0, made.stderr
    return "tiny:latest"


@pytest.fixture(scope="module")
def seer(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny random-weight vision model (text GGUF + projector, two FROM lines)."""
    root = tmp_path_factory.mktemp("seer")
    text, projector = write_vision_model(root / "model")
    (root / "Modelfile").write_text(f"FROM {text}\nFROM {projector}\n"
                                    "PARAMETER num_predict 8\nPARAMETER temperature 0\n")
    made = server.cli("create", "seer", "-f", str(root / "Modelfile"))
    assert made.returncode == 0, made.stderr
    return "seer:latest"


@pytest.fixture(autouse=True)
def no_conversations_left(server: Server) -> Iterator[None]:
    """Each test starts from an empty sidebar, whatever the one before it left."""
    yield
    for conversation in api(server, "GET", "/api/conversations?limit=1000").json()[
            "conversations"]:
        api(server, "DELETE", f"/api/conversations/{conversation['id']}")


def open_page(browser: Any, url: str, *, scheme: str = "light", width: int = 1280,
              height: int = 800, path: str = "/ui/") -> Any:
    context = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme=scheme)
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.errors = errors
    page.goto(url + path)
    page.wait_for_selector("body[data-ready=true]")
    return page


@pytest.fixture
def page(browser: Any, server: Server, tiny: str) -> Iterator[Any]:
    page = open_page(browser, server.url)
    page.select_option("#model", tiny)
    yield page
    assert page.errors == []
    page.context.close()


def api(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, timeout=120, **kwargs)


def send(page: Any, text: str) -> None:
    """Send `text` and wait for its answer's element, so `wait_answer` never takes an earlier
    answer for it."""
    answers = page.locator(".msg.assistant")
    before = answers.count()
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    expect(answers).to_have_count(before + 1)


def wait_answer(page: Any, index: int = -1) -> Any:
    """The assistant message at `index` once it is finished (its foot holds the copy button)."""
    answers = page.locator(".msg.assistant")
    answer = answers.nth(index) if index >= 0 else answers.last
    answer.locator(".msg-foot .copy-btn").wait_for()
    return answer


def shot(page: Any, name: str) -> None:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")


# -- serving ----------------------------------------------------------------------------------


def test_browsers_are_sent_to_the_page_and_clients_still_get_the_heartbeat(server: Server):
    html = httpx.get(server.url + "/", headers={"Accept": "text/html,application/xhtml+xml,"
                                                "application/xml;q=0.9,*/*;q=0.8"})
    assert html.status_code == 307 and html.headers["location"] == "/ui/"
    for accept in (None, "*/*", "application/json"):
        plain = httpx.get(server.url + "/", headers={"Accept": accept} if accept else {})
        assert (plain.status_code, plain.text) == (200, "Ollama is running")
    assert httpx.head(server.url + "/", headers={"Accept": "text/html"}).status_code == 200
    assert server.client().list() is not None  # the official client is not redirected
    assert httpx.get(server.url + "/ui").headers["location"] == "/ui/"


def test_page_files_have_their_types_revalidation_and_a_strict_policy(server: Server):
    page = httpx.get(server.url + "/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<title>pollama</title>" in page.text
    for path, kind in [("app.js", "text/javascript"), ("app.css", "text/css"),
                       ("vendor/marked.umd.js", "text/javascript"),
                       ("vendor/purify.min.js", "text/javascript"),
                       ("vendor/highlight.min.js", "text/javascript"),
                       ("vendor/hljs-dark.min.css", "text/css"), ("icon.svg", "image/svg+xml")]:
        got = httpx.get(f"{server.url}/ui/{path}")
        assert got.status_code == 200, path
        assert got.headers["content-type"].split(";")[0] == kind, path
        again = httpx.get(f"{server.url}/ui/{path}", headers={"If-None-Match": got.headers["etag"]})
        assert again.status_code == 304, path
    assert httpx.get(server.url + "/ui/missing.js").status_code == 404
    # Nothing from a CDN: every script and stylesheet the page names is its own.
    assert "http://" not in page.text and "https://" not in page.text


# -- chatting ---------------------------------------------------------------------------------


def test_send_stream_and_find_the_conversation_after_a_reload(page: Any, server: Server,
                                                              tiny: str):
    expect(page.locator("#welcome")).to_be_visible()
    shot(page, "desktop-light-empty")
    send(page, "Say hello to the web page")
    expect(page.locator("#stop")).to_be_visible()  # streaming: the send button became stop
    answer = wait_answer(page)
    expect(page.locator("#send")).to_be_visible()
    text = answer.locator(".content").inner_text()
    assert text.strip()
    assert page.locator(".msg.user .bubble").inner_text() == "Say hello to the web page"

    stored = api(server, "GET", "/api/conversations").json()["conversations"]
    assert [c["title"] for c in stored] == ["Say hello to the web page"]
    full = api(server, "GET", f"/api/conversations/{stored[0]['id']}").json()
    assert [m["role"] for m in full["messages"]] == ["user", "assistant"]
    assert full["messages"][1]["model"] == tiny
    assert page.evaluate("location.hash") == f"#/c/{stored[0]['id']}"

    # The model's speed shows on hover, computed from the done chunk's eval_count/duration.
    stats = answer.locator(".stats")
    assert stats.evaluate("e => getComputedStyle(e).opacity") == "0"
    answer.hover()
    expect(stats).to_have_css("opacity", "1")
    rate = full["messages"][1]["eval_count"] / (full["messages"][1]["eval_duration"] / 1e9)
    assert stats.inner_text() == f"{full['messages'][1]['eval_count']} tokens · {rate:.1f} tokens/s"
    shot(page, "desktop-light-chat")

    # A fresh page (no hash) lists it; clicking it shows the same messages.
    page.goto(server.url + "/ui/")
    page.wait_for_selector("body[data-ready=true]")
    item = page.locator(".conv", has_text="Say hello to the web page")
    expect(item).to_have_count(1)
    item.locator(".conv-link").click()
    expect(page.locator(".msg")).to_have_count(2)
    assert wait_answer(page).locator(".content").inner_text() == text
    expect(page.locator("#title")).to_have_text("Say hello to the web page")
    expect(item).to_have_class("conv active")
    api(server, "DELETE", f"/api/conversations/{stored[0]['id']}")


def test_enter_sends_and_shift_enter_makes_a_new_line(page: Any, server: Server):
    page.click("#prompt")
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert page.input_value("#prompt") == "first line\nsecond line"
    expect(page.locator(".msg")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(page.locator(".msg.user .bubble")).to_have_text("first line\nsecond line")
    wait_answer(page)
    assert page.input_value("#prompt") == ""
    conversation = page.evaluate("location.hash").removeprefix("#/c/")
    api(server, "DELETE", f"/api/conversations/{conversation}")


def test_escape_stops_a_generation_and_regenerate_answers_again(page: Any, server: Server,
                                                                 smol: str):
    made = api(server, "POST", "/api/conversations", json={
        "model": smol, "title": "long essay", "options": {"num_predict": 4000}}).json()
    page.goto(f"{server.url}/ui/#/c/{made['id']}")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#title")).to_have_text("long essay")
    send(page, "Write a very long essay about the history of Rome, with twenty sections.")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".content p").first).to_be_visible()  # some answer has streamed
    page.keyboard.press("Escape")
    expect(answer.locator(".note")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_visible()
    shown = answer.locator(".content").inner_text()
    assert shown.strip()
    # The server keeps no half answer: only the question is stored.
    stored = api(server, "GET", f"/api/conversations/{made['id']}").json()["messages"]
    assert [m["role"] for m in stored] == ["user"]

    # Regenerate: a short answer this time (the conversation's options, changed by PATCH).
    api(server, "PATCH", f"/api/conversations/{made['id']}",
        json={"options": {"num_predict": 12, "temperature": 0}})
    page.goto(f"{server.url}/ui/#/c/{made['id']}")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator(".msg")).to_have_count(1)  # the question, no answer
    send(page, "Now just say hi.")
    first = wait_answer(page).locator(".content").inner_text()
    stored = api(server, "GET", f"/api/conversations/{made['id']}").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "user", "assistant"]
    previous = page.locator(".msg.assistant").last
    old = previous.element_handle()
    previous.hover()
    page.locator(".msg.assistant .regenerate").click()
    # the old answer leaves the page before the new one comes: wait for that, or the old
    # answer's finished foot would pass for the new answer's
    page.wait_for_function("node => !node.isConnected", arg=old)
    expect(page.locator(".msg")).to_have_count(3)
    again = wait_answer(page).locator(".content").inner_text()
    assert again == first  # greedy: the same question gets the same answer
    stored = api(server, "GET", f"/api/conversations/{made['id']}").json()["messages"]
    assert [(m["role"], m["content"]) for m in stored][1:] == [
        ("user", "Now just say hi."), ("assistant", stored[2]["content"])]
    assert len(stored) == 3  # the old answer was replaced, not kept beside the new one
    api(server, "DELETE", f"/api/conversations/{made['id']}")


def test_truncating_a_conversation(server: Server, tiny: str):
    """`DELETE /api/conversations/{ref}/messages?from=N`, what the page's Regenerate uses."""
    made = api(server, "POST", "/api/conversations", json={"model": tiny}).json()
    for text in ("one", "two"):
        api(server, "POST", "/api/chat", json={"conversation": made["id"], "stream": False,
                                               "messages": [{"role": "user", "content": text}]})
    path = f"/api/conversations/{made['id']}/messages"
    assert api(server, "DELETE", path + "?from=-1").status_code == 400
    assert api(server, "DELETE", path).status_code == 400  # `from` is required
    assert api(server, "DELETE", "/api/conversations/nope/messages?from=0").status_code == 404
    cut = api(server, "DELETE", path + "?from=2")
    assert cut.status_code == 200 and cut.json()["id"] == made["id"]
    stored = api(server, "GET", f"/api/conversations/{made['id']}").json()["messages"]
    assert [(m["role"], m["content"]) for m in stored][:1] == [("user", "one")]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert api(server, "DELETE", path + "?from=5").status_code == 200  # past the end: nothing


def test_code_blocks_are_highlighted_and_copied(browser: Any, server: Server, smol: str):
    made = api(server, "POST", "/api/conversations", json={
        "model": smol, "options": {"num_predict": 160, "temperature": 0}}).json()
    page = open_page(browser, server.url, path=f"/ui/#/c/{made['id']}")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    send(page, "Write a Python function that adds two numbers, in a Markdown code block.")
    answer = wait_answer(page)
    block = answer.locator(".codeblock").first
    expect(block).to_be_visible()
    expect(block.locator("code.hljs")).to_have_count(1)
    assert block.locator("code .hljs-keyword").count() > 0  # highlighted, not plain text
    code = block.locator("pre code").inner_text()
    block.locator(".copy-btn").click()
    expect(block.locator(".copy-btn")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == code
    shot(page, "desktop-light-code")
    page.context.close()
    page = open_page(browser, server.url, scheme="dark", path=f"/ui/#/c/{made['id']}")
    wait_answer(page)
    shot(page, "desktop-dark-code")
    page.context.close()


def test_model_output_never_becomes_markup(browser: Any, server: Server, smol: str):
    """An answer holding HTML (forced here by a JSON-schema enum) is shown as text."""
    attack = ("<img src=x onerror=window.__xss=1> **bold** <script>window.__xss=2</script> "
              "[link](javascript:window.__xss=3)")
    made = api(server, "POST", "/api/conversations", json={"model": smol}).json()
    answered = api(server, "POST", "/api/chat", json={
        "model": smol, "conversation": made["id"], "stream": False,
        "messages": [{"role": "user", "content": "Repeat it."}],
        "format": {"type": "string", "enum": [attack]}, "options": {"num_predict": 120}})
    assert answered.status_code == 200, answered.text
    assert json.loads(answered.json()["message"]["content"]) == attack
    page = open_page(browser, server.url, path=f"/ui/#/c/{made['id']}")
    content = wait_answer(page).locator(".content")
    expect(content.locator("strong")).to_have_text("bold")  # Markdown still renders
    assert content.locator("img, script").count() == 0
    assert "<img src=x onerror=window.__xss=1>" in content.inner_text()
    assert "<script>window.__xss=2</script>" in content.inner_text()
    assert content.locator("a").get_attribute("href") is None
    content.locator("a").click()
    assert page.evaluate("window.__xss") is None
    assert page.errors == []
    page.context.close()
    api(server, "DELETE", f"/api/conversations/{made['id']}")


def test_streamed_html_and_the_users_own_html_are_shown_as_text(browser: Any, server: Server,
                                                                smol: str):
    """The same, live: the page streams an answer a stored grammar forces to hold a script, an
    image with a handler and Markdown; the user's message holds HTML too. All of it is text."""
    answer = "**bold** <script>window.__xss=2</script> <img src=x onerror=window.__xss=1>"
    grammar = "root ::= " + json.dumps(answer)
    made = api(server, "POST", "/api/conversations", json={
        "model": smol, "options": {"grammar": grammar, "num_predict": 80}}).json()
    page = open_page(browser, server.url, path=f"/ui/#/c/{made['id']}")
    question = "<img src=y onerror=window.__xss=4><b>hi</b>"
    send(page, question)
    content = wait_answer(page).locator(".content")
    expect(content.locator("strong")).to_have_text("bold")
    assert content.locator("img, script").count() == 0
    assert "<script>window.__xss=2</script> <img src=x onerror=window.__xss=1>" in \
        content.inner_text()
    mine = page.locator(".msg.user").last
    assert mine.inner_text().strip() == question
    assert mine.locator("img, b").count() == 0
    assert page.locator("#messages img, #messages script, .conv img").count() == 0
    assert page.evaluate("window.__xss") is None
    stored = api(server, "GET", f"/api/conversations/{made['id']}").json()["messages"]
    assert [m["content"] for m in stored] == [question, answer]
    assert page.errors == []
    page.context.close()
    api(server, "DELETE", f"/api/conversations/{made['id']}")


# -- the sidebar ------------------------------------------------------------------------------


def test_search_rename_and_delete(page: Any, server: Server, tiny: str):
    ids = [api(server, "POST", "/api/conversations", json={"model": tiny, "title": t}).json()["id"]
           for t in ("apple pie recipe", "banana bread")]
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#search", "banan")
    expect(page.locator(".conv")).to_have_count(1)
    expect(page.locator(".conv .conv-title")).to_have_text("banana bread")
    page.fill("#search", "")
    expect(page.locator(".conv")).to_have_count(2)

    apple = page.locator(".conv", has_text="apple pie recipe")
    apple.hover()
    apple.locator(".conv-rename").click()
    page.fill(".conv-edit", "grandma's apple pie")
    page.press(".conv-edit", "Enter")
    expect(page.locator(".conv", has_text="grandma's apple pie")).to_have_count(1)
    assert api(server, "GET", f"/api/conversations/{ids[0]}").json()["title"] == \
        "grandma's apple pie"

    banana = page.locator(".conv", has_text="banana bread")
    banana.hover()
    banana.locator(".conv-delete").click()
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-ok")
    expect(page.locator(".conv", has_text="banana bread")).to_have_count(0)
    assert api(server, "GET", f"/api/conversations/{ids[1]}").status_code == 404
    # Cancelling keeps it.
    apple = page.locator(".conv", has_text="grandma's apple pie")
    apple.hover()
    apple.locator(".conv-delete").click()
    page.locator("#confirm button[value=cancel]").click()
    expect(apple).to_have_count(1)
    assert api(server, "GET", f"/api/conversations/{ids[0]}").status_code == 200
    api(server, "DELETE", f"/api/conversations/{ids[0]}")


def test_system_prompt_and_temperature_are_kept_per_conversation(page: Any, server: Server):
    page.click("#settings-open")
    page.fill("#system", "You answer in one word.")
    page.uncheck("#temperature-default")
    page.locator("#temperature").fill("0.3")
    page.click("#settings-save")
    send(page, "Hi")
    wait_answer(page)
    conversation = page.evaluate("location.hash").removeprefix("#/c/")
    stored = api(server, "GET", f"/api/conversations/{conversation}").json()
    assert stored["system"] == "You answer in one word."
    assert stored["options"] == {"temperature": 0.3}
    page.click("#settings-open")
    assert page.input_value("#system") == "You answer in one word."
    page.fill("#system", "")
    page.check("#temperature-default")
    page.click("#settings-save")
    expect(page.locator("#settings")).to_be_hidden()
    page.wait_for_function("""async (id) => {
        const c = await (await fetch('/api/conversations/' + id)).json();
        return c.system === '' && Object.keys(c.options).length === 0; }""", arg=conversation)
    api(server, "DELETE", f"/api/conversations/{conversation}")


# -- images -----------------------------------------------------------------------------------


def test_attach_an_image_for_a_vision_model(page: Any, server: Server, seer: str, tiny: str,
                                            tmp_path: Path):
    expect(page.locator("#attach")).to_be_hidden()  # tiny is text only
    page.select_option("#model", seer)
    expect(page.locator("#attach")).to_be_visible()
    picture = tmp_path / "red.png"
    picture.write_bytes(solid_png((220, 30, 30)))
    page.set_input_files("#file", str(picture))
    expect(page.locator(".attachment img")).to_have_count(1)
    send(page, "What is in this picture?")
    wait_answer(page)
    expect(page.locator(".msg.user .images img")).to_have_count(1)
    conversation = page.evaluate("location.hash").removeprefix("#/c/")
    stored = api(server, "GET", f"/api/conversations/{conversation}").json()
    question = stored["messages"][0]
    assert len(question["images"]) == 1
    image = api(server, "GET", f"/api/conversations/{conversation}/images/{question['images'][0]}")
    assert image.content == picture.read_bytes()
    # After a reload the stored image is shown again (fetched with the page's credentials).
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    img = page.locator(".msg.user .images img")
    expect(img).to_have_count(1)
    page.wait_for_function("() => document.querySelector('.msg.user .images img').naturalWidth > 0")
    api(server, "DELETE", f"/api/conversations/{conversation}")


# -- pulling ----------------------------------------------------------------------------------


def test_pull_a_model_by_name_with_progress(page: Any, server: Server, tiny: str,
                                            registry: Registry):
    client = server.client()
    client.copy(tiny, f"{registry.host}/web/shared:1")
    client.push(f"{registry.host}/web/shared:1", insecure=True)
    client.delete(f"{registry.host}/web/shared:1")
    page.click("#pull-open")
    page.fill("#pull-name", f"http://{registry.host}/web/missing:1")
    page.click("#pull-start")
    expect(page.locator("#pull-error")).to_be_visible()
    page.fill("#pull-name", f"http://{registry.host}/web/shared:1")
    page.click("#pull-start")
    expect(page.locator("#pull-status")).to_have_text(
        f"http://{registry.host}/web/shared:1 is ready")
    assert page.locator("#pull-bar").evaluate("e => e.style.width") == "100%"
    assert page.input_value("#model") == f"{registry.host}/web/shared:1"
    page.click("#pull-cancel")
    names = [m["name"] for m in api(server, "GET", "/api/tags").json()["models"]]
    assert f"{registry.host}/web/shared:1" in names
    client.delete(f"{registry.host}/web/shared:1")


# -- looks: themes and phones -----------------------------------------------------------------


def test_theme_follows_the_system(browser: Any, server: Server, tiny: str):
    colors = {}
    for scheme in ("light", "dark"):
        page = open_page(browser, server.url, scheme=scheme)
        colors[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        shot(page, f"desktop-{scheme}")
        page.context.close()
    assert colors == {"light": "rgb(255, 255, 255)", "dark": "rgb(23, 24, 28)"}


def test_phone_width_nothing_overflows(browser: Any, server: Server, tiny: str):
    page = open_page(browser, server.url, width=390, height=844)
    page.select_option("#model", tiny)
    send(page, "Explain in a few words what a very_long_identifier_without_any_spaces_at_all_"
               "that_goes_on_and_on_and_on is.")
    wait_answer(page)
    overflow = """() => {
        const width = document.documentElement.clientWidth;
        const bad = [];
        for (const e of document.querySelectorAll('body *')) {
            if (e.closest('pre, table, .sidebar, dialog, template')) continue;
            const r = e.getBoundingClientRect();
            if (r.width && (r.right > width + 0.5 || r.left < -0.5))
                bad.push(e.outerHTML.slice(0, 80));
        }
        return {width, scroll: document.documentElement.scrollWidth, bad};
    }"""
    found = page.evaluate(overflow)
    assert found["scroll"] <= 390 and found["bad"] == [], found
    shot(page, "phone-390-chat")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    page.click("#toggle-sidebar")
    expect(page.locator("#sidebar")).to_be_in_viewport()
    page.wait_for_function(
        "() => document.getElementById('sidebar').getBoundingClientRect().left >= 0")
    shot(page, "phone-390-sidebar")
    page.locator(".conv-link").first.click()
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    conversation = page.evaluate("location.hash").removeprefix("#/c/")
    page.context.close()
    api(server, "DELETE", f"/api/conversations/{conversation}")


# -- API keys ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed() -> Iterator[Server]:
    srv = Server(extra_env={"OLLAMA_API_KEYS": KEY}).start()
    yield srv
    srv.cleanup()


def test_the_page_loads_without_a_key_and_asks_for_one(browser: Any, keyed: Server):
    assert httpx.get(keyed.url + "/ui/").status_code == 200
    assert httpx.get(keyed.url + "/ui/app.js").status_code == 200
    assert httpx.get(keyed.url + "/ui/../api/tags").status_code in (401, 404)
    assert httpx.get(keyed.url + "/api/tags").status_code == 401
    assert httpx.post(keyed.url + "/ui/", json={}).status_code == 401  # only reads are open

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(keyed.url + "/ui/")
    dialog = page.locator("#apikey")
    expect(dialog).to_be_visible()
    expect(page.locator("#apikey-error")).to_be_hidden()
    page.fill("#apikey-input", "wrong-key")
    page.click("#apikey-save")
    expect(page.locator("#apikey-error")).to_be_visible()  # asked again, saying why
    shot(page, "apikey-prompt")
    page.fill("#apikey-input", KEY)
    page.click("#apikey-save")
    page.wait_for_selector("body[data-ready=true]")
    expect(dialog).to_be_hidden()
    expect(page.locator("#conversations-empty")).to_have_text("No conversations yet.")
    assert page.evaluate("localStorage.getItem('pollama.apiKey')") == KEY
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(dialog).to_be_hidden()  # kept in localStorage, sent as Authorization: Bearer
    context.close()
