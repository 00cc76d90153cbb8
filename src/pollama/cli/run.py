"""`pollama run`: option parsing, one-shot generation, and the display both it and the REPL use.

The display follows Ollama's `displayResponse` (cmd/cmd.go): word wrap at the terminal width
with the partial word moved to the next line, thinking in grey between `Thinking...` and
`...done thinking.`, and plain text with no control codes when the output is not a terminal.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from typer.core import TyperCommand
from wcwidth import wcswidth, wcwidth

from pollama.cli.client import Client, ClientError
from pollama.go import format_go_duration, parse_go_duration

THINK_VALUES: dict[str, bool | str] = {
    "true": True, "": True, "false": False, "high": "high", "medium": "medium", "low": "low",
    "max": "max"}

GREY = "\x1b[38;5;245m"  # Ollama's readline.ColorGrey
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def parse_think(value: str | None) -> bool | str | None:
    """The `--think` flag's value as the API's `think` (spec RUN-06); None when not given."""
    if value is None:
        return None
    if value not in THINK_VALUES:
        raise ClientError(f'invalid value for --think: "{value}" (must be true, false, high, '
                          'medium, low, or max)')
    return THINK_VALUES[value]


class RunCommand(TyperCommand):
    """`run` with cobra's optional flag value: a bare `--think` means `--think=true` (RUN-06).

    As with cobra's NoOptDefVal, a level must be attached (`--think=high`); a bare `--think`
    never takes the next word as its value.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        args = [(_cobra_flag(arg) if i < end else arg) for i, arg in enumerate(args)]
        return super().parse_args(ctx, args)


_BOOL_TEXT = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}


def _cobra_flag(arg: str) -> str:
    """`--think` alone → `--think=true`; cobra's `--truncate=false` → `--no-truncate`."""
    if arg == "--think":
        return "--think=true"
    name, eq, value = arg.partition("=")
    if name == "--truncate" and eq:
        flag = _BOOL_TEXT.get(value.lower())
        if flag is None:
            raise ClientError(f'invalid argument "{value}" for "--truncate" flag: '
                              "strconv.ParseBool: parsing " + json.dumps(value) +
                              ": invalid syntax")
        return "--truncate" if flag else "--no-truncate"
    return arg


def infer_think(capabilities: list[str], think: bool | str | None,
                explicit: bool) -> bool | str | None:
    """Ollama's `inferThinkingOption`: thinking on for `thinking` models unless set by the user."""
    if explicit:
        return think
    return True if "thinking" in capabilities else None


def parse_keepalive(value: str | None) -> str | None:
    """Validate `--keepalive` as a Go duration (spec RUN-09); the string is sent as is."""
    if value is None:
        return None
    try:
        parse_go_duration(value)
    except ValueError as err:
        raise ClientError(str(err)) from None
    return value


def _format_duration(ns: int) -> str:
    """Go's time.Duration.String() of nanoseconds (e.g. 1.234567s, 12.5ms)."""
    return format_go_duration(ns / 1e9)


def print_stats(final: dict[str, Any], stream: TextIO | None = None) -> None:
    """Ollama's --verbose block (spec RUN-08), on stderr, non-zero fields only."""
    lines = []
    for label, key in (("total duration", "total_duration"), ("load duration", "load_duration")):
        if final.get(key):
            lines.append(f"{label + ':':<22}{_format_duration(final[key])}")
    for label, prefix in (("prompt eval", "prompt_eval"), ("eval", "eval")):
        count, ns = final.get(f"{prefix}_count", 0), final.get(f"{prefix}_duration", 0)
        if count:
            lines.append(f"{label + ' count:':<22}{count} token(s)")
        if ns:
            lines.append(f"{label + ' duration:':<22}{_format_duration(ns)}")
            lines.append(f"{label + ' rate:':<22}{count / (ns / 1e9):.2f} tokens/s")
    print("\n".join(lines), file=stream or sys.stderr)


def format_value(fmt: str | None) -> Any:
    """`--format`/`/set format` as the API's `format`: "json", or raw JSON such as a schema."""
    if not fmt:
        return None
    if fmt == "json":
        return "json"
    try:
        return json.loads(fmt)
    except ValueError:
        return fmt


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl+C raises KeyboardInterrupt inside, even where SIGINT was inherited as ignored.

    A process started in the background by a shell without job control ignores SIGINT, and
    Python then installs no handler; Ollama's signal.Notify turns it back on the same way.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Spinner:
    """Ollama's empty-message spinner on stderr while waiting; cleared when it stops.

    Only on a terminal: with stderr redirected nothing is written.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            tty = self.stream.isatty()
        except (ValueError, AttributeError):
            tty = False
        if tty:
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()

    def _spin(self) -> None:
        frame = 0
        self.stream.write("\x1b[?25l")
        while True:
            self.stream.write(f"\r{SPINNER[frame % len(SPINNER)]}\x1b[K")
            self.stream.flush()
            frame += 1
            if self._stop.wait(0.1):
                break
        self.stream.write("\r\x1b[K\x1b[?25h")
        self.stream.flush()

    def stop(self) -> None:
        """Stop and clear the spinner line; safe to call more than once."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


def _char_width(ch: str) -> int:
    return max(wcwidth(ch), 0)


def _text_width(text: str) -> int:
    width = wcswidth(text)
    return width if width >= 0 else sum(_char_width(c) for c in text)


class ResponseWriter:
    """Writes a streamed answer: thinking (grey, or hidden), content, word wrap (spec RUN-04/07).

    `plain` drops every control code (pipes); word wrap then is off too, since moving a
    partial word needs cursor movement.
    """

    def __init__(self, out: TextIO | None = None, *, wordwrap: bool = True, plain: bool = False,
                 hidethinking: bool = False) -> None:
        self.out = out or sys.stdout
        self.plain = plain
        self.wordwrap = wordwrap and not plain
        self.hidethinking = hidethinking
        self.line_length = 0
        self.word = ""
        self.thinking_open = False
        self.thinking_text = ""
        self.wrote = False

    # -- word wrap -------------------------------------------------------------------------

    def _width(self) -> int:
        """The terminal's width, 80 when unknown (Ollama asks the tty, not $COLUMNS)."""
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 80
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return shutil.get_terminal_size((80, 24)).columns or 80

    def display(self, text: str) -> None:
        """Write text, wrapping at the terminal width the way Ollama's displayResponse does."""
        if not text:
            return
        self.wrote = True
        width = self._width()
        if not self.wordwrap or width < 10:
            self.out.write(text)
            return
        parts: list[str] = []
        for ch in text:
            ch_width = _char_width(ch)
            if self.line_length + 1 > width - 5:
                word_width = _text_width(self.word)
                if word_width > width - 10:
                    # Too long a word to move: break it here (Ollama prints it twice).
                    parts.append("\n" + ch)
                    self.word = ch if ch not in " \t\n\r" else ""
                    self.line_length = ch_width if ch not in "\n\r" else 0
                    continue
                if word_width:
                    parts.append(f"\x1b[{word_width}D")
                parts.append("\x1b[K\n" + self.word + ch)
                self.line_length = word_width + ch_width
                self._after(ch, ends_word=ch in " \t")
                continue
            parts.append(ch)
            self.line_length += ch_width
            self._after(ch, ends_word=ch_width >= 2 or ch in " \t")
        self.out.write("".join(parts))

    def _after(self, ch: str, ends_word: bool) -> None:
        """Track the word being written after `ch`: a newline also starts a new line."""
        if ends_word:
            self.word = ""
        elif ch in "\n\r":
            self.line_length = 0
            self.word = ""
        else:
            self.word += ch

    def _reset_wrap(self) -> None:
        self.line_length = 0
        self.word = ""

    # -- one chunk -------------------------------------------------------------------------

    def thinking(self, text: str) -> None:
        """Thinking text: `Thinking...` before the first piece, grey on a terminal."""
        if not text or self.hidethinking:
            return
        if not self.thinking_open:
            opening = "Thinking...\n"
            self.out.write(opening if self.plain else f"{GREY}{BOLD}{opening}{RESET}{GREY}")
            self.thinking_open = True
            self.wrote = True
        self.thinking_text += text
        self.display(text)

    def close_thinking(self) -> None:
        """`...done thinking.` once content or tool calls start."""
        if not self.thinking_open:
            return
        if not self.thinking_text.endswith("\n"):
            self.out.write("\n")
        closing = "...done thinking.\n\n"
        self.out.write(closing if self.plain else f"{GREY}{BOLD}{closing}{RESET}")
        self.thinking_open = False
        self._reset_wrap()

    def content(self, text: str) -> None:
        """Answer text; the first piece closes an open thinking block."""
        if text:
            self.close_thinking()
        self.display(text)

    def tool_calls(self, calls: list[dict[str, Any]]) -> None:
        """Unexpected tool calls, shown as Ollama's renderToolCalls does."""
        if not calls:
            return
        self.close_thinking()
        grey = "" if self.plain else GREY + BOLD
        value = "" if self.plain else RESET
        lines = []
        for call in calls:
            function = call.get("function") or {}
            args = json.dumps(function.get("arguments") or {}, separators=(",", ":"))
            lines.append(f"  Model called a non-existent function '{value}"
                         f"{function.get('name', '')}(){grey}' with arguments: "
                         f"{value}{args}{grey}")
        self.out.write(grey + "\n".join(lines) + ("" if self.plain else RESET))
        self.wrote = True

    def finish(self) -> None:
        """End of the answer or a cancel: no colour left on."""
        if self.thinking_open and not self.plain:
            self.out.write(RESET)
        self.out.flush()


def stream_response(chunks: Iterator[dict[str, Any]], writer: ResponseWriter,
                    spinner: Spinner | None, key: str) -> dict[str, Any]:
    """Show a stream of generate (`key`="response") or chat ("message") chunks; return the last.

    The spinner stops at the first visible output. The caller closes `chunks`.
    """
    final: dict[str, Any] = {}
    for chunk in chunks:
        if key == "message":
            message = chunk.get("message") or {}
            thinking, content = message.get("thinking"), message.get("content")
            calls = message.get("tool_calls")
        else:
            thinking, content, calls = chunk.get("thinking"), chunk.get("response"), \
                chunk.get("tool_calls")
        if spinner is not None and (content or (thinking and not writer.hidethinking)):
            spinner.stop()
        writer.thinking(thinking or "")
        writer.content(content or "")
        writer.tool_calls(calls or [])
        writer.out.flush()
        final = chunk
    if spinner is not None:
        spinner.stop()
    return final


def answer_defaults(show: dict[str, Any]) -> dict[str, Any]:
    """Options `run` sends unless the user sets them: an answer ends when the context window is
    full (llama.cpp's num_predict -2) unless the model's Modelfile sets num_predict, so a model
    caught in a loop cannot write for minutes (the API keeps Ollama's 10×num_ctx bound)."""
    for line in str(show.get("parameters") or "").splitlines():
        if line.split()[:1] == ["num_predict"]:
            return {}
    return {"num_predict": -2}


def generate_once(client: Client, model: str, prompt: str, *, keepalive: str | None,
                  fmt: str | None, think: bool | str | None, hidethinking: bool,
                  verbose: bool, wordwrap: bool = False,
                  options: dict[str, Any] | None = None,
                  images: list[str] | None = None, conversation: str | None = None) -> None:
    """One-shot `/api/generate` streamed to stdout; plain text when stdout is not a terminal.
    With a stored `conversation`, the prompt is its next turn (`/api/chat`)."""
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if images:
        body["images"] = images
    path, key = "/api/generate", "response"
    if conversation is not None:
        message: dict[str, Any] = {"role": "user", "content": prompt}
        if images:
            message["images"] = images
        body = {"model": model, "conversation": conversation, "messages": [message]}
        path, key = "/api/chat", "message"
    if options:
        body["options"] = options
    if keepalive is not None:
        body["keep_alive"] = keepalive
    if fmt:
        body["format"] = format_value(fmt)
    if think is not None:
        body["think"] = think
    plain = not sys.stdout.isatty()
    writer = ResponseWriter(sys.stdout, wordwrap=wordwrap, plain=plain,
                            hidethinking=hidethinking)
    spinner = Spinner() if not plain else None
    chunks = client.stream(path, body)
    try:
        with interruptible():
            final = stream_response(chunks, writer, spinner, key)
    except KeyboardInterrupt:  # Ollama cancels silently (spec RUN-13)
        return
    finally:
        if spinner is not None:
            spinner.stop()
        chunks.close()
        writer.finish()
    if prompt:
        sys.stdout.write("\n\n")
    sys.stdout.flush()
    if verbose and final.get("done"):
        print_stats(final)


def go_float32(value: float) -> str:
    """A float32 as Go's encoding/json writes it: shortest text, `e` notation below 1e-6 and
    from 1e21 on, with the exponent's leading zeros dropped."""
    import numpy as np

    f = np.float32(value)
    magnitude = abs(f)  # compared as float32s, as Go does
    if magnitude != 0 and (magnitude < np.float32(1e-6) or magnitude >= np.float32(1e21)):
        return np.format_float_scientific(f, unique=True, trim="-", exp_digits=1)
    return np.format_float_positional(f, unique=True, trim="-")


def embed_once(client: Client, model: str, text: str, *, keepalive: str | None,
               truncate: bool | None, dimensions: int) -> None:
    """`run` on an embedding model (RUN-11): `/api/embed`, the first vector on one line as a
    JSON array (Go's float32 text); `truncate` only when the flag was given."""
    body: dict[str, Any] = {"model": model, "input": text}
    if keepalive is not None:
        body["keep_alive"] = keepalive
    if truncate is not None:
        body["truncate"] = truncate
    if dimensions > 0:
        body["dimensions"] = dimensions
    response = client.request("POST", "/api/embed", body)
    embeddings = response.get("embeddings") or []
    if not embeddings:
        raise ClientError("no embeddings returned")
    print("[" + ",".join(go_float32(v) for v in embeddings[0]) + "]")
