"""Split a model's streamed output into `thinking` and content around its thinking tags (GF-25).

The model's tags come from its template (TPL-14: e.g. `<think>` / `</think>`). Ollama's rules,
which `ThinkingParser` follows:

* Output that starts (after whitespace) with the opening tag is thinking until the closing tag;
  output that starts with anything else is all content (thinking was skipped).
* Whitespace right after the opening tag and right after the closing tag is dropped.
* A tag split across chunks is held back until it is unambiguous, so no chunk ever shows part
  of a tag.
* When the prompt already ends with the opening tag (a template that pre-fills it), the parser
  starts inside the thinking (`prefilled`).
"""

from __future__ import annotations

import unicodedata
from enum import Enum

__all__ = ["ThinkingParser", "lstrip_space"]

_GO_SPACE = "\t\n\v\f\r \x85\xa0"


def _is_space(ch: str) -> bool:
    return ch in _GO_SPACE or unicodedata.category(ch) == "Zs" or ch in "\u2028\u2029"


def lstrip_space(text: str) -> str:
    """Drop leading white space as Go's `unicode.IsSpace` defines it."""
    i = 0
    while i < len(text) and _is_space(text[i]):
        i += 1
    return text[i:]


def _overlap(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class _State(Enum):
    LOOKING = 1  # nothing but white space seen so far
    OPENED = 2  # opening tag seen, eating the white space after it
    THINKING = 3
    CLOSED = 4  # closing tag seen, eating the white space after it
    DONE = 5  # content from here on


class ThinkingParser:
    """Feed raw output chunks to `add`; each call returns the (thinking, content) to send now."""

    def __init__(self, opening: str = "<think>", closing: str = "</think>") -> None:
        self.opening = opening
        self.closing = closing
        self._state = _State.LOOKING
        self._acc = ""

    def prefill(self, prompt: str) -> None:
        """Start inside the thinking when the rendered prompt ends with the opening tag."""
        if prompt.strip().endswith(self.opening):
            self.add(self.opening)

    @property
    def thinking_done(self) -> bool:
        """True once the closing tag was seen or the output turned out to have no thinking."""
        return self._state in (_State.CLOSED, _State.DONE)

    def add(self, text: str) -> tuple[str, str]:
        """Consume `text`; return the thinking and the content that are now unambiguous."""
        self._acc += text
        thinking: list[str] = []
        content: list[str] = []
        while self._step(thinking, content):
            pass
        return "".join(thinking), "".join(content)

    def flush(self) -> tuple[str, str]:
        """The output ended: whatever is still held back, as (thinking, content)."""
        rest, self._acc = self._acc, ""
        if self._state == _State.THINKING:
            return rest, ""
        if self._state in (_State.LOOKING, _State.DONE):
            return "", rest
        return "", ""

    def _step(self, thinking: list[str], content: list[str]) -> bool:
        """Advance one state; True when the held text may allow another step right away."""
        acc = self._acc
        if self._state == _State.LOOKING:
            trimmed = lstrip_space(acc)
            if trimmed.startswith(self.opening):
                self._acc = lstrip_space(trimmed[len(self.opening):])
                self._state = _State.THINKING if self._acc else _State.OPENED
                return True
            if not trimmed or self.opening.startswith(trimmed):
                return False  # only white space or a partial tag: wait for more
            self._state = _State.DONE  # no thinking: the text (with its white space) is content
            self._acc = ""
            content.append(acc)
            return False
        if self._state == _State.OPENED:
            self._acc = lstrip_space(acc)
            if self._acc:
                self._state = _State.THINKING
                return True
            return False
        if self._state == _State.THINKING:
            end = acc.find(self.closing)
            if end >= 0:
                thinking.append(acc[:end])
                rest = lstrip_space(acc[end + len(self.closing):])
                self._acc = ""
                self._state = _State.DONE if rest else _State.CLOSED
                content.append(rest)
                return False
            held = _overlap(acc, self.closing)
            thinking.append(acc[:len(acc) - held])
            self._acc = acc[len(acc) - held:]
            return False
        if self._state == _State.CLOSED:
            rest = lstrip_space(acc)
            self._acc = ""
            if rest:
                self._state = _State.DONE
            content.append(rest)
            return False
        self._acc = ""
        content.append(acc)
        return False


def strip_thinking(text: str, opening: str = "<think>", closing: str = "</think>") -> str:
    """`text` without a leading thinking block (an earlier answer sent back in a chat)."""
    parser = ThinkingParser(opening, closing)
    _, content = parser.add(text)
    return content + parser.flush()[1]
