"""`POST /v1/completions` (OAI-05): a legacy completion request → a native `GenerateRequest`,
the native `/api/generate` chunks → `text_completion` objects.

`logprobs` (an int: how many alternatives per token, 0 for the chosen token's only) comes
back in the legacy completions shape (`tokens`, `token_logprobs`, `top_logprobs`,
`text_offset`), where Ollama drops it.
`echo`, `best_of`, `n` > 1 and `logit_bias` are refused rather than ignored.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field

from pollama.errors import BadRequest
from pollama.inference.collapse import collapse_generate
from pollama.inference.requests import GenerateRequest
from pollama.inference.requests import Request as Body
from pollama.server import openapi as doc
from pollama.server.native.models import body_schema
from pollama.server.native.types import validate
from pollama.server.openai.common import (
    NO_LOGIT_BIAS,
    ONLY_ONE,
    STOP,
    STREAM_OPTIONS,
    SYSTEM_FINGERPRINT,
    new_id,
    parse_request,
    refuse,
    sampling_options,
    schema,
    unix_now,
    usage,
)
from pollama.server.openai.errors import OpenAIRoute, stream_error
from pollama.server.state import State
from pollama.server.streaming import collect, sse_response

router = APIRouter(route_class=OpenAIRoute)


class CompletionRequest(Body):
    model_config = ConfigDict(json_schema_extra={"required": ["model", "prompt"]})

    model: str = Field("", json_schema_extra={"minLength": 1})
    prompt: Annotated[Any, schema({"type": "string"}, {
        "type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1})] = None
    suffix: str | None = None
    max_tokens: int | None = Field(None, json_schema_extra={"minimum": 1})
    seed: int | None = None
    stop: Annotated[Any, STOP] = None
    stream: bool | None = None
    stream_options: Annotated[dict[str, Any] | None, STREAM_OPTIONS] = None
    temperature: float | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 2})
    top_p: float | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 1})
    frequency_penalty: float | None = Field(None,
                                            json_schema_extra={"minimum": -2, "maximum": 2})
    presence_penalty: float | None = Field(None, json_schema_extra={"minimum": -2, "maximum": 2})
    logprobs: int | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 20})
    echo: Annotated[bool | None, schema({"type": "boolean", "const": False})] = None
    best_of: Annotated[int | None, ONLY_ONE] = None
    n: Annotated[int | None, ONLY_ONE] = None
    logit_bias: Annotated[dict[str, Any] | None, NO_LOGIT_BIAS] = None
    grammar: str | None = Field(None, description="beyond OpenAI: a GBNF grammar")
    debug_render_only: bool = Field(False, alias="_debug_render_only")


def prompt_text(prompt: Any) -> str:
    """`prompt`: a string (or a list holding one string); token arrays and batches refused."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    raise BadRequest("'prompt' must be a string: pollama completes one text prompt per "
                     "request (no batches, no token arrays)")


def to_generate_request(body: CompletionRequest) -> GenerateRequest:
    refuse(bool(body.echo), "echo")
    refuse((body.best_of or 1) != 1, "best_of")
    refuse((body.n or 1) != 1, "n", ": it answers one choice per request")
    refuse(bool(body.logit_bias), "logit_bias")
    if body.logprobs is not None and not 0 <= body.logprobs <= 20:
        raise BadRequest("logprobs must be between 0 and 20")
    options = sampling_options(
        temperature=body.temperature, top_p=body.top_p or None, max_tokens=body.max_tokens,
        seed=body.seed, stop=body.stop, frequency_penalty=body.frequency_penalty or 0.0,
        presence_penalty=body.presence_penalty or 0.0)
    return validate({
        "model": body.model, "prompt": prompt_text(body.prompt), "suffix": body.suffix or "",
        "options": options, "stream": bool(body.stream), "grammar": body.grammar,
        "logprobs": body.logprobs is not None, "top_logprobs": body.logprobs or 0,
        "_debug_render_only": body.debug_render_only}, GenerateRequest)


class LegacyLogprobs:
    """Native logprobs → the completions shape, `text_offset` counted across one answer."""

    def __init__(self, prompt_chars: int = 0) -> None:
        self.offset = prompt_chars

    def convert(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"text_offset": [], "token_logprobs": [], "tokens": [],
                               "top_logprobs": []}
        for entry in entries:
            token = entry.get("token", "")
            out["text_offset"].append(self.offset)
            out["token_logprobs"].append(entry.get("logprob", 0.0))
            out["tokens"].append(token)
            out["top_logprobs"].append({t.get("token", ""): t.get("logprob", 0.0)
                                        for t in entry.get("top_logprobs") or []})
            self.offset += len(token)
        return out


def _choice(text: str, reason: str | None, logprobs: dict[str, Any] | None) -> dict[str, Any]:
    choice: dict[str, Any] = {"text": text, "index": 0, "finish_reason": reason or None}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return choice


def to_completion(cid: str, created: int, native: dict[str, Any],
                  want_logprobs: bool) -> dict[str, Any]:
    logprobs = LegacyLogprobs().convert(native.get("logprobs") or []) if want_logprobs else None
    out = {"id": cid, "object": "text_completion", "created": created,
           "model": native.get("model", ""), "system_fingerprint": SYSTEM_FINGERPRINT,
           "choices": [_choice(native.get("response", ""), native.get("done_reason"),
                               logprobs)],
           "usage": usage(native)}
    if "_debug_info" in native:
        out["_debug_info"] = native["_debug_info"]
    return out


class CompletionChunks:
    """Native `/api/generate` chunks → streamed `text_completion` objects (OAI-05)."""

    def __init__(self, cid: str, model: str, created: int, include_usage: bool,
                 want_logprobs: bool) -> None:
        self.cid = cid
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.logprobs = LegacyLogprobs() if want_logprobs else None

    def convert(self, native: dict[str, Any]) -> list[dict[str, Any]]:
        logprobs = self.logprobs.convert(native.get("logprobs") or []) \
            if self.logprobs is not None else None
        chunk: dict[str, Any] = {
            "id": self.cid, "object": "text_completion", "created": self.created,
            "choices": [_choice(native.get("response", ""), native.get("done_reason"),
                                logprobs)],
            "model": self.model, "system_fingerprint": SYSTEM_FINGERPRINT}
        if self.include_usage:
            chunk["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        out = [chunk]
        if native.get("done") and self.include_usage:
            out.append({**chunk, "choices": [], "usage": usage(native)})
        return out

    async def run(self, events: AsyncGenerator[dict[str, Any], None]
                  ) -> AsyncGenerator[dict[str, Any], None]:
        try:
            async for native in events:
                for chunk in self.convert(native):
                    yield chunk
        finally:
            await events.aclose()


@router.post("/v1/completions", openapi_extra=body_schema(CompletionRequest),
             responses=doc.openai(400, 404, 500, 503, ok=doc.Completion, stream=True))
async def completions(request: Request, server: State) -> Response:
    body = parse_request(await request.body(), CompletionRequest)
    req = to_generate_request(body)
    cid = new_id("cmpl-")
    created = unix_now()
    events = server.inference.generate(req)
    want_logprobs = req.logprobs
    if not body.stream or body.debug_render_only:
        native = collapse_generate(await collect(events))
        native.setdefault("model", body.model)
        return JSONResponse(to_completion(cid, created, native, want_logprobs))
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    chunks = CompletionChunks(cid, body.model, created, include_usage, want_logprobs)
    return await sse_response(chunks.run(events), error=stream_error, done="[DONE]")
