"""Generate and chat: from a validated request to the stream of Ollama response objects.

Resolves the model, checks its capabilities, merges options (defaults ← model params ←
request), takes a runner from the scheduler, builds the prompt, and turns the runner's chunks
into `/api/generate` and `/api/chat` objects with Ollama's fields and timings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pollama import options as opts
from pollama.api.app import ServerState
from pollama.api.types import ChatRequest, GenerateRequest
from pollama.errors import BadRequest, InvalidModelName, ModelNotFound, NotSupported
from pollama.modelinfo import ModelInfo, build
from pollama.names import parse
from pollama.scheduler import LoadSpec, Runner, Scheduler, estimate_kv_bytes, parse_keep_alive
from pollama.template.render import fit_messages

log = logging.getLogger("pollama.inference")

THINK_LEVELS = ("high", "medium", "low", "max")


def now_rfc3339() -> str:
    """`created_at` as Go marshals a UTC time (RFC 3339, `Z`)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def validate_think(value: Any) -> bool | str | None:
    """`think`: a bool or one of Ollama's levels (spec GEN-13)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in THINK_LEVELS:
            return value
        if value in ("true", "false"):
            return value == "true"
        raise BadRequest(f'invalid think value: "{value}" (must be "high", "medium", "low", '
                         '"max", true, or false)')
    raise BadRequest(f"think must be a boolean or string, got {type(value).__name__}")


def format_grammar(fmt: Any) -> str | None:
    """`format` → GBNF: "json" any object, a JSON schema its own grammar (spec GF-10)."""
    if fmt is None or fmt == "" or fmt == "null":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if fmt == "json":
        return JSON_GBNF
    if isinstance(fmt, dict):
        try:
            return json_schema_to_gbnf(json.dumps(fmt))
        except Exception as err:
            raise BadRequest(f"invalid format: {json.dumps(fmt)}; expected \"json\" or a "
                             f"valid JSON Schema object ({err})") from None
    raise BadRequest(f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema object')


def _metrics(done: dict[str, Any], started: float, load_ns: int) -> dict[str, Any]:
    out = {"total_duration": time.perf_counter_ns() - int(started), "load_duration": load_ns,
           "prompt_eval_count": int(done.get("prompt_eval_count") or 0),
           "prompt_eval_duration": int(done.get("prompt_eval_duration") or 0),
           "eval_count": int(done.get("eval_count") or 0),
           "eval_duration": int(done.get("eval_duration") or 0)}
    # Ollama omits zero-valued metrics (omitempty).
    return {k: v for k, v in out.items() if v}


class Inference:
    """The server's generate/chat service over one scheduler."""

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.scheduler = Scheduler(server.config, self._start_runner)

    async def _start_runner(self, spec: LoadSpec) -> Any:
        from pollama.engine.handle import RunnerHandle

        log_file = None
        return await RunnerHandle.start(
            spec.model_path, num_ctx=spec.num_ctx, num_parallel=spec.num_parallel,
            num_batch=spec.num_batch, num_thread=spec.num_thread, use_mmap=spec.use_mmap,
            num_gpu=spec.num_gpu, embedding=spec.embedding, adapters=spec.adapters,
            projector=spec.projector, log_file=log_file,
            load_timeout=min(self.server.config.load_timeout, 1e9),
            verbose=self.server.config.debug > 0)

    # -- model and options -----------------------------------------------------------------

    def model_info(self, name: str, *, required_text: str | None = None) -> ModelInfo:
        if not name:
            if required_text:
                raise BadRequest(required_text)
            raise ModelNotFound(name)
        if not parse(name).is_valid:
            raise InvalidModelName()
        return build(self.server.store, self.server.config, name)

    def merged_options(self, info: ModelInfo, request_options: dict[str, Any] | None
                       ) -> dict[str, Any]:
        merged = dict(info.model.params)
        merged.update(opts.from_map(request_options or {}))
        return merged

    def load_spec(self, info: ModelInfo, options: dict[str, Any], *,
                  embedding: bool = False) -> tuple[LoadSpec, int]:
        if info.model.model_path is None:
            raise BadRequest(f"{info.model.stored.name.display_long()} has no model weights")
        kv = info.gguf.kv if info.gguf else {}
        arch = info.gguf.architecture if info.gguf else ""
        num_ctx = self.scheduler.default_num_ctx(info.n_ctx_train, options.get("num_ctx"))
        kv_slot = estimate_kv_bytes(kv, arch, num_ctx)
        file_size = info.model.model_path.stat().st_size
        embedding = embedding or ("embedding" in info.capabilities and \
            "completion" not in info.capabilities)
        existing = next((r for r in self.scheduler.runners.values()
                         if r.spec.model_path == str(info.model.model_path)), None)
        parallel = (existing.spec.num_parallel if existing else
                    self.scheduler.num_parallel(file_size, kv_slot, embedding))
        spec = LoadSpec(
            model_path=str(info.model.model_path),
            adapters=tuple(str(p) for p in info.model.adapter_paths),
            projector=str(info.model.projector_paths[0]) if info.model.projector_paths else None,
            num_ctx=num_ctx, num_parallel=parallel,
            num_batch=int(options.get("num_batch") or 512),
            num_thread=int(options.get("num_thread") or 0),
            num_gpu=int(options.get("num_gpu", -1) if options.get("num_gpu") is not None else -1),
            use_mmap=bool(options.get("use_mmap", True)),
            embedding=embedding,
        )
        return spec, file_size + kv_slot * parallel

    def _acquire(self, info: ModelInfo, options: dict[str, Any], keep_alive: float | None,
                 *, embedding: bool = False) -> Any:
        spec, estimate = self.load_spec(info, options, embedding=embedding)
        stored = info.model.stored
        from pollama.api.models import model_details

        details = model_details(info.model.config, info.model.parent_model)
        return self.scheduler.acquire(lambda: spec, name=stored.name.display_shortest(),
                                      digest=stored.digest, details=details, estimate=estimate,
                                      keep_alive=keep_alive)

    def check_capabilities(self, info: ModelInfo, needed: list[str]) -> None:
        missing = [c for c in needed if c not in info.capabilities]
        if missing:
            full = info.model.stored.name.display_long()
            raise NotSupported(f"{full} does not support {chr(10).join(missing)}")

    # -- load / unload ---------------------------------------------------------------------

    async def _load_or_unload(self, info: ModelInfo, options: dict[str, Any],
                              keep_alive: float | None, model: str) -> str:
        if keep_alive == 0:
            self.scheduler.expire(str(info.model.model_path))
            return "unload"
        async with self._acquire(info, options, keep_alive):
            pass
        return "load"

    # -- generate --------------------------------------------------------------------------

    async def generate(self, req: GenerateRequest) -> AsyncIterator[dict[str, Any]]:
        started = time.perf_counter_ns()
        info = self.model_info(req.model)
        think = validate_think(req.think)
        if req.raw and (req.template or req.system or req.context):
            raise BadRequest("raw mode does not support template, system, or context")
        if not 0 <= req.top_logprobs <= 20:
            raise BadRequest("top_logprobs must be between 0 and 20")
        keep_alive = parse_keep_alive(req.keep_alive)
        options = self.merged_options(info, req.options)
        if not req.prompt and not req.images and not req.suffix:
            if "completion" not in info.capabilities and keep_alive != 0:
                raise BadRequest(f'"{req.model}" does not support generate')
            reason = await self._load_or_unload(info, options, keep_alive, req.model)
            yield {"model": req.model, "created_at": now_rfc3339(), "response": "",
                   "done": True, "done_reason": reason}
            return
        if "completion" not in info.capabilities:
            raise BadRequest(f'"{req.model}" does not support generate')
        if req.suffix:
            self.check_capabilities(info, ["insert"])
        think = self._resolve_think(info, think, req.model)
        grammar = format_grammar(req.format)

        async with self._acquire(info, options, keep_alive) as runner:
            load_ns = time.perf_counter_ns() - started
            handle = runner.handle
            if req.raw:
                prompt = req.prompt
            else:
                messages: list[dict[str, Any]] = []
                system = req.system or info.model.system
                if system:
                    messages.append({"role": "system", "content": system})
                if not req.context:
                    messages.extend(info.model.messages)
                user: dict[str, Any] = {"role": "user", "content": req.prompt}
                if req.images:
                    user["images"] = req.images
                messages.append(user)
                if req.template:
                    from pollama.template.gotemplate_chat import render_go_generate

                    prompt = render_go_generate(req.template, messages, suffix=req.suffix,
                                                think=think)
                elif req.suffix:
                    from pollama.template.gotemplate_chat import render_go_generate

                    prompt = render_go_generate(info.template.go_template or "", messages,
                                                suffix=req.suffix, think=think)
                else:
                    prompt, _dropped = await self._fit(info, runner, messages, options,
                                                       req.truncate, None, think)
                if req.context:
                    prompt = await handle.detokenize(req.context) + prompt
            if req.debug_render_only:
                yield {"model": req.model, "created_at": now_rfc3339(),
                       "_debug_info": {"rendered_template": prompt,
                                       "image_count": len(req.images or [])}}
                return
            prompt = self._strip_bos(info, handle, prompt)
            completion = self._completion_request(prompt, options, grammar, req.shift,
                                                  req.logprobs, req.top_logprobs)
            async for chunk in handle.completion(completion):
                if chunk.get("done"):
                    final: dict[str, Any] = {"model": req.model, "created_at": now_rfc3339(),
                                             "response": "", "done": True,
                                             "done_reason": chunk.get("done_reason", "stop")}
                    if not req.raw:
                        final["context"] = chunk.get("tokens", [])
                    final.update(_metrics(chunk, started, load_ns))
                    yield final
                    return
                out: dict[str, Any] = {"model": req.model, "created_at": now_rfc3339(),
                                       "response": chunk.get("text", ""), "done": False}
                if chunk.get("logprobs"):
                    out["logprobs"] = chunk["logprobs"]
                yield out

    # -- chat ------------------------------------------------------------------------------

    async def chat(self, req: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        started = time.perf_counter_ns()
        info = self.model_info(req.model, required_text="model is required")
        think = validate_think(req.think)
        if not 0 <= req.top_logprobs <= 20:
            raise BadRequest("top_logprobs must be between 0 and 20")
        keep_alive = parse_keep_alive(req.keep_alive)
        options = self.merged_options(info, req.options)
        request_messages = [m.to_dict() for m in (req.messages or [])]
        if not request_messages:
            reason = await self._load_or_unload(info, options, keep_alive, req.model)
            yield {"model": req.model, "created_at": now_rfc3339(),
                   "message": {"role": "assistant", "content": ""}, "done": True,
                   "done_reason": reason}
            return
        if "completion" not in info.capabilities:
            raise BadRequest(f'"{req.model}" does not support chat')
        if req.tools:
            self.check_capabilities(info, ["tools"])
        think = self._resolve_think(info, think, req.model)
        grammar = format_grammar(req.format)
        messages = list(info.model.messages) + request_messages
        if info.model.system and request_messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": info.model.system})

        async with self._acquire(info, options, keep_alive) as runner:
            load_ns = time.perf_counter_ns() - started
            handle = runner.handle
            prompt, _dropped = await self._fit(info, runner, messages, options, req.truncate,
                                               req.tools, think)
            if req.debug_render_only:
                yield {"model": req.model, "created_at": now_rfc3339(),
                       "_debug_info": {"rendered_template": prompt, "image_count": sum(
                           len(m.get("images") or []) for m in messages)}}
                return
            prompt = self._strip_bos(info, handle, prompt)
            completion = self._completion_request(prompt, options, grammar, req.shift,
                                                  req.logprobs, req.top_logprobs)
            async for chunk in handle.completion(completion):
                if chunk.get("done"):
                    final: dict[str, Any] = {
                        "model": req.model, "created_at": now_rfc3339(),
                        "message": {"role": "assistant", "content": ""}, "done": True,
                        "done_reason": chunk.get("done_reason", "stop")}
                    final.update(_metrics(chunk, started, load_ns))
                    yield final
                    return
                out: dict[str, Any] = {"model": req.model, "created_at": now_rfc3339(),
                                       "message": {"role": "assistant",
                                                   "content": chunk.get("text", "")},
                                       "done": False}
                if chunk.get("logprobs"):
                    out["logprobs"] = chunk["logprobs"]
                yield out

    # -- helpers ---------------------------------------------------------------------------

    def _resolve_think(self, info: ModelInfo, think: bool | str | None,
                       model: str) -> bool | str | None:
        if "thinking" in info.capabilities:
            return True if think is None else think
        if think is not None and think is not False:
            raise BadRequest(f'"{model}" does not support thinking')
        return think

    async def _fit(self, info: ModelInfo, runner: Runner, messages: list[dict[str, Any]],
                   options: dict[str, Any], truncate: bool | None, tools: Any,
                   think: bool | str | None) -> tuple[str, int]:
        handle = runner.handle

        async def count(text: str) -> int:
            return len(await handle.tokenize(text, add_special=True, parse_special=True))

        return await fit_messages(info.template, messages, num_ctx=runner.spec.num_ctx,
                                  truncate=truncate is not False, count_tokens=count,
                                  tools=tools, think=think)

    @staticmethod
    def _strip_bos(info: ModelInfo, handle: Any, prompt: str) -> str:
        """Avoid a double BOS when the template prints it and the tokenizer adds it (PRM-04)."""
        bos = info.template.bos_token
        if bos and handle.info.get("add_bos") and prompt.startswith(bos):
            return prompt[len(bos):]
        return prompt

    @staticmethod
    def _completion_request(prompt: str, options: dict[str, Any], grammar: str | None,
                            shift: bool | None, logprobs: bool, top_logprobs: int
                            ) -> dict[str, Any]:
        return {"prompt": prompt, "options": options, "grammar": grammar,
                "shift": shift is not False, "logprobs": logprobs or top_logprobs > 0,
                "top_logprobs": top_logprobs}

    # -- /api/ps ---------------------------------------------------------------------------

    def running(self) -> list[dict[str, Any]]:
        out = []
        for runner in self.scheduler.running():
            expires = runner.expires_at
            if expires == float("inf"):  # Ollama: now + MaxInt64 ns, about 292 years
                expires = time.time() + 292 * 365 * 86400
            expires_text = datetime.fromtimestamp(expires).astimezone().isoformat()
            out.append({"name": runner.name, "model": runner.name, "size": runner.memory,
                        "digest": runner.digest, "details": runner.details,
                        "expires_at": expires_text, "size_vram": 0,
                        "context_length": runner.spec.num_ctx})
        return out
