"""Tool calls parsed out of a model's streamed text (spec GF-20, CHAT-08).

A model calls tools by writing JSON after a tag its template shows it: `<tool_call>` (ChatML,
Qwen, Hermes), `[TOOL_CALLS]` (Mistral), or nothing at all (`{`: Llama 3's bare JSON). The tag
comes from the Go template (`template.ollama.tool_call_tag`) or, for a GGUF's Jinja template,
from `template.jinja.jinja_tool_tag`. `ToolCallParser` works as Ollama's `tools.Parser` does:

* Text before the tag streams as content at once; a partial tag at the end of a chunk is held
  back until the next chunk settles it.
* After the tag everything is buffered. Each complete JSON value is read as calls:
  `{"name", "arguments" | "parameters"}` (arguments may be a JSON-encoded string),
  `{"<tool name>": {...}}`, such objects nested in another object, or an array of them. A name
  must be one of the request's tools (exactly, else the longest tool name it contains, e.g.
  `functions.get_weather`). Calls are emitted as soon as their JSON is complete, numbered by
  `function.index`, with ids `call_` + 8 characters.
* When the tag is `{` or `[`, JSON is only tried if it is the first thing the model writes, and a
  first value that is not a call ends tool parsing: the text is content.
* With `max_calls` (a request that allows no parallel calls) later calls are read and dropped.
* When the output ends and no call was found, the buffered text (tag included) is content:
  malformed JSON never disappears and never raises.
"""

from __future__ import annotations

import json
import random
import string
from enum import Enum
from typing import Any

__all__ = ["ToolCallParser", "tool_call_id"]

_ID_CHARS = string.ascii_lowercase + string.digits

# Tags that Jinja chat templates show their models, most specific first.
def tool_call_id() -> str:
    """An id like Ollama's: `call_` and 8 random characters from [a-z0-9]."""
    return "call_" + "".join(random.choices(_ID_CHARS, k=8))


def _tool_names(tools: list[Any] | None) -> list[str]:
    names = []
    for tool in tools or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names


def _json_end(text: str, start: int) -> int:
    """Index just past the bracketed value opening at `start`, or -1 if it is not complete."""
    depth = 0
    in_string = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def _next_open(text: str, start: int) -> int:
    hits = [i for i in (text.find("{", start), text.find("[", start)) if i >= 0]
    return min(hits) if hits else -1


class _State(Enum):
    LOOKING = 1
    CALLING = 2
    DONE = 3


class ToolCallParser:
    """Feed raw output to `add`; it returns the tool calls complete so far and the content."""

    def __init__(self, tag: str, tools: list[Any] | None, max_calls: int | None = None) -> None:
        self.tag = tag or "{"
        self.names = _tool_names(tools)
        self.max_calls = max_calls  # calls past it are read and dropped (no parallel calls)
        self.count = 0
        self._state = _State.LOOKING
        self._buffer = ""
        self._raw = ""  # everything since the tag, returned as content if no call is found

    @property
    def json_tag(self) -> bool:
        return self.tag in ("{", "[")

    def add(self, text: str) -> tuple[list[dict[str, Any]], str]:
        """Consume `text`; return (complete calls, content to send now)."""
        if self._state == _State.DONE:
            return [], text
        content = ""
        if self._state == _State.LOOKING:
            content, found = self._find_tag(text)
            if not found:
                return [], content
            self._state = _State.CALLING
        else:
            self._buffer += text
            self._raw += text
        calls, rest = self._parse()
        return calls, content + rest

    def flush(self) -> str:
        """The output ended: the text still held, if it held no call; else nothing."""
        if self._state == _State.LOOKING:
            text, self._buffer = self._buffer, ""
            return text
        if self._state == _State.CALLING and self.count == 0:
            text, self._raw, self._buffer = self._raw, "", ""
            return text
        return ""

    # -- steps -------------------------------------------------------------------------------

    def _find_tag(self, text: str) -> tuple[str, bool]:
        buffer = self._buffer + text
        i = buffer.find(self.tag)
        if i >= 0:
            content, self._buffer = buffer[:i], buffer[i:]
            if not self.json_tag:
                self._buffer = buffer[i + len(self.tag):]
            self._raw = buffer[i:]
            found = True
        else:
            held = 0
            for n in range(min(len(self.tag) - 1, len(buffer)), 0, -1):
                if buffer.endswith(self.tag[:n]):
                    held = n
                    break
            content, self._buffer = buffer[:len(buffer) - held], buffer[len(buffer) - held:]
            found = False
        if self.json_tag and content.strip():
            # `{`/`[` tags only count when the JSON is the first thing written
            self._state = _State.DONE
            text, self._buffer = content + self._buffer, ""
            return text, False
        return content, found

    def _parse(self) -> tuple[list[dict[str, Any]], str]:
        """Read every complete JSON value in the buffer; keep an incomplete one for later."""
        calls: list[dict[str, Any]] = []
        pos = 0
        buffer = self._buffer
        while True:
            start = _next_open(buffer, pos)
            if start < 0:
                pos = len(buffer)
                break
            end = _json_end(buffer, start)
            if end < 0:
                pos = start
                break
            found = self._calls(buffer[start:end])
            if found:
                calls.extend(found)
                pos = end
                continue
            if self.json_tag and self.count == 0 and not calls:
                # the model answered with JSON that is not a call: it is content
                self._state = _State.DONE
                text, self._buffer, self._raw = self._raw, "", ""
                return [], text
            pos = start + 1  # not a call: look inside it and after it
        self._buffer = buffer[pos:]
        return calls, ""

    def _calls(self, text: str) -> list[dict[str, Any]]:
        try:
            value = json.loads(text)
        except ValueError:
            return []
        items = value if isinstance(value, list) else [value]
        calls = []
        for item in items:
            found = self._find_call(item) if isinstance(item, dict) else None
            if found is None:
                return []  # all or nothing: a half-understood array stays text
            calls.append(found)
        out = []
        for name, arguments in calls:
            if self.max_calls is not None and self.count >= self.max_calls:
                break
            out.append({"id": tool_call_id(),
                        "function": {"index": self.count, "name": name,
                                     "arguments": arguments}})
            self.count += 1
        return out

    def _find_call(self, obj: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if "name" in obj:
            name = self._match(obj.get("name"))
            if name is None:
                return None
            for key in ("arguments", "parameters"):
                if key in obj:
                    args = _arguments(obj[key])
                    return (name, args) if args is not None else None
            return name, {}
        for key, value in obj.items():
            if key in self.names:
                args = _arguments(value)
                if args is not None:
                    return key, args
        for value in obj.values():
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, dict):
                    found = self._find_call(child)
                    if found is not None:
                        return found
        return None

    def _match(self, name: Any) -> str | None:
        if not isinstance(name, str):
            return None
        if name in self.names:
            return name
        inside = [n for n in self.names if n in name]
        return max(inside, key=len) if inside else None


def _arguments(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if value is None:
        return {}
    return value if isinstance(value, dict) else None
