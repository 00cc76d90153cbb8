"""The interactive `pollama run` in a real terminal: tmux runs it, send-keys types, capture-pane
reads. Every wait polls the screen with a deadline; nothing asserts on time."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux)")

PLACEHOLDER = ">>> Send a message (/? for help)"
ALT_PLACEHOLDER = "... Press Enter to send"
NOTICE = "(earlier messages no longer fit the context window and were dropped)"


@pytest.fixture(scope="module")
def server():
    """One slot per model: an answer after a cancelled one proves the slot was freed."""
    srv = Server(extra_env={"OLLAMA_NUM_PARALLEL": "1"}).start()
    yield srv
    srv.cleanup()


class Term:
    """`pollama run` in a detached tmux session on a private tmux server."""

    def __init__(self, server: Server, *args: str, env: dict[str, str] | None = None,
                 home: Path | None = None, width: int = 120, height: int = 40) -> None:
        self.socket = f"pollama-test-{uuid.uuid4().hex[:8]}"
        self.home = home or server.home
        variables = {"OLLAMA_HOST": server.env["OLLAMA_HOST"], "HOME": str(self.home),
                     "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1", **(env or {})}
        command = " ".join([
            "env", *(shlex.quote(f"{k}={v}") for k, v in variables.items()),
            shlex.quote(sys.executable), "-X", "faulthandler", "-m", "pollama", "run",
            *map(shlex.quote, args),
            "; echo __EXIT__$?; sleep 600"])
        self.tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)
        self.tmux("set-option", "-t", "t", "history-limit", "10000")
        self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        """Everything the pane shows and scrolled off, terminal-wrapped lines joined."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen().rstrip().split("\n")]

    def visible(self) -> list[str]:
        """The lines the pane shows now, without the scrollback."""
        shown = self.tmux("capture-pane", "-p", "-J", "-t", "t")
        return [line.rstrip() for line in shown.rstrip().split("\n")]

    def wait(self, check: Callable[[str], bool] | str, timeout: float = 60) -> str:
        """Poll the screen until `check` (a text it must contain, or a test) holds."""
        test = (lambda s: check in s) if isinstance(check, str) else check
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if test(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {check!r}; screen:\n{text}")
            time.sleep(0.05)

    def _prompts(self) -> int:
        return sum(1 for line in self.lines() if line.startswith((">>> ", "... ")))

    def _ready(self) -> bool:
        lines = [line for line in self.lines() if line.strip()]
        return bool(lines) and lines[-1] in (PLACEHOLDER, ALT_PLACEHOLDER)

    def ready(self, timeout: float = 60) -> str:
        """Wait for an empty prompt (`>>> ` or `... `) waiting for input."""
        return self.wait(lambda _: self._ready(), timeout)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)

    def enter(self, line: str, timeout: float = 60) -> str:
        """Type a line at the prompt, press Enter, and return what it printed (next prompt)."""
        self.ready(timeout)
        before = self._prompts()
        self.type(line)
        self.wait(lambda s: line.split("\n")[-1] in s.rstrip().rsplit("\n", 1)[-1], timeout)
        self.keys("Enter")
        self.wait(lambda _: self._prompts() > before and self._ready(), timeout)
        return self.output_of(line)

    def output_of(self, line: str) -> str:
        """The text printed after the last prompt line that holds `line`, up to the next prompt."""
        lines = self.lines()
        start = max(i for i, text in enumerate(lines) if text.endswith(line))
        out = []
        for text in lines[start + 1:]:
            if text.startswith((">>> ", "... ")):
                break
            out.append(text)
        return "\n".join(out).strip("\n")

    def exited(self, timeout: float = 30) -> str:
        return self.wait(lambda s: "__EXIT__" in s, timeout)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        self.socket_path.unlink(missing_ok=True)


@pytest.fixture
def term(server, smol):
    """`pollama run smollm2:135m` at its first prompt, temperature 0 and short answers."""
    terms: list[Term] = []

    def start(*args: str, model: str = smol, **kwargs) -> Term:
        t = Term(server, model, *args, **kwargs)
        terms.append(t)
        t.ready()
        return t

    yield start
    for t in terms:
        t.close()


def short(t: Term, num_predict: int = 12) -> None:
    assert t.enter(f"/set parameter num_predict {num_predict}") == \
        f"Set parameter 'num_predict' to '{num_predict}'"
    assert t.enter("/set parameter temperature 0") == "Set parameter 'temperature' to '0'"


def test_chat_turns_keep_context_and_exit_with_bye(term, server):
    t = term()
    screen = t.screen()
    assert PLACEHOLDER in screen  # prompt, then the placeholder in the empty line
    short(t)
    first = t.enter("My name is Alice.")
    assert first
    t.enter("/set verbose")
    second = t.enter("What is my name?")
    assert "prompt eval count:" in second and "eval rate:" in second
    count = int(second.split("prompt eval count:")[1].split()[0])
    assert count > 30  # the second turn's prompt holds the first turn too
    assert t.enter("/set quiet") == "Set 'quiet' mode."
    assert "eval rate:" not in t.enter("Thanks.")
    t.type("/bye")
    t.keys("Enter")
    assert "__EXIT__0" in t.exited()


@pytest.mark.parametrize("terminal", ["xterm-256color", "screen", "tmux-256color"])
def test_first_entry_is_shown_once(term, server, smol, terminal):
    """The first prompt sits on the top row, where tmux (scroll-on-clear) takes an erase-down
    for a clear of the whole screen and keeps the old screen in the scrollback: the entry was
    left there a second time, padded to the placeholder's width."""
    server.client().create(model="smol-first", from_=smol,
                           parameters={"num_predict": 8, "temperature": 0})
    t = term(model="smol-first", env={"TERM": terminal})
    answer = t.enter("Say hello.")
    assert answer
    lines = t.lines()
    assert [line for line in lines if line.startswith(">>> ")] == [">>> Say hello.", PLACEHOLDER]
    assert lines[0] == ">>> Say hello." and lines[1] == answer.split("\n")[0]
    # Ctrl+L puts the prompt back on the top row: the next entry is shown once too.
    t.keys("C-l")
    t.wait(lambda _: t.visible() == [PLACEHOLDER])
    assert t.enter("/set verbose") == "Set 'verbose' mode."
    assert t.visible()[:2] == [">>> /set verbose", "Set 'verbose' mode."]
    assert t.lines().count(">>> /set verbose") == 1


def test_help_texts_and_unknown_commands(term):
    t = term()
    out = t.enter("/?")
    assert out.startswith("Available Commands:\n  /set            Set session variables")
    assert "  /? shortcuts    Help for keyboard shortcuts" in out
    assert 'Use """ to begin a multi-line message.' in out
    assert "/path/to/file" not in out  # SmolLM2 has no vision
    assert t.enter("/help").startswith("Available Commands:")
    assert "  /set nothink           Disable thinking" in t.enter("/? set")
    assert "  /show template     Show prompt template" in t.enter("/? show")
    shortcuts = t.enter("/? shortcuts")
    assert shortcuts.startswith("Available keyboard shortcuts:")
    assert "  Ctrl + d            Exit ollama (/bye)" in shortcuts
    assert t.enter("/foo bar") == "Unknown command '/foo'. Type /? for help"
    assert t.enter("/set foo") == "Unknown command '/set foo'. Type /? for help"
    assert t.enter("/show foo") == "Unknown command '/show foo'. Type /? for help"
    assert "/set parameter ...     Set a parameter" in t.enter("/set")
    assert "/show info         Show details for this model" in t.enter("/show")
    models = t.enter("/list")
    assert models.startswith("NAME") and "smollm2:135m" in models


def test_set_commands(term, server):
    t = term()
    params = t.enter("/set parameter")
    assert params.startswith("Available Parameters:")
    assert "/set parameter stop <string> <string> ...   Set the stop parameters" in params
    assert t.enter("/set parameter num_predict abc") == \
        "Couldn't set parameter: \"invalid int value [abc]\""
    assert t.enter("/set parameter foo 1") == "Couldn't set parameter: \"unknown parameter 'foo'\""
    assert t.enter("/set parameter stop <end> STOP") == "Set parameter 'stop' to '<end>, STOP'"
    assert t.enter("/set parameter top_p 0.5") == "Set parameter 'top_p' to '0.5'"
    short(t, 8)
    shown = t.enter("/show parameters")
    assert shown.startswith("Model defined parameters:\n  No additional parameters were "
                            "specified for this model.\n\nUser defined parameters:")
    assert "  stop                           [<end> STOP]" in shown
    assert "  top_p                          0.5" in shown
    assert "  num_predict                    8" in shown
    assert t.enter("/set wordwrap") == "Set 'wordwrap' mode."
    assert t.enter("/set nowordwrap") == "Set 'nowordwrap' mode."
    assert t.enter("/set format xml") == \
        "Invalid or missing format. For 'json' mode use '/set format json'"
    assert t.enter("/set format json") == "Set format to 'json' mode."
    assert t.enter("Give me a JSON object with a name.").lstrip().startswith("{")
    assert t.enter("/set noformat") == "Disabled format."
    think = t.enter("/set think")
    assert "Set 'think' mode." in think
    assert 'warning: model "smollm2:135m" does not support thinking output' in think
    assert t.enter("Hello").startswith('error: "smollm2:135m" does not support thinking')
    assert "Set 'think' mode to 'high'." in t.enter("/set think high")
    nothink = t.enter("/set nothink")
    assert "Set 'nothink' mode." in nothink and "does not support thinking output" in nothink
    assert "error" not in t.enter("Hello")
    assert t.enter("/set system Always answer in French.") == "Set system message."
    assert t.enter("/show system") == "Always answer in French."
    t.enter('/set system """You are a pirate.')
    assert t.enter('Talk like one."""') == "Set system message."
    assert t.enter("/show system") == "You are a pirate.\nTalk like one."
    assert "SYSTEM" in t.enter("/show modelfile")
    assert t.enter("/clear") == "Cleared session context"


def test_history_file_and_nohistory(term, server, tmp_path):
    home = tmp_path / "home"
    t = term(home=home)
    history = home / ".ollama" / "history"
    t.enter("/set wordwrap")
    assert history.read_text().splitlines()[-1] == "/set wordwrap"
    t.enter("/set nohistory")
    t.enter("/set quiet")
    assert "/set quiet" not in history.read_text()
    t.enter("/set history")
    t.enter("/set verbose")
    assert history.read_text().splitlines()[-1] == "/set verbose"
    t.keys("Up")
    t.wait(lambda s: s.rstrip().endswith(">>> /set verbose"))
    t.keys("C-u")
    t.ready()
    t.close()
    quiet = term(home=home, env={"OLLAMA_NOHISTORY": "1"})
    before = history.read_text()
    quiet.enter("/set wordwrap")
    assert history.read_text() == before
    quiet.keys("Up")  # the old entries are still there to recall
    quiet.wait(lambda s: s.rstrip().endswith(">>> /set wordwrap"))


def test_show_commands(term):
    t = term()
    info = t.enter("/show info")
    assert info.startswith("  Model\n    architecture        llama")
    assert "Capabilities\n    completion" in info
    assert t.enter("/show license") == "No license was specified for this model."
    assert t.enter("/show system") == "No system message was specified for this model."
    assert "<|im_start|>" in t.enter("/show template")
    modelfile = t.enter("/show modelfile")
    assert modelfile.startswith('# Modelfile generated by "ollama show"') and "FROM " in modelfile
    t.enter("/set parameter num_ctx 1024")
    assert "PARAMETER num_ctx 1024" in t.enter("/show modelfile")


def test_multiline_and_keys(term, tmp_path):
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "edited in the editor\\n\\n" > "$1"\n')
    editor.chmod(0o755)
    t = term(env={"OLLAMA_EDITOR": str(editor)})
    short(t, 6)
    t.enter('"""')  # the prompt becomes `... ` with its own placeholder
    assert t.screen().rstrip().endswith(ALT_PLACEHOLDER)
    t.enter("first line")
    out = t.enter('second line"""')
    assert out  # answered: the block was sent as one message
    lines = t.lines()
    i = lines.index('>>> """')
    assert lines[i + 1:i + 3] == ["... first line", '... second line"""']
    assert t.enter('"""one line"""')
    # Ctrl+C at the prompt clears the line and says how to leave.
    t.type("some text")
    t.wait("some text")
    t.keys("C-c")
    t.wait(lambda s: s.rstrip().endswith("Use Ctrl + d or /bye to exit.\n" + PLACEHOLDER))
    # Ctrl+C inside a """ block drops it.
    t.enter('"""')
    t.keys("C-c")
    t.wait(lambda _: t.lines()[-1] == PLACEHOLDER)
    # Ctrl+J inserts a newline; Enter sends both lines as one message.
    t.type("alpha")
    t.wait("alpha")
    t.keys("C-j")
    t.wait(lambda s: s.rstrip().endswith("..."))
    t.type("beta")
    t.wait(lambda s: s.rstrip().endswith("... beta"))
    t.keys("Enter")
    t.ready()
    assert ">>> alpha\n... beta\n" in t.screen()
    # Tab inserts 8 spaces.
    t.type("x")
    t.keys("Tab")
    t.type("y")
    t.wait(lambda s: s.rstrip().endswith(">>> x        y"))
    t.keys("C-u")
    t.ready()
    # Ctrl+G: the editor's text (trailing newlines trimmed) fills the prompt.
    t.keys("C-g")
    t.wait(lambda s: s.rstrip().endswith(">>> edited in the editor"))
    t.keys("C-u")
    t.ready()
    # Ctrl+D on an empty line exits.
    t.keys("C-d")
    assert "__EXIT__0" in t.exited()


def test_editor_not_found(term):
    t = term(env={"OLLAMA_EDITOR": "no-such-editor-x"})
    t.keys("C-g")
    t.wait('error: editor "no-such-editor-x" not found, set OLLAMA_EDITOR to the path of your '
           "preferred editor")


STORY = ("Once upon a time a small boat sailed across the quiet sea, carrying three friends "
         "who wanted to find the island where the old lighthouse keeper had hidden his maps. "
         "They rowed through fog and rain, sang songs to keep warm, and at last saw a light "
         "blinking far away on the dark water, which told them they were almost home.")


def test_word_wrap_of_replayed_messages(term, server, smol):
    server.client().create(model="smol-story", from_=smol, messages=[
        {"role": "user", "content": "Tell me a story."},
        {"role": "assistant", "content": STORY}])
    t = term(model="smol-story", width=60)
    lines = t.lines()
    assert lines[0] == ">>> Tell me a story."
    story = lines[1:lines.index(PLACEHOLDER) - 1]
    assert len(story) > 4 and all(len(line) <= 55 for line in story), story
    assert " ".join(story) == STORY  # no word was cut: the partial word moved down
    plain = term("--nowordwrap", model="smol-story", width=60)
    assert plain.lines()[1] == STORY  # one line, wrapped only by the terminal


def test_ctrl_c_cancels_generation_and_frees_the_slot(term, server):
    t = term("--nowordwrap")
    t.enter("/set parameter num_predict 20000")
    t.enter("/set parameter temperature 0")
    t.type("Write a very long story about a dragon and a knight.")
    t.keys("Enter")
    # Wait until the answer streams (some text after the prompt line), then press Ctrl+C.
    t.wait(lambda s: "a knight." in s and len(s.rsplit("a knight.", 1)[1].strip()) > 40)
    t.keys("C-c")
    t.ready(timeout=30)
    ps = httpx.get(f"{server.url}/api/ps", timeout=10).json()
    assert [m["name"] for m in ps["models"]] == ["smollm2:135m"]
    t.enter("/set parameter num_predict 8")
    # With one slot, an answer now proves the cancelled generation no longer holds it.
    assert t.enter("Say hello.", timeout=45)
    t.enter("/save cancelled-chat")
    messages = httpx.post(f"{server.url}/api/show", json={"model": "cancelled-chat"},
                          timeout=10).json()["messages"]
    roles = [(m["role"], m["content"][:20]) for m in messages]
    # The cancelled reply was dropped; its user message stayed.
    assert roles[0] == ("user", "Write a very long st") and roles[1][0] == "user"


def test_save_then_run_replays_the_conversation(term, server):
    t = term()
    short(t, 10)
    reply = t.enter("My favourite colour is green.")
    assert t.enter("/save") == "Usage:\n  /save <modelname>"
    assert t.enter("/save bad:name:x") == "error: The model name 'bad:name:x' is invalid"
    assert t.enter("/save smol-green") == "Created new model 'smol-green'"
    t.type("/bye")
    t.keys("Enter")
    t.exited()
    again = term(model="smol-green")
    lines = again.lines()
    assert ">>> My favourite colour is green." in lines
    assert reply.split("\n")[0] in again.screen()
    shown = again.enter("/show modelfile")
    assert "MESSAGE user My favourite colour is green." in shown
    assert "PARAMETER num_predict 10" in shown
    # The saved model answers with the conversation in its prompt.
    rendered = httpx.post(f"{server.url}/api/chat", json={
        "model": "smol-green", "messages": [{"role": "user", "content": "What colour?"}],
        "_debug_render_only": True}, timeout=30).json()["_debug_info"]["rendered_template"]
    assert "My favourite colour is green." in rendered
    assert again.enter("/load") == "Usage:\n  /load <modelname>"
    assert again.enter("/load no-such-model") == \
        "Loading model 'no-such-model'\nCouldn't find model 'no-such-model'"
    assert again.enter("/load smollm2:135m") == "Loading model 'smollm2:135m'"
    assert again.enter("/show system") == "No system message was specified for this model."
    again.type("/exit")
    again.keys("Enter")
    assert "__EXIT__0" in again.exited()


def test_context_overflow_notice_once_and_system_kept(term, server, smol):
    system = ("You are the support assistant of the Acme Corporation. " +
              "Always be polite, concise and accurate when answering questions about "
              "products, orders, shipping, returns and billing. " * 5)
    client = server.client()
    client.create(model="smol-small-ctx", from_=smol, system=system,
                  parameters={"num_ctx": 256})
    t = term(model="smol-small-ctx")
    short(t, 16)
    noticed = 0
    for i in range(1, 13):
        t.enter(f"Tell me about product number {i}, please.")
        noticed = t.screen().count(NOTICE)
        if noticed:
            break
    assert noticed == 1, t.screen()
    # The answer after the notice still comes, and the notice is not repeated.
    t.enter("And what about product number 99?")
    assert t.screen().count(NOTICE) == 1
    t.enter("/save smol-overflowed")
    messages = httpx.post(f"{server.url}/api/show", json={"model": "smol-overflowed"},
                          timeout=10).json()["messages"]
    assert messages[0]["content"] == "Tell me about product number 1, please."
    # The server renders the same conversation with the system prompt and without its start.
    rendered = httpx.post(f"{server.url}/api/chat", json={
        "model": "smol-small-ctx", "_debug_render_only": True, "messages": messages},
        timeout=30).json()["_debug_info"]["rendered_template"]
    assert rendered.startswith(f"<|im_start|>system\n{system}<|im_end|>")
    assert "product number 1," not in rendered
    assert "product number 99?" in rendered


def test_pipe_never_opens_the_repl(server, smol):
    server.client().create(model="smol-short", from_=smol,
                           parameters={"num_predict": 12, "temperature": 0})
    out = server.cli("run", "smol-short", input="Say hi.\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "\x1b" not in out.stdout and ">>>" not in out.stdout
    assert not (server.home / ".ollama" / "history").exists() or \
        "Say hi." not in (server.home / ".ollama" / "history").read_text()
    # A bare --think means --think=true (cobra's NoOptDefVal); SmolLM2 cannot think.
    bare = server.cli("run", "--think", "smol-short", input="hi")
    assert bare.returncode == 1
    assert bare.stderr == 'Error: "smol-short" does not support thinking\n'
    bad = server.cli("run", "smol-short", "--think=maybe", input="hi")
    assert bad.stderr == ('Error: invalid value for --think: "maybe" (must be true, false, high, '
                          "medium, low, or max)\n")
