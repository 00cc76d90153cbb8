"""A GGUF's Jinja `tokenizer.chat_template`, rendered in jinja2's sandbox as Hugging Face does.

The environment matches transformers' chat-template rendering (trim_blocks, lstrip_blocks,
loop controls, `tojson`, `raise_exception`, `strftime_now`), so templates written for it render
the same here. Compiled templates are cached by their text.

A GGUF can come from anywhere, so its template runs in jinja2's immutable sandbox, made
stricter: reaching for an unsafe attribute (`__class__`, `__globals__`, `append`…) is an error
at once (jinja2 would hand back an undefined that prints as nothing), `*` and `**` cannot build
huge values, and any failure is a `ChatTemplateError` (400) naming the cause, never a 500.
"""

from __future__ import annotations

import datetime
import functools
import json
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.ext import loopcontrols
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pollama.errors import BadRequest


class ChatTemplateError(BadRequest):
    """The model's chat template failed to render these messages."""


_TOOL_TAGS = ("<tool_call>", "[TOOL_CALLS]", "<|tool_call_start|>", "<|tool_call|>",
               "<function_call>")


def jinja_tool_tag(chat_template: str | None) -> str:
    """The tool-call tag a GGUF Jinja chat template teaches its model; `{` for bare JSON."""
    text = chat_template or ""
    for tag in _TOOL_TAGS:
        if tag in text:
            return tag
    return "{"


def _raise(message: str) -> None:
    raise ChatTemplateError(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False,
            separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


MAX_REPEAT = 1_000_000  # items or characters `*` may build (`'-' * 20` is the usual use)
MAX_POWER_BITS = 100_000  # size of an integer `**` may build


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} "
                            "object is unsafe")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for items, times in ((left, right), (right, left)):
                if isinstance(items, str | list | tuple) and isinstance(times, int) and \
                        len(items) * times > MAX_REPEAT:
                    raise SecurityError(f"'*' would build {len(items) * times} items; the "
                                        f"sandbox allows {MAX_REPEAT}")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and \
                right * abs(left).bit_length() > MAX_POWER_BITS:
            raise SecurityError("'**' would build an integer too large for the sandbox")
        return super().call_binop(context, operator, left, right)


@functools.lru_cache(maxsize=32)
def _compile(source: str) -> Any:
    env = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render(source: str, messages: list[dict[str, Any]], *, tools: list[Any] | None = None,
           add_generation_prompt: bool = True, bos_token: str = "", eos_token: str = "",
           **extra: Any) -> str:
    """Render `messages` (and `tools`) with a chat template; errors become ChatTemplateError."""
    try:
        template = _compile(source)
        return template.render(messages=messages, tools=tools or None,
                               add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token, eos_token=eos_token, **extra)
    except ChatTemplateError:
        raise
    except Exception as err:  # a template is data: whatever breaks in it is the template's
        reason = str(err) or type(err).__name__
        raise ChatTemplateError(f"error rendering the model's chat template: {reason}"
                                ) from None
