"""What generate and chat take: Ollama's GenerateRequest, ChatRequest and Message, field for field.

The native API parses its bodies straight into these (`server/native/types.parse_body`); other
dialects (OpenAI, Anthropic) translate their requests into them. `None` means "not sent".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Request(BaseModel):
    """A request body: unknown fields ignored, JSON types strict (Go's encoding/json)."""

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)


class Message(Request):
    """One chat message; `role` is lower-cased as Ollama's Message.UnmarshalJSON does."""

    role: str = Field("", description="system, user, assistant or tool")
    content: str | None = Field("", description="the message text")
    thinking: str | None = Field(None, description="the model's thinking, for assistant turns")
    images: list[str] | None = Field(None, description="base64-encoded images")
    tool_calls: list[dict[str, Any]] | None = Field(None, description="tools the model called")
    tool_name: str | None = Field(None, description="name of the tool whose result this is")
    tool_call_id: str | None = Field(None, description="id of the tool call this answers")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role.lower(), "content": self.content or ""}
        for key in ("thinking", "images", "tool_calls", "tool_name", "tool_call_id"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


class GenerateRequest(Request):
    model: str = Field("", description="model name")
    prompt: str = Field("", description="the prompt; empty loads the model")
    suffix: str = Field("", description="text after the response, for fill-in-middle")
    system: str = Field("", description="system prompt, overriding the model's")
    template: str = Field("", description="Go template overriding the model's")
    context: list[int] | None = Field(None, description="deprecated: tokens of a previous answer")
    stream: bool | None = Field(None, description="stream the answer (default true)")
    raw: bool = Field(False, description="send the prompt without any template")
    format: Any = Field(None, description='"json" or a JSON schema the answer must follow')
    grammar: str | None = Field(None, description="beyond Ollama: a GBNF grammar the answer "
                                "must follow (also accepted as options.grammar)")
    images: list[str] | None = Field(None, description="base64-encoded images")
    options: dict[str, Any] | None = Field(None, description="runtime options")
    keep_alive: Any = Field(None, description="how long the model stays loaded afterwards")
    think: Any = Field(None, description="true/false or high/medium/low: thinking models")
    truncate: bool | None = Field(None, description="drop the oldest context when too long")
    shift: bool | None = Field(None, description="shift the context window when it fills")
    logprobs: bool = Field(False, description="return log probabilities of output tokens")
    top_logprobs: int = Field(0, description="how many alternatives per token (0-20)")
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="return the rendered prompt only")


class ChatRequest(Request):
    model: str = Field("", description="model name")
    messages: list[Message] | None = Field(None, description="the conversation so far")
    tools: list[dict[str, Any]] | None = Field(None, description="tools the model may call")
    tool_choice: Any = Field(None, description='beyond Ollama: "auto" (default), "none", '
                             '"required", or {"type": "function", "function": {"name": ...}}; '
                             "enforced by the sampler's grammar")
    parallel_tool_calls: bool | None = Field(None, description="beyond Ollama: false allows one "
                                             "tool call per answer when a call is required")
    stream: bool | None = Field(None, description="stream the answer (default true)")
    format: Any = Field(None, description='"json" or a JSON schema the answer must follow')
    grammar: str | None = Field(None, description="beyond Ollama: a GBNF grammar the answer "
                                "must follow (also accepted as options.grammar)")
    options: dict[str, Any] | None = Field(None, description="runtime options")
    keep_alive: Any = Field(None, description="how long the model stays loaded afterwards")
    think: Any = Field(None, description="true/false or high/medium/low: thinking models")
    truncate: bool | None = Field(None, description="drop the oldest messages when too long")
    shift: bool | None = Field(None, description="shift the context window when it fills")
    logprobs: bool = Field(False, description="return log probabilities of output tokens")
    top_logprobs: int = Field(0, description="how many alternatives per token (0-20)")
    debug_render_only: bool = Field(False, alias="_debug_render_only",
                                    description="return the rendered prompt only")


class EmbedRequest(Request):
    """`/api/embed` (the OpenAI dialect's `/v1/embeddings` translates into it)."""

    model: str = Field("", description="model name")
    input: Any = Field(None, description="a string or a list of strings to embed")
    truncate: bool | None = Field(None, description="cut inputs to the context (default true)")
    dimensions: int | None = Field(None, description="keep the first N values, re-normalized")
    options: dict[str, Any] | None = Field(None, description="runtime options")
    keep_alive: Any = Field(None, description="how long the model stays loaded afterwards")


class TokenizeRequest(Request):
    """`/api/tokenize` (beyond Ollama): text → the model's token ids."""

    model: str = Field("", description="model name")
    content: str = Field("", description="the text to tokenize")
    options: dict[str, Any] | None = Field(None, description="runtime options")
    keep_alive: Any = Field(None, description="how long the model stays loaded afterwards")


class DetokenizeRequest(Request):
    """`/api/detokenize` (beyond Ollama): token ids → text."""

    model: str = Field("", description="model name")
    tokens: list[int] = Field(default_factory=list, description="token ids to turn into text")
    options: dict[str, Any] | None = Field(None, description="runtime options")
    keep_alive: Any = Field(None, description="how long the model stays loaded afterwards")
