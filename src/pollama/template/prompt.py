"""Messages → prompt text: pick the model's template, render, and fit the context window.

Which template runs (spec TPL-12/ARC-03): a Go TEMPLATE layer when the model has one, unless
the GGUF has a chat template and OLLAMA_GO_TEMPLATE=0, or (the variable unset) the GGUF's can do
more (`models.info.prefer_chat_template`); otherwise the GGUF's Jinja `tokenizer.chat_template`;
otherwise Ollama's default `{{ .Prompt }}`. The same choice gives the thinking tags and the
tool-call tag the output parsers look for. History that does not fit `num_ctx` loses its
oldest turns first; system messages are always kept (spec PRM-01), and a window's images count
at their real size (the runner tokenizes the prompt with them).

Images get Ollama's placeholders (PRM-03): each image of a kept message is an `[img-N]` tag (N
counts the window's images from 0), replacing the first `[img]` of the message's text if there
is one, else prefixed to it; `media_prompt` turns the rendered tags into the runner's marker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pollama.formats import gguf
from pollama.template import jinja

IMAGE_PLACEHOLDER = "[img]"  # where a user wants an image in the text (PRM-03)
DEFAULT_TEMPLATE = "{{ .Prompt }}"  # what Ollama runs for a model without a template (TPL-03)


@dataclass
class PromptTemplate:
    """The template sources of one model, and the special-token text templates may print."""

    go_template: str | None
    chat_template: str | None
    bos_token: str = ""
    eos_token: str = ""

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


def image_tag(n: int) -> str:
    """The placeholder of the window's image `n` (0-based) in a rendered prompt."""
    return f"[img-{n}]"


def tag_images(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Messages with an `[img-N]` tag per image in their text (Ollama's imageTaggedMessages),
    and the images in the order of their tags. Messages without images are left as they are."""
    out: list[dict[str, Any]] = []
    images: list[str] = []
    for m in messages:
        own = m.get("images") or []
        if not own:
            out.append(m)
            continue
        content = str(m.get("content") or "")
        prefix = ""
        for image in own:
            tag = image_tag(len(images))
            images.append(image)
            if IMAGE_PLACEHOLDER in content:
                content = content.replace(IMAGE_PLACEHOLDER, tag, 1)
            else:
                prefix += tag
        out.append({**m, "content": prefix + content})
    return out, images


def media_prompt(prompt: str, count: int, marker: str) -> str:
    """A rendered prompt with its `count` image tags turned into the runner's media marker.

    Raises ValueError when a tag is missing: the template left out a message with an image,
    which would otherwise go to the model without its place in the text.
    """
    for n in range(count):
        tag = image_tag(n)
        if tag not in prompt:
            raise ValueError(f"the model's template leaves out the message that carries image "
                             f"{n + 1} of the prompt")
        prompt = prompt.replace(tag, marker, 1)
    return prompt


@dataclass
class Fitted:
    """What `fit_messages` chose: the prompt (image tags in it), how many messages it left out,
    and the images of the kept messages in the order of their tags."""

    prompt: str
    dropped: int = 0
    images: list[str] = field(default_factory=list)


async def fit_messages(template: PromptTemplate, messages: list[dict[str, Any]], *,
                       num_ctx: int, truncate: bool,
                       count_tokens: Callable[[str, list[str]], Awaitable[int]],
                       tools: list[Any] | None = None,
                       think: bool | str | None = None) -> Fitted:
    """Render the longest suffix of `messages` that fits `num_ctx` (systems always kept).

    `count_tokens(prompt, images)` is what the runner would evaluate for a rendered window.
    """
    def window(start: int) -> Fitted:
        kept_systems = [m for m in messages[:start] if m.get("role") == "system"]
        tagged, images = tag_images(kept_systems + messages[start:])
        dropped = sum(1 for m in messages[:start] if m.get("role") != "system")
        return Fitted(template.render(tagged, tools=tools, think=think), dropped, images)

    # Rendering runs in a worker thread: a slow template (long history, or one a hostile GGUF
    # brought) must not stall every other request on the event loop.
    if not truncate or len(messages) <= 1:
        return await asyncio.to_thread(window, 0)
    for start in range(len(messages)):
        candidate = await asyncio.to_thread(window, start)
        if await count_tokens(candidate.prompt, candidate.images) <= num_ctx:
            return candidate
    return await asyncio.to_thread(window, len(messages) - 1)
