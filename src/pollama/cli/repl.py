"""The interactive `pollama run MODEL`: Ollama's REPL (cmd/interactive.go) on prompt_toolkit.

A thin client of the HTTP API: `/api/generate` preloads the model, `/api/chat` answers each
message with the whole session history, `/api/show` and `/api/create` back `/show` and `/save`.
Texts, command matching (by prefix, as Ollama's `strings.HasPrefix`) and which stream each
text goes to (help on stderr, the rest on stdout) follow Ollama. Where pollama does better:
errors from one command or message are printed and the session goes on, and the REPL says once
when the conversation outgrew the context window and the server dropped its oldest turns.

Context overflow is detected from the final chunk's counts: the server renders the whole
conversation each turn, so without truncation a turn's `prompt_eval_count` is at least the
previous turn's `prompt_eval_count + eval_count` (the previous prompt, then the reply, then the
new message); a smaller count means earlier messages were left out. After a reply with thinking
only the previous prompt is a floor (templates drop old thinking), and a count under half the
context window is not taken for a truncation. A drop that removes fewer tokens than the new
turn adds is only seen at a later turn.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import History
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import ColorDepth, Output, create_output
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.utils import get_bell_environment_variable, get_term_environment_variable

from pollama.cli.client import Client, ClientError
from pollama.cli.run import (
    DIM,
    RESET,
    ResponseWriter,
    Spinner,
    answer_defaults,
    format_value,
    infer_think,
    interruptible,
    print_stats,
    stream_response,
)
from pollama.errors import ModelfileError
from pollama.formats.modelfile import go_quote, go_value
from pollama.formats.options import format_params

PROMPT = ">>> "
ALT_PROMPT = "... "
PLACEHOLDER = "Send a message (/? for help)"
ALT_PLACEHOLDER = "Press Enter to send"
HISTORY_LIMIT = 100
OVERFLOW_NOTICE = "(earlier messages no longer fit the context window and were dropped)"

USAGE = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /conversations  List conversations the server keeps
  /resume <name>  Resume a stored conversation
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""
USAGE_MULTIMODAL = "Use /path/to/file to include .jpg, .png, .webp images, or .wav audio files.\n"

USAGE_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking

"""

USAGE_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + g            Open default editor to compose a prompt
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit ollama (/bye)

"""

USAGE_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template

"""

USAGE_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters

"""

# Ollama's extractFileNames: a path to an image or wav file inside the prompt (spec RUN-10).
# Ollama's pattern (RUN-10), and beyond it `~/` paths and .gif files (the server reads GIFs).
FILE_PATTERN = re.compile(
    r"(?:[a-zA-Z]:|~)?(?:\./|/|\\)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp|gif|wav)\b")
FILE_TYPES = ("image/jpeg", "image/jpg", "image/png", "image/webp", "image/gif", "audio/wave")
_PATH_ESCAPES = {"\\ ": " ", "\\(": "(", "\\)": ")", "\\[": "[", "\\]": "]", "\\{": "{",
                 "\\}": "}", "\\$": "$", "\\&": "&", "\\;": ";", "\\'": "'", "\\\\": "\\",
                 "\\*": "*", "\\?": "?", "\\~": "~"}
_PATH_ESCAPE_RE = re.compile("|".join(re.escape(k) for k in _PATH_ESCAPES))
MAX_FILE_SIZE = 100 * 1024 * 1024


class ReplExit(Exception):
    """`/bye`, `/exit` or Ctrl+D: leave the REPL."""


class EditorError(Exception):
    """The external editor could not run; the text is Ollama's."""


# -- history ---------------------------------------------------------------------------------


class OllamaHistory(History):
    """`~/.ollama/history` in Ollama's format: one entry per line, the newest 100 kept.

    Ollama's readline rewrites the whole file after each entry, and only while history is
    enabled (`/set nohistory` and OLLAMA_NOHISTORY stop the saving, not the recalling).
    """

    def __init__(self, path: Path, *, enabled: bool = True, limit: int = HISTORY_LIMIT) -> None:
        super().__init__()
        self.path = path
        self.enabled = enabled
        self.limit = limit
        self.entries: list[str] = []
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            lines = path.read_text(errors="replace").splitlines()
            self.entries = [line.strip() for line in lines if line.strip()][-limit:]

    def load_history_strings(self) -> Iterable[str]:
        """The entries read from the file, newest first (prompt_toolkit's order)."""
        return list(reversed(self.entries))

    def store_string(self, string: str) -> None:
        """Add an entry and, while enabled, rewrite the file (temp file, then rename)."""
        self.entries = [*self.entries, string][-self.limit:]
        if not self.enabled:
            return
        temp = self.path.with_name(self.path.name + ".tmp")
        with contextlib.suppress(OSError):
            temp.write_text("".join(entry + "\n" for entry in self.entries))
            temp.chmod(0o600)
            os.replace(temp, self.path)


# -- external editor (Ctrl+G) ----------------------------------------------------------------


def edit_in_external_editor(content: str) -> str:
    """Ollama's editInExternalEditor: $OLLAMA_EDITOR, $VISUAL, $EDITOR or vi on a temp file."""
    editor = (os.environ.get("OLLAMA_EDITOR") or os.environ.get("VISUAL")
              or os.environ.get("EDITOR") or "vi")
    args = shlex.split(editor) if editor.strip() else ["vi"]
    if shutil.which(args[0]) is None:
        raise EditorError(f"editor {go_quote(args[0])} not found, set OLLAMA_EDITOR to the path "
                          "of your preferred editor")
    fd, name = tempfile.mkstemp(prefix="ollama-prompt-", suffix=".txt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        result = subprocess.run([*args, name], check=False)
        if result.returncode != 0:
            raise EditorError(f"editor exited with error: exit status {result.returncode}")
        return Path(name).read_text(errors="replace").rstrip("\n")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


# -- images ----------------------------------------------------------------------------------


def extract_file_names(text: str) -> list[str]:
    """Paths to .jpg/.jpeg/.png/.webp/.wav files in a prompt, as Ollama's regex finds them."""
    return FILE_PATTERN.findall(text)


def normalize_file_path(path: str) -> str:
    """Undo shell escapes (`\\ `, `\\(`, ...) in a dragged-in path; `~/` is the home."""
    path = _PATH_ESCAPE_RE.sub(lambda m: _PATH_ESCAPES[m.group(0)], path)
    return os.path.expanduser(path) if path.startswith("~/") else path


def _sniff(head: bytes) -> str:
    """The few answers of Go's http.DetectContentType that matter here."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:14] == b"WEBPVP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wave"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if any(b < 0x09 or 0x0D < b < 0x20 for b in head if b != 0x1B):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def extract_file_data(text: str, err: TextIO) -> tuple[str, list[str]]:
    """Attach the files a prompt names (base64) and take their paths out of the text."""
    images: list[str] = []
    for found in extract_file_names(text):
        path = normalize_file_path(found)
        try:
            with open(path, "rb") as f:
                head = f.read(512)
                kind = _sniff(head)
                if kind not in FILE_TYPES:
                    raise ValueError(f"invalid file type: {kind}")
                if os.fstat(f.fileno()).st_size > MAX_FILE_SIZE:
                    raise ValueError("file size exceeds maximum limit (100MB)")
                f.seek(0)
                data = f.read()
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as error:
            message = error.strerror if isinstance(error, OSError) else str(error)
            err.write(f"Couldn't process file: {go_quote(str(message))}\n")
            raise ClientError(str(message)) from None
        noun = "audio" if path.lower().endswith(".wav") else "image"
        err.write(f"Added {noun} '{path}'\n")
        text = text.replace(f"'{path}'", "").replace(f"'{found}'", "").replace(found, "")
        images.append(base64.b64encode(data).decode())
    return text.strip(), images


# -- the terminal ----------------------------------------------------------------------------

# "Erase from the cursor down" without ESC[J at the top-left corner: erase the rest of the line
# (ESC[K), then save the cursor (ESC 7), step one column right, ESC[J, and restore (ESC 8).
# tmux (scroll-on-clear, on by default) takes an ESC[J at the top-left corner for a clear of the
# whole screen and moves the screen into the scrollback, so a prompt redrawn from the top row
# (the first entry, or the one after Ctrl+L) would be left there a second time.
ERASE_DOWN = "\x1b[K\x1b7\x1b[C\x1b[J\x1b8"


class TerminalOutput(Vt100_Output):
    """prompt_toolkit's VT100 output with an erase-down that never clears the whole screen.

    prompt_toolkit redraws an entry from the prompt's first cell with ESC[J once it is
    accepted; Ollama's readline erases only with ESC[K, and so does this, in effect.
    """

    def erase_down(self) -> None:
        self.write_raw(ERASE_DOWN)


def terminal_output() -> Output:
    """The REPL's output: TerminalOutput on a terminal, prompt_toolkit's default elsewhere."""
    stdout = sys.stdout
    if sys.platform == "win32" or stdout is None or not stdout.isatty():
        return create_output()
    return TerminalOutput.from_pty(stdout, term=get_term_environment_variable(),
                                   default_color_depth=ColorDepth.from_env(),
                                   enable_bell=get_bell_environment_variable())


# -- the session -----------------------------------------------------------------------------


@dataclass
class Session:
    """What a REPL session carries between messages (Ollama's runOptions)."""

    model: str
    parent_model: str = ""
    loaded_messages: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    system: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # what /set parameter set
    answer_defaults: dict[str, Any] = field(default_factory=dict)  # run.answer_defaults
    format: str = ""
    think: bool | str | None = None
    think_explicit: bool = False
    hidethinking: bool = False
    keepalive: str | None = None
    wordwrap: bool = True
    verbose: bool = False
    multimodal: bool = False
    capabilities: list[str] = field(default_factory=list)
    conversation: str = ""  # the id of the stored conversation each message goes to
    conversation_name: str = ""

    def join(self, stored: dict[str, Any]) -> None:
        """Go on with a stored conversation: the server keeps its history, each message adds
        a turn; `messages` mirrors it so `/save` still saves the session."""
        self.conversation = stored["id"]
        self.conversation_name = stored.get("name") or stored["id"]
        self.system = stored.get("system") or ""
        self.messages = [{"role": m["role"], "content": m.get("content") or ""}
                         for m in stored.get("messages") or [] if m.get("role") != "system"]

    def copy(self) -> Session:
        """A copy that /load can restore when the new model is not found."""
        return Session(**{**self.__dict__, "loaded_messages": list(self.loaded_messages),
                          "messages": list(self.messages), "options": dict(self.options),
                          "capabilities": list(self.capabilities)})

    def apply_show(self, show: dict[str, Any]) -> None:
        """Take the model's parent, MESSAGE history and capabilities from its /api/show."""
        self.parent_model = str((show.get("details") or {}).get("parent_model") or "")
        self.loaded_messages = list(show.get("messages") or [])
        self.capabilities = list(show.get("capabilities") or [])
        self.answer_defaults = answer_defaults(show)
        self.multimodal = is_multimodal(show)


def is_multimodal(show: dict[str, Any]) -> bool:
    """Whether prompts to this model attach the files they name (RUN-10): vision or audio, or
    an older server's projector_info / `.vision.` model_info keys."""
    capabilities = show.get("capabilities") or []
    info = show.get("model_info") or {}
    return ("vision" in capabilities or "audio" in capabilities
            or bool(show.get("projector_info")) or any(".vision." in key for key in info))


@dataclass
class _Usage:
    """Token counts of the last answered turn, for the context-overflow notice."""

    prompt: int
    eval: int
    thinking: bool


class Repl:
    """Reads lines with prompt_toolkit and acts on them as Ollama's generateInteractive does."""

    def __init__(self, client: Client, session: Session, *, history: History | None = None,
                 input: Input | None = None, output: Output | None = None,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.client = client
        self.s = session
        self._out = out
        self._err = err
        self.history = history
        self.prompt_session: PromptSession[str] = PromptSession(
            history=history, key_bindings=self._key_bindings(), input=input,
            output=output or terminal_output(),
            enable_suspend=True, prompt_continuation=ALT_PROMPT, erase_when_done=False)
        # Whether the key before / the current key had more keys behind it in the same read.
        self._typeahead = [False, False]
        processor = self.prompt_session.app.key_processor
        processor.before_key_press += lambda _: self._note_batch(bool(processor.input_queue))
        self.buffer: list[str] = []  # lines of a message being assembled
        self.multiline: str | None = None  # None, "prompt" or "system"
        self.prefill = ""
        self.usage: _Usage | None = None
        self.overflow_noted = False
        self.context_length: int | None = None

    @property
    def out(self) -> TextIO:
        """Where answers and command output go (stdout unless a test gives a stream)."""
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO:
        """Where help, warnings, stats and notices go (stderr, as Ollama)."""
        return self._err or sys.stderr

    def say(self, text: str = "") -> None:
        """A line on stdout, as Ollama's fmt.Println."""
        self.out.write(text + "\n")
        self.out.flush()

    # -- reading ---------------------------------------------------------------------------

    def _note_batch(self, more: bool) -> None:
        self._typeahead = [self._typeahead[1], more]

    def _key_bindings(self) -> KeyBindings:
        kb = KeyBindings()

        @kb.add("c-j")
        def _newline(event: KeyPressEvent) -> None:
            # Typed ahead while an answer streamed, Enter reached the terminal in cooked mode
            # and became "\n" (Ctrl+J): then it submits, as Ollama's readline "draining".
            if self._typeahead[0] or self._typeahead[1]:
                event.current_buffer.validate_and_handle()
            else:
                event.current_buffer.insert_text("\n")

        @kb.add("tab")
        def _tab(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text(" " * 8)

        @kb.add("c-g")
        def _editor(event: KeyPressEvent) -> None:
            buffer = event.current_buffer
            text = buffer.text

            def run_editor() -> None:
                try:
                    content = edit_in_external_editor(text)
                except (EditorError, OSError) as error:
                    self.err.write(f"error: {error}\n")
                    self.err.flush()
                    return
                if content.strip():
                    buffer.text = content
                    buffer.cursor_position = len(content)

            run_in_terminal(run_editor)

        return kb

    def read_line(self) -> str:
        """One entry from the user; raises EOFError (Ctrl+D) or KeyboardInterrupt (Ctrl+C)."""
        alt = self.multiline is not None
        placeholder = ALT_PLACEHOLDER if alt else PLACEHOLDER
        default, self.prefill = self.prefill, ""
        return self.prompt_session.prompt(
            ALT_PROMPT if alt else PROMPT, default=default,
            placeholder=FormattedText([("fg:#8a8a8a", placeholder)]))

    def run(self) -> None:
        """The loop: read, act, until /bye or Ctrl+D."""
        while True:
            try:
                line = self.read_line()
            except EOFError:
                return
            except KeyboardInterrupt:
                self.say("Use Ctrl + d or /bye to exit.")
                self.buffer = []
                self.multiline = None
                continue
            try:
                with interruptible():
                    message = self.handle_line(line)
                    if message is not None:
                        self.send(message)
            except ReplExit:
                return
            except KeyboardInterrupt:  # Ctrl+C during /load, /save or /show: back to the prompt
                self.say()

    # -- lines and commands ----------------------------------------------------------------

    def handle_line(self, line: str) -> str | None:
        """Act on one entered line; return the text of a user message when one is complete."""
        if self.multiline is not None:
            before, closed = _cut_suffix(line, '"""')
            self.buffer.append(before)
            if not closed:
                return None
            text = _join(self.buffer)
            self.buffer = []
            kind, self.multiline = self.multiline, None
            if kind == "system":
                self._set_system(text, replace=False)
                return None
            return text or None
        if line.startswith('"""'):
            rest = line[3:]
            before, closed = _cut_suffix(rest, '"""')
            if closed:
                return before or None
            self.buffer = [before]
            self.multiline = "prompt"
            return None
        args = line.split()
        if line.startswith("/list"):
            self._list(args[1:])
        elif line.startswith("/load"):
            self._load(args)
        elif line.startswith("/save"):
            self._save(args)
        elif line.startswith("/clear"):
            self._clear()
        elif line.startswith("/conversations"):
            self._conversations()
        elif line.startswith("/resume"):
            self._resume(args)
        elif line.startswith("/set"):
            self._set(args)
        elif line.startswith("/show"):
            self._show(args)
        elif line.startswith(("/help", "/?")):
            self._help(args)
        elif line.startswith(("/exit", "/bye")):
            raise ReplExit
        elif line.startswith("/"):
            first = args[0] if args else "/"
            if not (self.s.multimodal and any(f.startswith(first)
                                               for f in extract_file_names(line))):
                self.say(f"Unknown command '{first}'. Type /? for help")
                return None
            return line
        else:
            return line or None
        return None

    def _help(self, args: list[str]) -> None:
        if len(args) > 1:
            topic = args[1]
            if topic in ("set", "/set"):
                self.err.write(USAGE_SET)
            elif topic in ("show", "/show"):
                self.err.write(USAGE_SHOW)
            elif topic in ("shortcut", "shortcuts"):
                self.err.write(USAGE_SHORTCUTS)
        else:
            self.err.write(USAGE + (USAGE_MULTIMODAL if self.s.multimodal else "") + "\n")
        self.err.flush()

    def _set(self, args: list[str]) -> None:
        if len(args) < 2:
            self.err.write(USAGE_SET)
            return
        what = args[1]
        if what == "history":
            self._history(True)
        elif what == "nohistory":
            self._history(False)
        elif what in ("wordwrap", "nowordwrap"):
            self.s.wordwrap = what == "wordwrap"
            self.say(f"Set '{what}' mode.")
        elif what in ("verbose", "quiet"):
            self.s.verbose = what == "verbose"
            self.say(f"Set '{what}' mode.")
        elif what == "think":
            level = args[2] if len(args) > 2 else ""
            self.s.think = level or True
            self.s.think_explicit = True
            self._warn_thinking()
            self.say(f"Set 'think' mode to '{level}'." if level else "Set 'think' mode.")
        elif what == "nothink":
            self.s.think = False
            self.s.think_explicit = True
            self._warn_thinking()
            self.say("Set 'nothink' mode.")
        elif what == "format":
            if len(args) < 3 or args[2] != "json":
                self.say("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                self.s.format = "json"
                self.say("Set format to 'json' mode.")
        elif what == "noformat":
            self.s.format = ""
            self.say("Disabled format.")
        elif what == "parameter":
            self._set_parameter(args)
        elif what == "system":
            self._set_system_command(args)
        else:
            self.say(f"Unknown command '/set {what}'. Type /? for help")

    def _history(self, enabled: bool) -> None:
        if isinstance(self.history, OllamaHistory):
            self.history.enabled = enabled

    def _set_parameter(self, args: list[str]) -> None:
        if len(args) < 4:
            self.err.write(USAGE_PARAMETERS)
            return
        name, values = args[2], args[3:]
        try:
            converted = format_params({name: values})
        except ModelfileError as error:
            self.say(f"Couldn't set parameter: {go_quote(str(error))}")
            return
        self.say(f"Set parameter '{name}' to '{', '.join(values)}'")
        self.s.options[name] = converted[name]
        if name == "num_ctx":
            self.context_length = None

    def _set_system_command(self, args: list[str]) -> None:
        if len(args) < 3:
            self.err.write(USAGE_SET)
            return
        text = " ".join(args[2:])
        if text.startswith('"""'):
            text, closed = _cut_suffix(text[3:], '"""')
            if not closed:
                self.buffer = [text] if text else []
                self.multiline = "system"
                return
        self._set_system(text, replace=True)

    def _set_system(self, text: str, *, replace: bool) -> None:
        """Ollama replaces a trailing system message on `/set system`, appends after `\"\"\"`.
        In a stored conversation it becomes the conversation's system prompt."""
        if self.s.conversation:
            try:
                self.client.request("PATCH", f"/api/conversations/{self.s.conversation}",
                                    {"system": text})
            except ClientError as error:
                self.err.write(f"Error: {error}\n")
                return
            self.s.system = text
            self.say("Set system message.")
            return
        self.s.system = text
        message = {"role": "system", "content": text}
        if replace and self.s.messages and self.s.messages[-1].get("role") == "system":
            self.s.messages[-1] = message
        else:
            self.s.messages.append(message)
        self.say("Set system message.")

    def _warn_thinking(self) -> None:
        """Ollama's ensureThinkingSupport: a warning when the model has no `thinking`."""
        try:
            show = self.client.request("POST", "/api/show", {"model": self.s.model})
        except ClientError:
            return
        if "thinking" not in (show.get("capabilities") or []):
            self.err.write(f"warning: model {go_quote(self.s.model)} does not support "
                           "thinking output\n")
            self.err.flush()

    def _show(self, args: list[str]) -> None:
        if len(args) < 2:
            self.err.write(USAGE_SHOW)
            return
        body: dict[str, Any] = {"model": self.s.model, "system": self.s.system}
        if self.s.options:
            body["options"] = self.s.options
        try:
            show = self.client.request("POST", "/api/show", body)
        except ClientError as error:
            self.say("error: couldn't get model")
            self.err.write(f"Error: {error}\n")
            return
        what = args[1]
        if what == "info":
            from pollama.cli.render import show_info

            self.err.write(show_info(show, False))
        elif what == "license":
            self.say(show.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            self.say(show.get("modelfile") or "")
        elif what == "parameters":
            self.say("Model defined parameters:")
            parameters = show.get("parameters") or ""
            if not parameters:
                self.say("  No additional parameters were specified for this model.")
            for line in parameters.split("\n") if parameters else []:
                self.say(f"  {line}")
            self.say()
            if self.s.options:
                self.say("User defined parameters:")
                for key, value in self.s.options.items():
                    self.say(f"  {key:<30} {go_value(value)}")
                self.say()
        elif what == "system":
            if self.s.system:
                self.say(self.s.system + "\n")
            elif show.get("system"):
                self.say(show["system"] + "\n")
            else:
                self.say("No system message was specified for this model.")
        elif what == "template":
            self.say(show.get("template") or "No prompt template was specified for this model.")
        else:
            self.say(f"Unknown command '/show {what}'. Type /? for help")

    def _clear(self) -> None:
        if self.s.conversation:  # the stored one keeps its history; this session leaves it
            self.say(f"Left conversation '{self.s.conversation_name}' (it keeps its history)")
            self.s.conversation = self.s.conversation_name = ""
        self.s.messages = []
        if self.s.system:
            self.s.messages.append({"role": "system", "content": self.s.system})
        self.usage = None
        self.overflow_noted = False
        self.say("Cleared session context")

    def _conversations(self) -> None:
        from pollama.cli.conversations import conversation_table

        try:
            found = self.client.request("GET", "/api/conversations")["conversations"]
        except ClientError as error:
            self.err.write(f"Error: {error}\n")
            return
        self.out.write(conversation_table(found))

    def _resume(self, args: list[str]) -> None:
        from pollama.cli.conversations import find, transcript

        if len(args) != 2:
            self.say("Usage:\n  /resume <name>")
            return
        try:
            stored = find(self.client, args[1])
        except ClientError as error:
            self.err.write(f"Error: {error}\n")
            return
        if stored is None:
            self.say(f"Couldn't find conversation '{args[1]}'")
            return
        self.s.join(stored)
        self.usage = None
        self.overflow_noted = False
        transcript(stored, self.out)
        self.say(f"Resumed conversation '{self.s.conversation_name}'")

    def _list(self, args: list[str]) -> None:
        from pollama.cli.render import human_bytes, human_time, table

        try:
            models = self.client.request("GET", "/api/tags").get("models") or []
        except ClientError as error:
            self.err.write(f"Error: {error}\n")
            return
        prefix = args[0].lower() if args else ""
        rows = [[m["name"], m["digest"][:12], human_bytes(int(m.get("size", 0))),
                 human_time(m.get("modified_at", ""))]
                for m in models if m["name"].lower().startswith(prefix)]
        self.out.write(table(rows, ["NAME", "ID", "SIZE", "MODIFIED"]))

    def _load(self, args: list[str]) -> None:
        if len(args) != 2:
            self.say("Usage:\n  /load <modelname>")
            return
        previous = self.s.copy()
        self.s.model = args[1]
        self.s.messages = []
        self.s.loaded_messages = []
        self.say(f"Loading model '{self.s.model}'")
        try:
            show = self.client.request("POST", "/api/show", {"model": self.s.model})
            self.s.apply_show(show)
            self.s.think = infer_think(self.s.capabilities, self.s.think, self.s.think_explicit)
            preload(self.client, self.s)
        except ClientError as error:
            if "not found" in error.message or error.status == 404:
                self.say(f"Couldn't find model '{self.s.model}'")
                self.s = previous
            elif "does not support thinking" in error.message:
                self.say(f"error: {error}")
            else:
                self.say(f"error: {error}")
                self.s = previous
            return
        self.usage = None
        self.overflow_noted = False
        self.context_length = None

    def _save(self, args: list[str]) -> None:
        if len(args) != 2:
            self.say("Usage:\n  /save <modelname>")
            return
        body = create_request(args[1], self.s, self._parent_exists())
        try:
            for _ in self.client.stream("/api/create", body):
                pass
        except ClientError as error:
            if "invalid model name" in error.message:
                self.say(f"error: The model name '{args[1]}' is invalid")
            else:
                self.say(f"error: {error}")
            return
        self.say(f"Created new model '{args[1]}'")

    def _parent_exists(self) -> bool:
        """Whether the parent model can be built on (a model made from a file names the file)."""
        if not self.s.parent_model:
            return False
        try:
            self.client.request("POST", "/api/show", {"model": self.s.parent_model})
        except ClientError:
            return False
        return True

    # -- messages --------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Send one user message with the whole session and show the answer (spec REPL-25)."""
        message: dict[str, Any] = {"role": "user", "content": text}
        if self.s.multimodal:
            try:
                message["content"], images = extract_file_data(text, self.err)
            except ClientError:
                return
            if images:
                message["images"] = images
        self.s.messages.append(message)
        try:
            reply = self.chat()
        except ClientError as error:
            self.s.messages.pop()
            if "upstream error" in error.message:
                self.say("An error occurred while processing your message. Please try again.")
                self.say()
            elif ("does not support thinking" in error.message
                  or "invalid think value" in error.message):
                self.say(f"error: {error}")
            else:
                self.err.write(f"Error: {error}\n")
                self.err.flush()
            return
        if reply is not None:
            self.s.messages.append(reply)

    def chat_body(self) -> dict[str, Any]:
        """The /api/chat request for the session as it stands."""
        body: dict[str, Any] = {"model": self.s.model, "messages": self.s.messages}
        if self.s.conversation:  # the server has the history: send the new message only
            body["conversation"] = self.s.conversation
            body["messages"] = self.s.messages[-1:]
        if self.s.format:
            body["format"] = format_value(self.s.format)
        options = {**self.s.answer_defaults, **self.s.options}
        if options:
            body["options"] = options
        if self.s.think is not None:
            body["think"] = self.s.think
        if self.s.keepalive is not None:
            body["keep_alive"] = self.s.keepalive
        return body

    def chat(self) -> dict[str, Any] | None:
        """Stream one answer; None when Ctrl+C cancelled it (the stream is closed)."""
        writer = ResponseWriter(self.out, wordwrap=self.s.wordwrap,
                                hidethinking=self.s.hidethinking)
        spinner = Spinner(self.err)
        chunks = self.client.stream("/api/chat", self.chat_body())
        content: list[str] = []
        thinking: list[str] = []

        def collect() -> Iterator[dict[str, Any]]:
            for chunk in chunks:
                message = chunk.get("message") or {}
                content.append(message.get("content") or "")
                thinking.append(message.get("thinking") or "")
                yield chunk

        try:
            with interruptible():
                final = stream_response(collect(), writer, spinner, "message")
        except KeyboardInterrupt:
            spinner.stop()
            writer.finish()
            self.say()
            return None
        finally:
            spinner.stop()
            chunks.close()  # on Ctrl+C this drops the connection: the server stops generating
            writer.finish()
        self.out.write("\n\n")
        self.out.flush()
        self._check_overflow(final, bool("".join(thinking)))
        if self.s.verbose:
            print_stats(final, self.err)
        reply: dict[str, Any] = {"role": (final.get("message") or {}).get("role") or "assistant",
                                 "content": "".join(content)}
        if "".join(thinking):
            reply["thinking"] = "".join(thinking)
        return reply

    def _context(self) -> int | None:
        """The context window of the conversation: num_ctx if set, else the loaded runner's."""
        if isinstance(self.s.options.get("num_ctx"), int) and self.s.options["num_ctx"] > 0:
            return int(self.s.options["num_ctx"])
        if self.context_length is None:
            try:
                models = self.client.request("GET", "/api/ps").get("models") or []
            except ClientError:
                return None
            for model in models:
                if model.get("name") == self.s.model or model.get("model") == self.s.model:
                    self.context_length = int(model.get("context_length") or 0) or None
        return self.context_length

    def _check_overflow(self, final: dict[str, Any], thinking: bool) -> None:
        """Say once, dimmed, when the server had to drop the oldest turns (see module doc)."""
        prompt = int(final.get("prompt_eval_count") or 0)
        evaluated = int(final.get("eval_count") or 0)
        previous, self.usage = self.usage, _Usage(prompt, evaluated, thinking)
        if self.overflow_noted or previous is None or not prompt:
            return
        # A thinking reply is not sent back in full, so only its prompt is a sure floor.
        floor = previous.prompt + (0 if previous.thinking else previous.eval)
        if prompt >= floor:
            return
        context = self._context()
        if context and prompt * 2 < context:
            return  # far below the window: not a truncation (e.g. counts that skip a cache)
        self.overflow_noted = True
        self.err.write(f"{DIM}{OVERFLOW_NOTICE}{RESET}\n\n")
        self.err.flush()


def _cut_suffix(text: str, suffix: str) -> tuple[str, bool]:
    if text.endswith(suffix):
        return text[: -len(suffix)], True
    return text, False


def _join(lines: list[str]) -> str:
    """Lines of a `\"\"\"` block joined with newlines, without the empty opening/closing line."""
    if lines and lines[0] == "":
        lines = lines[1:]
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return "\n".join(lines)


def create_request(name: str, session: Session, parent_ok: bool = True) -> dict[str, Any]:
    """Ollama's NewCreateRequest: `/save` builds on the parent model with the session on top."""
    parent = session.parent_model if parent_ok else ""
    if parent:
        from pollama.names import parse

        if not parse(parent).is_valid:
            parent = ""
    body: dict[str, Any] = {"model": name, "from": parent or session.model}
    if session.system:
        body["system"] = session.system
    if session.options:
        body["parameters"] = session.options
    messages = [*session.loaded_messages, *session.messages]
    if messages:
        body["messages"] = messages
    return body


def preload(client: Client, session: Session) -> None:
    """Load the model with an empty generate (spec RUN-14), with a spinner on stderr."""
    body: dict[str, Any] = {"model": session.model}
    if session.keepalive is not None:
        body["keep_alive"] = session.keepalive
    if session.think is not None:
        body["think"] = session.think
    spinner = Spinner()
    try:
        with interruptible():
            for _ in client.stream("/api/generate", body):
                pass
    finally:
        spinner.stop()


def replay(session: Session, out: TextIO) -> None:
    """Print the model's MESSAGE history as Ollama does before the first prompt."""
    for message in session.loaded_messages:
        if message.get("role") == "user":
            out.write(f">>> {message.get('content', '')}\n")
        elif message.get("role") == "assistant":
            writer = ResponseWriter(out, wordwrap=session.wordwrap)
            writer.display(str(message.get("content") or ""))
            out.write("\n\n")
    out.flush()


def run_interactive(client: Client, session: Session, show: dict[str, Any]) -> None:
    """`pollama run MODEL` on a terminal: preload, replay the model's messages, then the REPL."""
    session.apply_show(show)
    preload(client, session)
    replay(session, sys.stdout)
    if session.conversation:
        from pollama.cli.conversations import transcript

        transcript({"messages": session.messages}, sys.stdout)
    history = OllamaHistory(client.config.home / "history", enabled=not client.config.nohistory)
    Repl(client, session, history=history).run()
