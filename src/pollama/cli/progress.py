"""Ollama-style progress on stderr: a bar per blob, a spinner per status line.

On a terminal the block of lines is redrawn in place every 100 ms with the cursor hidden; when
stderr is not a terminal each line is printed once, when it finishes, with no control codes.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Any, TextIO

from pollama.formats.gguf import human_bytes

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _eta(seconds: float) -> str:
    if seconds >= 100 * 3600:
        return "99h+"
    seconds = round(seconds)
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class _Bar:
    def __init__(self, message: str, total: int, completed: int) -> None:
        self.message = message
        self.total = total
        self.initial = completed
        self.current = completed
        self.started = time.monotonic()
        self.stopped: float | None = None
        self.samples: list[tuple[float, int]] = [(self.started, completed)]

    def set(self, completed: int) -> None:
        self.current = min(completed, self.total)
        now = time.monotonic()
        if self.current >= self.total and self.stopped is None:
            self.stopped = now
        if now - self.samples[-1][0] >= 1.0:
            self.samples = [*self.samples[-9:], (now, self.current)]

    @property
    def done(self) -> bool:
        return self.stopped is not None

    def rate(self) -> float:
        if self.stopped is not None:
            seconds = max(round(self.stopped - self.started), 1)
            return (self.current - self.initial) / seconds
        first_t, first_v = self.samples[0]
        elapsed = time.monotonic() - first_t
        return (self.current - first_v) / elapsed if elapsed > 0.5 else 0.0

    def render(self, width: int) -> str:
        pct = self.current / self.total * 100 if self.total else 0.0
        pre = f"{self.message} {pct:3.0f}%"
        if self.stopped is None:
            suf = f"{human_bytes(self.current):>6}/{human_bytes(self.total):>6}"
        else:
            suf = f"{human_bytes(self.total):>6}" + " " * 7
        rate = self.rate()
        if self.stopped is None and rate > 0:
            suf += f"  {human_bytes(int(rate)):>6}/s"
            suf += f"  {_eta((self.total - self.current) / rate):>6}"
        else:
            suf += " " * 18
        room = max(width - len(pre) - len(suf) - 5, 0)
        fill = int(room * pct / 100)
        return f"{pre} ▕{'█' * fill}{' ' * (room - fill)}▏ {suf}"


class _Spinner:
    def __init__(self, message: str) -> None:
        self.message = message
        self.started = time.monotonic()
        self.done = False

    def render(self, _width: int) -> str:
        if self.done:
            return self.message
        frame = SPINNER[int((time.monotonic() - self.started) * 10) % len(SPINNER)]
        return f"{self.message} {frame}"


class Progress:
    """Renders Ollama progress events (`{"status", "digest"?, "total"?, "completed"?}`)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.items: list[_Bar | _Spinner] = []
        self.bars: dict[str, _Bar] = {}
        self.spinners: dict[str, _Spinner] = {}
        self.printed = 0  # non-tty: items already printed
        self.drawn_lines = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.tty:
            self.stream.write("\x1b[?25l")
            self._thread = threading.Thread(target=self._ticker, daemon=True)
            self._thread.start()

    def _ticker(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                self._draw()

    def spinner(self, message: str, key: str | None = None) -> None:
        """Start a spinner line; with `key`, a later call with the same key rewrites it."""
        with self._lock:
            existing = self.spinners.get(key) if key else None
            if existing is not None:
                existing.message = message
                return
            self._finish_spinners()
            item = _Spinner(message)
            self.items.append(item)
            if key:
                self.spinners[key] = item
            self._after_change()

    def bar(self, key: str, message: str, total: int, completed: int) -> None:
        with self._lock:
            bar = self.bars.get(key)
            if bar is None:
                self._finish_spinners()
                bar = self.bars[key] = _Bar(message, total, completed)
                self.items.append(bar)
            bar.total = total or bar.total
            bar.set(completed)
            self._after_change()

    def event(self, event: dict[str, Any], label: str | None = None) -> None:
        """Show one progress event; `label` overrides the message of a digest bar."""
        status = str(event.get("status", ""))
        digest = event.get("digest")
        if digest and event.get("total"):
            self.bar(str(digest), label or status, int(event["total"]),
                     int(event.get("completed") or 0))
        elif status:
            current = self.items[-1] if self.items else None
            if isinstance(current, _Spinner) and current.message == status:
                return
            self.spinner(status)

    def _finish_spinners(self) -> None:
        for item in self.items:
            if isinstance(item, _Spinner):
                item.done = True

    def _after_change(self) -> None:
        if not self.tty:
            self._print_finished()

    def _print_finished(self, final: bool = False) -> None:
        while self.printed < len(self.items):
            item = self.items[self.printed]
            if not (item.done or final):
                break
            self.stream.write(item.render(80).rstrip() + "\n")
            self.printed += 1
        self.stream.flush()

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        out = ""
        if self.drawn_lines:
            out += f"\x1b[{self.drawn_lines}A" if self.drawn_lines > 0 else ""
        lines = [item.render(width) for item in self.items]
        out += "".join(f"\r\x1b[K{line[: width - 1]}\n" for line in lines)
        self.drawn_lines = len(lines)
        self.stream.write(out)
        self.stream.flush()

    def stop(self) -> None:
        """Finish: last redraw (or print what is left) and show the cursor again."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        with self._lock:
            self._finish_spinners()
            if self.tty:
                self._draw()
                self.stream.write("\x1b[?25h")
                self.stream.flush()
            else:
                self._print_finished(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
