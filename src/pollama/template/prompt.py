"""Messages → prompt text: pick the model's template, render, and fit the context window.

Which template runs (spec TPL-12/ARC-03): a Go TEMPLATE layer when the model has one, unless
the GGUF has a chat template and OLLAMA_GO_TEMPLATE=0, or (the variable unset) the GGUF's can do
more (`models.info.prefer_chat_template`); otherwise the GGUF's Jinja `tokenizer.chat_template`;
otherwise Ollama's default `{{ .Prompt }}`. The same choice gives the thinking tags and the
tool-call tag the output parsers look for. History that does not fit `num_ctx` loses its
oldest turns first; system messages are always kept (spec PRM-01).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pollama.formats import gguf
from pollama.template import jinja

IMAGE_TOKENS = 768  # Ollama's per-image estimate when counting a window (PRM-01)
DEFAULT_TEMPLATE = "{{ .Prompt }}"  # what Ollama runs for a model without a template (TPL-03)


@dataclass
class PromptTemplate:
    """The template sources of one model, and the special-token text templates may print."""

    go_template: str | None
    chat_template: str | None
    bos_token: str = ""
    eos_token: str = ""
    has_projector: bool = False

    @property
    def kind(self) -> str:
        if self.go_template is not None:
            return "go"
        if self.chat_template:
            return "jinja"
        return "default"

    def render(self, messages: list[dict[str, Any]], *, tools: list[Any] | None = None,
               think: bool | str | None = None) -> str:
        """The prompt for `messages`, ending where the assistant's answer starts."""
        if self.kind == "go":
            from pollama.template.ollama import render_go_chat

            return render_go_chat(self.go_template or "", messages, tools=tools, think=think)
        if self.kind == "jinja":
            extra: dict[str, Any] = {}
            if think is not None:
                extra["enable_thinking"] = bool(think)
                if isinstance(think, str):
                    extra["reasoning_effort"] = think
            return jinja.render(self.chat_template or "", [_jinja_message(m) for m in messages],
                                tools=tools, bos_token=self.bos_token, eos_token=self.eos_token,
                                **extra)
        from pollama.template.ollama import render_go_chat

        return render_go_chat(DEFAULT_TEMPLATE, messages, tools=tools, think=think)

    def thinking_tags(self) -> tuple[str, str] | None:
        """The tags around the thinking in this template's output (TPL-14, TPL-13)."""
        if self.kind == "go":
            from pollama.template.ollama import thinking_tags

            return thinking_tags(self.go_template or "")
        if self.kind == "jinja" and "thinking" in gguf.chat_template_capabilities(
                self.chat_template):
            return "<think>", "</think>"
        return None

    def tool_tag(self) -> str:
        """The text the model writes before tool calls (GF-20); `{` for bare JSON."""
        if self.kind == "go":
            from pollama.template.ollama import tool_call_tag

            return tool_call_tag(self.go_template or "")
        from pollama.template.jinja import jinja_tool_tag

        return jinja_tool_tag(self.chat_template)


def _jinja_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message as Hugging Face chat templates read it (`name`, `reasoning_content`)."""
    out = dict(message)
    if "tool_name" in out and "name" not in out:
        out["name"] = out["tool_name"]
    if "thinking" in out and "reasoning_content" not in out:
        out["reasoning_content"] = out["thinking"]
    return out


async def fit_messages(template: PromptTemplate, messages: list[dict[str, Any]], *,
                       num_ctx: int, truncate: bool,
                       count_tokens: Callable[[str], Awaitable[int]],
                       tools: list[Any] | None = None,
                       think: bool | str | None = None) -> tuple[str, int]:
    """Render the longest suffix of `messages` that fits `num_ctx` (systems always kept).

    Returns the prompt and how many non-system messages were dropped.
    """
    def window(start: int) -> list[dict[str, Any]]:
        kept_systems = [m for m in messages[:start] if m.get("role") == "system"]
        return kept_systems + messages[start:]

    prompt = template.render(messages, tools=tools, think=think)
    if not truncate or len(messages) <= 1:
        return prompt, 0
    for start in range(len(messages)):
        candidate = window(start)
        prompt = template.render(candidate, tools=tools, think=think) if start else prompt
        images = sum(len(m.get("images") or []) for m in candidate)
        count = await count_tokens(prompt)
        if template.has_projector:
            count += images * IMAGE_TOKENS
        if count <= num_ctx:
            dropped = sum(1 for m in messages[:start] if m.get("role") != "system")
            return prompt, dropped
    last = window(len(messages) - 1)
    dropped = sum(1 for m in messages[:-1] if m.get("role") != "system")
    return template.render(last, tools=tools, think=think), dropped
