"""The REPL's line handling, key bindings, history and display, driven without a terminal.

Commands that need no server run against a client whose address nobody answers (the few that
ask the server, like `/set think`'s capability check, then stay quiet as Ollama does). Key
handling goes through a real PromptSession fed by prompt_toolkit's pipe input.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from pollama.cli.client import Client, ClientError
from pollama.cli.repl import (
    OVERFLOW_NOTICE,
    USAGE_PARAMETERS,
    USAGE_SET,
    USAGE_SHORTCUTS,
    USAGE_SHOW,
    EditorError,
    OllamaHistory,
    Repl,
    ReplExit,
    Session,
    TerminalOutput,
    create_request,
    edit_in_external_editor,
    extract_file_data,
    extract_file_names,
    normalize_file_path,
    terminal_output,
)
from pollama.cli.run import ResponseWriter
from pollama.config import Config
from tests.helpers import free_port

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChw"
                       "GA60e6kgAAAABJRU5ErkJggg==")


class Harness:
    """A Repl on a pipe input, with its stdout and stderr in StringIOs."""

    def __init__(self, repl: Repl, pipe, out: io.StringIO, err: io.StringIO) -> None:
        self.repl, self.pipe, self.out, self.err = repl, pipe, out, err

    def line(self, text: str) -> str | None:
        return self.repl.handle_line(text)

    def said(self) -> str:
        """What was printed to stdout since the last call."""
        text = self.out.getvalue()
        self.out.seek(0)
        self.out.truncate()
        return text

    def errors(self) -> str:
        text = self.err.getvalue()
        self.err.seek(0)
        self.err.truncate()
        return text


@pytest.fixture
def make(tmp_path) -> Iterator:
    stack = contextlib.ExitStack()

    def build(history: OllamaHistory | None = None, **session) -> Harness:
        pipe = stack.enter_context(create_pipe_input())
        # Nothing listens on this port: a command that asks the server gets a ClientError.
        config = Config.from_env({"OLLAMA_HOST": f"127.0.0.1:{free_port()}",
                                  "HOME": str(tmp_path)})
        out, err = io.StringIO(), io.StringIO()
        repl = Repl(Client(config), Session(model="smollm2:135m", **session), history=history,
                    input=pipe, output=DummyOutput(), out=out, err=err)
        return Harness(repl, pipe, out, err)

    with stack:
        yield build


# -- """ blocks and messages -----------------------------------------------------------------


@pytest.mark.parametrize(("lines", "message"), [
    (["hello"], "hello"),
    (['"""one line"""'], "one line"),
    (['"""', "first", 'second"""'], "first\nsecond"),
    (['"""first', "second", '"""'], "first\nsecond"),
    (['"""', "  indented", "", 'after a blank"""'], "  indented\n\nafter a blank"),
    (['"""', "/bye", "/set verbose", '"""'], "/bye\n/set verbose"),  # no commands inside
    (['"""', '"""'], None),
    ([""], None),
])
def test_triple_quote_blocks(make, lines, message):
    h = make()
    results = [h.line(line) for line in lines]
    assert results[:-1] == [None] * (len(lines) - 1)
    assert results[-1] == message
    assert h.repl.multiline is None and h.said() == ""


def test_set_system_single_and_multi_line(make):
    h = make()
    assert h.line("/set system Be brief.") is None
    assert h.said() == "Set system message.\n"
    assert h.repl.s.messages == [{"role": "system", "content": "Be brief."}]
    h.line("/set system   Be   briefer.")  # words re-joined with one space, as Ollama
    assert h.repl.s.messages == [{"role": "system", "content": "Be briefer."}]  # replaced
    assert h.line('/set system """You are') is None and h.said() == "Set system message.\n"
    assert h.repl.multiline == "system"
    assert h.line('a pirate."""') is None
    assert h.said() == "Set system message.\n"
    assert h.repl.s.system == "You are\na pirate."
    assert h.repl.s.messages[-1] == {"role": "system", "content": "You are\na pirate."}
    h.line('/set system """One line."""')
    assert h.repl.s.system == "One line."
    assert h.line("/set system") is None
    assert h.errors() == USAGE_SET


@pytest.mark.parametrize(("line", "printed", "value"), [
    ("/set parameter num_predict 16", "Set parameter 'num_predict' to '16'", 16),
    ("/set parameter temperature 0.7", "Set parameter 'temperature' to '0.7'", 0.7),
    ("/set parameter seed -3", "Set parameter 'seed' to '-3'", -3),
    ("/set parameter stop <end> STOP", "Set parameter 'stop' to '<end>, STOP'",
     ["<end>", "STOP"]),
    ("/set parameter use_mmap true", "Set parameter 'use_mmap' to 'true'", True),
    ("/set parameter num_predict abc", "Couldn't set parameter: \"invalid int value [abc]\"",
     None),
    ("/set parameter top_p high", "Couldn't set parameter: \"invalid float value [high]\"",
     None),
    ("/set parameter use_mmap maybe", "Couldn't set parameter: \"invalid bool value [maybe]\"",
     None),
    ("/set parameter foo 1", "Couldn't set parameter: \"unknown parameter 'foo'\"", None),
])
def test_set_parameter(make, line, printed, value):
    h = make()
    h.line(line)
    assert h.said() == printed + "\n"
    name = line.split()[2]
    assert h.repl.s.options.get(name) == value


def test_set_parameter_without_value_prints_the_parameter_help(make):
    h = make()
    h.line("/set parameter num_ctx")
    assert h.errors() == USAGE_PARAMETERS and h.said() == ""


def test_set_switches(make):
    h = make()
    expected = [
        ("/set nowordwrap", "Set 'nowordwrap' mode.", lambda s: not s.wordwrap),
        ("/set wordwrap", "Set 'wordwrap' mode.", lambda s: s.wordwrap),
        ("/set verbose", "Set 'verbose' mode.", lambda s: s.verbose),
        ("/set quiet", "Set 'quiet' mode.", lambda s: not s.verbose),
        ("/set format json", "Set format to 'json' mode.", lambda s: s.format == "json"),
        ("/set format xml", "Invalid or missing format. For 'json' mode use '/set format json'",
         lambda s: s.format == "json"),
        ("/set format", "Invalid or missing format. For 'json' mode use '/set format json'",
         lambda s: s.format == "json"),
        ("/set noformat", "Disabled format.", lambda s: s.format == ""),
        ("/set think", "Set 'think' mode.", lambda s: s.think is True and s.think_explicit),
        ("/set think high", "Set 'think' mode to 'high'.", lambda s: s.think == "high"),
        ("/set nothink", "Set 'nothink' mode.", lambda s: s.think is False),
        ("/set foo", "Unknown command '/set foo'. Type /? for help", lambda s: True),
    ]
    for line, printed, check in expected:
        h.line(line)
        assert h.said() == printed + "\n", line
        assert check(h.repl.s), line
    h.line("/set")
    assert h.errors() == USAGE_SET


def test_history_switches(make, tmp_path):
    path = tmp_path / ".ollama" / "history"
    h = make(history=OllamaHistory(path))
    h.line("/set nohistory")
    assert h.said() == "" and not h.repl.history.enabled
    h.line("/set history")
    assert h.repl.history.enabled


def test_help_texts_go_to_stderr(make):
    h = make()
    h.line("/?")
    usage = h.errors()
    assert usage.startswith("Available Commands:\n  /set            Set session variables\n")
    assert usage.endswith('Use """ to begin a multi-line message.\n\n')
    h.line("/help")
    assert h.errors() == usage
    for line, text in [("/? set", USAGE_SET), ("/? /set", USAGE_SET), ("/help show", USAGE_SHOW),
                       ("/? /show", USAGE_SHOW), ("/? shortcuts", USAGE_SHORTCUTS),
                       ("/? shortcut", USAGE_SHORTCUTS), ("/? other", ""), ("/show", USAGE_SHOW)]:
        h.line(line)
        assert h.errors() == text, line
    assert h.said() == ""
    multimodal = make(multimodal=True)
    multimodal.line("/?")
    assert "Use /path/to/file to include .jpg, .png, .webp images, or .wav audio files.\n" in \
        multimodal.errors()


def test_unknown_commands_and_prefix_matching(make):
    h = make()
    assert h.line("/foo bar") is None
    assert h.said() == "Unknown command '/foo'. Type /? for help\n"
    assert h.line("/") is None and h.said() == "Unknown command '/'. Type /? for help\n"
    # A path to a file is only a prompt for a multimodal model.
    assert h.line("/tmp/cat.png what is this?") is None
    assert make(multimodal=True).line("/tmp/cat.png what is this?") == \
        "/tmp/cat.png what is this?"
    # Commands match by prefix, as Ollama's strings.HasPrefix.
    for line in ("/bye", "/exit", "/byebye", "/exit now"):
        with pytest.raises(ReplExit):
            h.line(line)
    assert h.line(" /bye") == " /bye"  # not a command: a message


def test_clear_keeps_the_system_message(make):
    h = make()
    h.repl.s.messages = [{"role": "user", "content": "hi"}]
    h.line("/set system Be brief.")
    h.said()
    h.repl.s.messages.append({"role": "user", "content": "again"})
    h.line("/clear")
    assert h.said() == "Cleared session context\n"
    assert h.repl.s.messages == [{"role": "system", "content": "Be brief."}]


def test_usage_of_load_and_save(make):
    h = make()
    for line in ("/load", "/load a b"):
        h.line(line)
        assert h.said() == "Usage:\n  /load <modelname>\n"
    for line in ("/save", "/save a b"):
        h.line(line)
        assert h.said() == "Usage:\n  /save <modelname>\n"


def test_a_failed_message_leaves_the_session_as_it_was(make):
    h = make()
    h.repl.send("hello")  # nobody answers
    assert h.repl.s.messages == []
    assert h.errors().startswith("Error: ")


# -- reading keys ------------------------------------------------------------------------------


def test_prompt_keys(make):
    h = make()
    h.pipe.send_text("x\ty\r")
    assert h.repl.read_line() == "x        y"  # Tab inserts 8 spaces (RL-10)
    # Typed ahead while an answer streamed, Enter arrives as "\n" (cooked tty): it submits.
    h.pipe.send_text("first\nsecond\r")
    assert h.repl.read_line() == "first"
    assert h.repl.read_line() == "second"
    # A bracketed paste of several lines is one message (RL-12).
    h.pipe.send_text("\x1b[200~line one\nline two\x1b[201~\r")
    assert h.repl.read_line() == "line one\nline two"
    h.pipe.send_text("abc\x03")
    with pytest.raises(KeyboardInterrupt):
        h.repl.read_line()
    h.pipe.send_text("\x04")  # Ctrl+D on an empty line
    with pytest.raises(EOFError):
        h.repl.read_line()
    h.pipe.send_text("ab\x01\x04\r")  # Ctrl+A, then Ctrl+D deletes the character under it
    assert h.repl.read_line() == "b"


def test_run_loop(make):
    h = make()
    h.pipe.send_text("/set verbose\r")
    h.pipe.send_text("abc\x03")
    h.pipe.send_text('"""\r')
    h.pipe.send_text("\x03")  # Ctrl+C inside a block drops it
    h.pipe.send_text("/set quiet\r/bye\r")
    h.repl.run()
    assert h.said() == ("Set 'verbose' mode.\nUse Ctrl + d or /bye to exit.\n"
                        "Use Ctrl + d or /bye to exit.\nSet 'quiet' mode.\n")
    assert h.repl.multiline is None


def test_history_file_in_ollamas_format(make, tmp_path):
    path = tmp_path / ".ollama" / "history"
    path.parent.mkdir(parents=True)
    path.write_text("old one\n\n  old two  \n")
    history = OllamaHistory(path)
    assert history.entries == ["old one", "old two"]
    h = make(history=history)
    h.pipe.send_text("\x1b[A\r")  # Up recalls the newest entry
    assert h.repl.read_line() == "old two"
    for i in range(120):
        history.store_string(f"entry {i}")
    lines = path.read_text().splitlines()
    assert len(lines) == 100 and lines[-1] == "entry 119" and lines[0] == "entry 20"
    history.enabled = False  # /set nohistory: nothing more is written
    history.store_string("secret")
    assert "secret" not in path.read_text()
    assert history.entries[-1] == "secret"  # still there to recall in this session


# -- /save, images, editor -------------------------------------------------------------------


def test_create_request_is_ollamas(make):
    session = Session(model="mine", parent_model="smollm2:135m", system="Be brief.",
                      options={"num_predict": 8},
                      loaded_messages=[{"role": "user", "content": "earlier"}],
                      messages=[{"role": "user", "content": "now"},
                                {"role": "assistant", "content": "ok"}])
    assert create_request("saved", session) == {
        "model": "saved", "from": "smollm2:135m", "system": "Be brief.",
        "parameters": {"num_predict": 8},
        "messages": [{"role": "user", "content": "earlier"}, {"role": "user", "content": "now"},
                     {"role": "assistant", "content": "ok"}]}
    # A parent that is no model name, or that the server does not have: build on this model.
    assert create_request("saved", Session(model="mine", parent_model="bad:name:x")) == \
        {"model": "saved", "from": "mine"}
    assert create_request("saved", session, parent_ok=False)["from"] == "mine"


@pytest.mark.parametrize(("text", "names"), [
    ("what is in ./photo.png ?", ["./photo.png"]),
    ("compare /tmp/a.JPG and /tmp/b.jpeg", ["/tmp/a.JPG", "/tmp/b.jpeg"]),
    ("look at /tmp/My\\ Pics/cat.webp now", ["/tmp/My\\ Pics/cat.webp"]),
    ("listen to C:\\sounds\\bell.wav", ["C:\\sounds\\bell.wav"]),
    ("no file here.png", []),
    ("/tmp/notes.txt", []),
    ("two: ~/a.gif '/tmp/b c.png'", ["~/a.gif", "/tmp/b c.png"]),  # beyond Ollama: ~/ and gif
])
def test_file_names_in_prompts(text, names):
    assert extract_file_names(text) == names


def test_normalize_file_path(monkeypatch):
    assert normalize_file_path("/tmp/My\\ Pics/\\(1\\)\\ cat.png") == "/tmp/My Pics/(1) cat.png"
    monkeypatch.setenv("HOME", "/home/someone")
    assert normalize_file_path("~/My\\ cat.png") == "/home/someone/My cat.png"


def test_extract_file_data(tmp_path):
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    err = io.StringIO()
    text, images = extract_file_data(f"what is in {image} and /tmp/missing.png ?", err)
    assert text == "what is in  and /tmp/missing.png ?"
    assert images == [base64.b64encode(PNG).decode()]
    assert err.getvalue() == f"Added image '{image}'\n"
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(ClientError):
        extract_file_data(f"see {fake}", err)
    assert err.getvalue().endswith(
        'Couldn\'t process file: "invalid file type: text/plain; charset=utf-8"\n')


def test_external_editor(tmp_path, monkeypatch):
    script = tmp_path / "ed.sh"
    script.write_text('#!/bin/sh\nprintf "%s and more\\n\\n" "$(cat "$1")" > "$1"\n')
    script.chmod(0o755)
    monkeypatch.setenv("OLLAMA_EDITOR", str(script))
    assert edit_in_external_editor("draft") == "draft and more"
    monkeypatch.setenv("OLLAMA_EDITOR", "no-such-editor --flag")
    with pytest.raises(EditorError) as err:
        edit_in_external_editor("")
    assert str(err.value) == ('editor "no-such-editor" not found, set OLLAMA_EDITOR to the path '
                              "of your preferred editor")
    monkeypatch.delenv("OLLAMA_EDITOR")
    monkeypatch.setenv("VISUAL", str(script))
    assert edit_in_external_editor("") == " and more"


# -- the request and the context-overflow notice ---------------------------------------------


def test_chat_body(make):
    h = make(keepalive="10m", think="low")
    h.repl.s.messages = [{"role": "user", "content": "hi"}]
    h.line("/set parameter num_predict 8")
    assert h.repl.chat_body() == {"model": "smollm2:135m", "messages": h.repl.s.messages,
                                  "options": {"num_predict": 8}, "think": "low",
                                  "keep_alive": "10m"}
    h.line("/set format json")
    assert h.repl.chat_body()["format"] == "json"
    h.repl.s.format = '{"type": "object"}'  # --format with a schema
    assert h.repl.chat_body()["format"] == {"type": "object"}


def _turn(repl: Repl, prompt: int, evaluated: int, thinking: bool = False) -> None:
    repl._check_overflow({"prompt_eval_count": prompt, "eval_count": evaluated}, thinking)


def test_overflow_notice_once(make):
    h = make()
    h.line("/set parameter num_ctx 256")
    h.errors()
    for prompt in (139, 175, 209, 243):  # each prompt holds the one before and its answer
        _turn(h.repl, prompt, 14)
    assert h.errors() == ""
    _turn(h.repl, 241, 14)  # fewer than 243 + 14: the oldest turns were left out
    assert h.errors() == f"\x1b[2m{OVERFLOW_NOTICE}\x1b[0m\n\n"
    _turn(h.repl, 230, 14)
    assert h.errors() == ""  # said once
    h.line("/clear")
    for prompt in (150, 200, 190):
        _turn(h.repl, prompt, 14)
    assert OVERFLOW_NOTICE in h.errors()  # a new conversation may be told again


def test_no_overflow_notice_without_truncation(make):
    h = make()
    h.line("/set parameter num_ctx 4096")
    _turn(h.repl, 500, 300, thinking=True)
    _turn(h.repl, 560, 20)  # the thinking was not sent back: only the prompt is a floor
    _turn(h.repl, 100, 20)  # far below the window: not a truncation (e.g. a cache-only count)
    assert h.errors() == ""


# -- display -----------------------------------------------------------------------------------


def _terminal(output: str) -> list[str]:
    """The lines a terminal shows for text using \\n, ESC[nD and ESC[K (what the wrap uses)."""
    lines, line, col = [], [], 0
    for token in re.findall(r"\x1b\[(\d*)([A-Za-z])|(.)", output, re.S):
        count, command, char = token
        if command == "D":
            col -= int(count or 1)
        elif command == "K":
            del line[col:]
        elif command:
            continue
        elif char == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            line[col:col + 1] = [char]
            col += 1
    return [*lines, "".join(line)]


TEXT = ("The sea has a long and storied history, with ancient civilizations that have long "
        "been captivated by its vast expanse and mysterious beauty.\nFrom the earliest times "
        "the sea has been a source of wonder.")


@pytest.mark.parametrize("width", [20, 40, 80])
def test_word_wrap_moves_the_partial_word(monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    out = io.StringIO()
    writer = ResponseWriter(out)
    for i in range(0, len(TEXT), 7):  # streamed in pieces
        writer.display(TEXT[i:i + 7])
    shown = [line.rstrip() for line in _terminal(out.getvalue())]
    assert all(len(line) <= width - 5 for line in shown), shown
    assert " ".join(shown).replace(" From", "\nFrom") == TEXT


def test_words_longer_than_the_line_are_broken(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    out = io.StringIO()
    ResponseWriter(out).display("x" * 40)
    assert _terminal(out.getvalue()) == ["x" * 15, "x" * 15, "x" * 10]


def test_plain_output_has_no_control_codes(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    out = io.StringIO()
    writer = ResponseWriter(out, plain=True)
    writer.thinking("Let me think.")
    writer.content(TEXT)
    writer.finish()
    assert out.getvalue() == f"Thinking...\nLet me think.\n...done thinking.\n\n{TEXT}"


def test_thinking_display():
    out = io.StringIO()
    writer = ResponseWriter(out, wordwrap=False)
    writer.thinking("hmm\n")
    writer.content("answer")
    assert out.getvalue() == ("\x1b[38;5;245m\x1b[1mThinking...\n\x1b[0m\x1b[38;5;245mhmm\n"
                              "\x1b[38;5;245m\x1b[1m...done thinking.\n\n\x1b[0manswer")
    hidden = io.StringIO()
    writer = ResponseWriter(hidden, hidethinking=True)
    writer.thinking("hmm")
    writer.content("answer")
    assert hidden.getvalue() == "answer"


def test_tool_calls_are_shown_as_ollama_does():
    out = io.StringIO()
    ResponseWriter(out, plain=True).tool_calls(
        [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
    assert out.getvalue() == ("  Model called a non-existent function 'get_weather()' with "
                              'arguments: {"city":"Paris"}')


def test_erase_down_never_erases_from_the_top_left_corner():
    """tmux takes ESC[J at the top-left corner for a clear of the whole screen and keeps the
    screen in its scrollback (scroll-on-clear): the first entry, redrawn from the top row, was
    shown twice. The line is erased with ESC[K, the rest from one column on, cursor restored."""
    out = io.StringIO()
    output = TerminalOutput(out, lambda: Size(rows=40, columns=120))
    output.erase_down()
    output.flush()
    assert out.getvalue() == "\x1b[K\x1b7\x1b[C\x1b[J\x1b8"


def test_the_repl_writes_through_terminal_output_on_a_terminal(monkeypatch, tmp_path):
    config = Config.from_env({"OLLAMA_HOST": f"127.0.0.1:{free_port()}", "HOME": str(tmp_path)})
    master, slave = os.openpty()
    try:
        with open(slave, "w") as tty, create_pipe_input() as pipe:
            monkeypatch.setattr(sys, "stdout", tty)
            repl = Repl(Client(config), Session(model="m"), input=pipe)
            assert isinstance(repl.prompt_session.app.output, TerminalOutput)
            monkeypatch.setattr(sys, "stdout", io.StringIO())
            assert not isinstance(terminal_output(), TerminalOutput)  # a pipe: plain text
    finally:
        os.close(master)


def test_session_copy_is_independent():
    session = Session(model="a", options={"x": 1}, messages=[{"role": "user", "content": "m"}])
    copy = session.copy()
    copy.options["y"] = 2
    copy.messages.append({"role": "user", "content": "n"})
    assert session.options == {"x": 1} and len(session.messages) == 1


def test_run_bounds_answers_at_the_context_unless_the_model_sets_num_predict() -> None:
    from pollama.cli.run import answer_defaults

    assert answer_defaults({}) == {"num_predict": -2}
    assert answer_defaults({"parameters": "stop                           \"<|im_end|>\""}) == {
        "num_predict": -2}
    assert answer_defaults({"parameters": "num_ctx 64\nnum_predict                    128"}) == {}
