"""Generate and chat: from a validated request to the stream of Ollama response objects.

Resolves the model, checks its capabilities, merges options (defaults ← model params ←
request), takes a runner from the scheduler, builds the prompt, and turns the runner's chunks
into `/api/generate` and `/api/chat` objects with Ollama's fields and timings: thinking split
out by `thinking.py` (GF-25), tool calls by `tools.py` (GF-20).

Constrained output (`grammar.py`) is enforced by the runner's sampler; on chat with thinking
a `format` only applies after the thinking (GF-11).

Images (GEN-11, MSG-01) need the `vision` capability (a projector); each is checked and made
readable by `images.py`, gets an `[img-N]` tag in its message (`template/prompt.py`), and the
runner gets the prompt with its media marker in place of each tag and the images in the same
order: only those of the messages kept after truncation, each counted at its real size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pollama.config import Config
from pollama.engine.cpu_probe import RepackDecision
from pollama.engine.errors import RequestRejected
from pollama.errors import (
    BadRequest,
    DamagedModel,
    InvalidModelName,
    ModelNotFound,
    NotSupported,
    PollamaError,
    SpeculativeDecodingUnsupported,
)
from pollama.formats import options as opts
from pollama.go import MAX_DURATION, go_time
from pollama.inference import images as image_files
from pollama.inference.embed import embed_inputs
from pollama.inference.grammar import request_grammar, split_grammar
from pollama.inference.observer import InferenceObserver
from pollama.inference.requests import ChatRequest, EmbedRequest, GenerateRequest
from pollama.inference.scheduler import (
    LoadSpec,
    RunnerLike,
    RunnerRef,
    Scheduler,
    StartRunner,
    estimate_kv_bytes,
    parse_keep_alive,
)
from pollama.inference.thinking import ThinkingParser, strip_thinking
from pollama.inference.tool_choice import resolve_tool_choice
from pollama.inference.tools import ToolCallParser
from pollama.models.details import model_details
from pollama.models.info import ModelInfo, build
from pollama.names import parse
from pollama.store import Store
from pollama.template.prompt import Fitted, fit_messages, media_prompt, tag_images

log = logging.getLogger("pollama.inference.service")

THINK_LEVELS = ("high", "medium", "low", "max")
# ggml's GGML_MAX_N_THREADS: a runner asked for more stalls for minutes or dies (SIGSEGV)
MAX_THREADS = 512


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


# The done chunk names the stop string that ended an answer under this key; the native API
# drops it (Ollama has no such field), the Anthropic dialect reports it as `stop_sequence`.
STOP_SEQUENCE = "stop_sequence"

DEFAULT_TEMPLATE = "{{ .Prompt }}"  # Ollama's template for models without one (TPL-03)


class Output:
    """One answer's raw text → (thinking, content, tool calls), split as it streams."""

    def __init__(self, thinking: ThinkingParser | None, tools: ToolCallParser | None) -> None:
        self.thinking = thinking
        self.tools = tools
        self._thought: list[str] = []

    @property
    def thought(self) -> str:
        """All the thinking seen so far."""
        return "".join(self._thought)

    def feed_thinking(self, text: str) -> tuple[str, str]:
        """Split `text` into thinking and content, without looking for tool calls."""
        if self.thinking is None:
            return "", text
        thinking, content = self.thinking.add(text)
        self._thought.append(thinking)
        return thinking, content

    def feed(self, text: str) -> tuple[str, str, list[dict[str, Any]]]:
        thinking, content = self.feed_thinking(text)
        calls: list[dict[str, Any]] = []
        if self.tools is not None and content:
            calls, content = self.tools.add(content)
        return thinking, content, calls

    def flush(self) -> tuple[str, str, list[dict[str, Any]]]:
        """The answer ended: what the parsers still hold."""
        thinking, content = self.thinking.flush() if self.thinking else ("", "")
        calls: list[dict[str, Any]] = []
        if self.tools is not None:
            if content:
                calls, content = self.tools.add(content)
            content += self.tools.flush()
        return thinking, content, calls


def drop_old_thinking(info: ModelInfo, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For qwen3 and deepseek-r1 models, answers before the last user message lose their
    `<think>` blocks (CHAT-04): clients that keep whole answers in the history would otherwise
    send the old reasoning back into the prompt."""
    if info.model.config.get("model_family") != "qwen3" and \
            info.model.stored.name.model != "deepseek-r1":
        return messages
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return [{**m, "content": strip_thinking(m.get("content") or "")}
            if m.get("role") == "assistant" and i < last_user else m
            for i, m in enumerate(messages)]


def _metrics(done: dict[str, Any], started: float, load_ns: int) -> dict[str, Any]:
    out = {"total_duration": time.perf_counter_ns() - int(started), "load_duration": load_ns,
           "prompt_eval_count": int(done.get("prompt_eval_count") or 0),
           "prompt_eval_duration": int(done.get("prompt_eval_duration") or 0),
           "eval_count": int(done.get("eval_count") or 0),
           "eval_duration": int(done.get("eval_duration") or 0)}
    # Ollama omits zero-valued metrics (omitempty).
    return {k: v for k, v in out.items() if v}


@dataclass
class _ChatPlan:
    """A checked chat request: what its run needs; no `messages` means load or unload."""

    info: ModelInfo
    keep_alive: float | None
    options: dict[str, Any]
    raw_grammar: str | None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    max_calls: int | None = None
    think: bool | str | None = None
    grammar: str | None = None


class Inference:
    """The server's generate/chat service over one scheduler."""

    def __init__(self, config: Config, store: Store, *,
                 start_runner: StartRunner | None = None) -> None:
        self.config = config
        self.store = store
        self.scheduler = Scheduler(config, start_runner or self._start_runner)
        self.observer = InferenceObserver()  # the server's metrics replace it
        self.repack = RepackDecision(config.repack, config.home)

    async def _start_runner(self, spec: LoadSpec) -> RunnerLike:
        from pollama.engine.handle import RunnerHandle

        config = self.config
        verdict = await self.repack.verdict()
        log_file = None
        handle = await RunnerHandle.start(
            spec.model_path, num_ctx=spec.num_ctx, num_parallel=spec.num_parallel,
            num_batch=spec.num_batch, num_thread=spec.num_thread, use_mmap=spec.use_mmap,
            num_gpu=spec.num_gpu, embedding=spec.embedding, adapters=spec.adapters,
            projector=spec.projector, log_file=log_file,
            load_timeout=min(config.load_timeout, 1e9), verbose=config.debug > 0,
            repack=verdict.repack, flash_attention=config.flash_attention_mode,
            kv_cache_type=config.kv_cache_type or "f16",
            state_dir=config.kv_cache_dir if config.kv_cache_size > 0 else None,
            state_limit=config.kv_cache_size,
            rpc_servers=config.rpc_servers, rpc_split=config.rpc_split)
        info = handle.info
        for endpoint, reason in (info.get("rpc_skipped") or {}).items():
            log.warning("RPC worker %s left out of %s: %s", endpoint, spec.model_path, reason)
        if info.get("devices"):
            log.info("layers of %s: %s", spec.model_path, ", ".join(
                f"{d['name']} {d['layers']}" for d in info["devices"]))
        log.info("llama runner started: model=%s pid=%d num_ctx=%s parallel=%s threads=%s "
                 "flash_attention=%s kv_cache_type=%s repack=%s kv_bytes=%s", spec.model_path,
                 handle.pid, info.get("num_ctx"), info.get("num_parallel"),
                 info.get("num_thread"), info.get("flash_attention"), info.get("kv_cache_type"),
                 "on" if info.get("repack") else "off", info.get("kv_bytes"))
        return handle

    # -- model and options -----------------------------------------------------------------

    def model_info(self, name: str, *, required_text: str | None = None) -> ModelInfo:
        if not name:
            if required_text:
                raise BadRequest(required_text)
            raise ModelNotFound(name)
        if not parse(name).is_valid:
            raise InvalidModelName()
        info = build(self.store, self.config, name)
        if info.damage:  # a clear word, rather than "does not support generate"
            raise DamagedModel(f'model "{name}" cannot be loaded: {info.damage}; remove it '
                               "and pull or create it again")
        return info

    def merged_options(self, info: ModelInfo, request_options: dict[str, Any] | None
                       ) -> dict[str, Any]:
        merged = dict(info.model.params)
        merged.update(opts.from_map(request_options or {}))
        if merged.get("draft_num_predict"):  # 0 = off is fine: nothing to ignore
            raise SpeculativeDecodingUnsupported()
        return merged

    def load_spec(self, info: ModelInfo, options: dict[str, Any]) -> tuple[LoadSpec, int]:
        """How a model's runner starts. A generative model has one runner for every request
        (it embeds in free slots); an embedding-only model (a `pooling_type`, no completion)
        gets a dedicated embedding runner, one slot, num_batch min(2048, num_ctx) unless set
        (EMB-05)."""
        if info.model.model_path is None:
            raise BadRequest(f"{info.model.stored.name.display_long()} has no model weights")
        kv = info.gguf.kv if info.gguf else {}
        arch = info.gguf.architecture if info.gguf else ""
        num_ctx = self.scheduler.default_num_ctx(info.n_ctx_train, options.get("num_ctx"))
        if "vision" in info.capabilities:  # room for pictures: at least 2048 (SCH-13)
            num_ctx = max(num_ctx, min(2048, info.n_ctx_train or 2048))
        kv_slot = estimate_kv_bytes(kv, arch, num_ctx, self.config.kv_cache_type or "f16")
        file_size = info.model.model_path.stat().st_size
        embedding = "embedding" in info.capabilities and "completion" not in info.capabilities
        num_batch = options.get("num_batch")
        if num_batch is None and embedding:
            num_batch = min(2048, num_ctx)
        existing = next((r for r in self.scheduler.runners.values()
                         if r.spec.model_path == str(info.model.model_path)), None)
        parallel = (existing.spec.num_parallel if existing else
                    self.scheduler.num_parallel(file_size, kv_slot, embedding))
        num_thread = int(options.get("num_thread") or 0)
        if num_thread > MAX_THREADS:
            raise BadRequest(f"num_thread must be at most {MAX_THREADS}")
        # As in Ollama, a batch of 0 or less means the default. llama.cpp aborts on a batch
        # smaller than the slots and uses no more than the context; a larger one only made the
        # runner allocate (and stall on) buffers nothing reads.
        batch = int(num_batch) if num_batch and int(num_batch) > 0 else 512
        batch = max(parallel, min(batch, num_ctx * parallel))
        spec = LoadSpec(
            model_path=str(info.model.model_path),
            adapters=tuple(str(p) for p in info.model.adapter_paths),
            projector=str(info.model.projector_paths[0]) if info.model.projector_paths else None,
            num_ctx=num_ctx, num_parallel=parallel,
            num_batch=batch,
            num_thread=max(num_thread, 0),
            num_gpu=int(options.get("num_gpu", -1) if options.get("num_gpu") is not None else -1),
            use_mmap=bool(options.get("use_mmap", True)),
            embedding=embedding,
        )
        return spec, file_size + kv_slot * parallel

    def _acquire(self, info: ModelInfo, options: dict[str, Any],
                 keep_alive: float | None) -> Any:
        spec, estimate = self.load_spec(info, options)
        stored = info.model.stored
        details = model_details(info.model.config)  # /api/ps shows no parent_model (Ollama)
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
                              keep_alive: float | None) -> str:
        if keep_alive == 0:
            self.scheduler.expire(str(info.model.model_path))
            return "unload"
        async with self._acquire(info, options, keep_alive):
            pass
        return "load"

    # -- tokenize / detokenize (beyond Ollama: ollama/ollama#3582) --------------------------

    async def tokenize(self, model: str, text: str, *, keep_alive: Any = None,
                       options: dict[str, Any] | None = None) -> list[int]:
        """`text` → the model's token ids, special tokens parsed, BOS added as a prompt gets it."""
        info = self.model_info(model, required_text="model is required")
        merged = self.merged_options(info, options)
        async with self._acquire(info, merged, parse_keep_alive(keep_alive)) as runner:
            return list(await runner.started().tokenize(text, add_special=True,
                                                        parse_special=True))

    async def detokenize(self, model: str, tokens: list[int], *, keep_alive: Any = None,
                         options: dict[str, Any] | None = None) -> str:
        """Token ids → text, special tokens written out."""
        info = self.model_info(model, required_text="model is required")
        merged = self.merged_options(info, options)
        async with self._acquire(info, merged, parse_keep_alive(keep_alive)) as runner:
            handle = runner.started()
            n_vocab = int(handle.info.get("n_vocab") or 0)
            bad = [t for t in tokens if not 0 <= t < n_vocab]
            if bad:
                raise BadRequest(f"token id {bad[0]} is out of range: the vocabulary of "
                                 f"{model} has {n_vocab} tokens")
            return await handle.detokenize(tokens)

    # -- generate --------------------------------------------------------------------------

    async def generate(self, req: GenerateRequest) -> AsyncGenerator[dict[str, Any], None]:
        started = time.perf_counter_ns()
        info = self.model_info(req.model)
        think = validate_think(req.think)
        if req.raw and (req.template or req.system or req.context):
            raise BadRequest("raw mode does not support template, system, or context")
        if not 0 <= req.top_logprobs <= 20:
            raise BadRequest("top_logprobs must be between 0 and 20")
        if req.context and any(t < 0 for t in req.context):
            # an image in an earlier answer's context is its negative id: no text gives it back
            raise BadRequest("context holds the images of an earlier exchange, which cannot be "
                             "sent back as tokens: send the conversation with its images to "
                             "/api/chat instead")
        keep_alive = parse_keep_alive(req.keep_alive)
        request_options, raw_grammar = split_grammar(req.options, req.grammar)
        options = self.merged_options(info, request_options)
        if req.suffix and keep_alive != 0:
            self.check_capabilities(info, ["insert"])
        if not req.prompt and not req.images:
            if "completion" not in info.capabilities and keep_alive != 0:
                raise BadRequest(f'"{req.model}" does not support generate')
            reason = await self._load_or_unload(info, options, keep_alive)
            yield {"model": req.model, "created_at": now_rfc3339(), "response": "",
                   "done": True, "done_reason": reason}
            return
        if "completion" not in info.capabilities:
            raise BadRequest(f'"{req.model}" does not support generate')
        if req.images and not req.debug_render_only:
            self.check_capabilities(info, ["vision"])
        images = await self._prepare_images(req.images, "image {n}")
        think = self._resolve_think(info, think, req.model)
        grammar = request_grammar(req.format, raw_grammar)

        async with self._acquire(info, options, keep_alive) as runner:
            load_ns = time.perf_counter_ns() - started
            handle = runner.started()
            if req.raw:
                tagged, images = tag_images([{"content": req.prompt, "images": images}])
                prompt = str(tagged[0]["content"])
            else:
                prompt, images = await self._generate_prompt(info, runner, req, images, options,
                                                             think)
            # a deprecated `context`: the earlier exchange's text goes before the new turn
            earlier = await handle.detokenize(req.context) if req.context and not req.raw \
                else ""
            if req.debug_render_only:
                yield {"model": req.model, "created_at": now_rfc3339(),
                       "_debug_info": {"rendered_template": earlier + prompt,
                                       "image_count": len(images)}}
                return
            out = Output(self._thinking_parser(info, think, earlier + prompt), None)
            prompt = self._runner_prompt(info, handle, prompt, images, earlier=earlier)
            completion = self._completion_request(prompt, options, grammar, req.shift,
                                                  req.logprobs, req.top_logprobs,
                                                  stream=req.stream is not False,
                                                  images=images)
            stream = self._completion(handle, completion, raw_grammar, model=req.model,
                                          started=started)
            try:
                async for chunk in stream:
                    done = bool(chunk.get("done"))
                    thinking, content, _calls = out.flush() if done else out.feed(chunk["text"])
                    if not done and not (thinking or content or chunk.get("logprobs")):
                        continue
                    res: dict[str, Any] = {"model": req.model, "created_at": now_rfc3339(),
                                           "response": content}
                    if thinking:
                        res["thinking"] = thinking
                    res["done"] = done
                    if done:
                        res["done_reason"] = chunk.get("done_reason", "stop")
                        if not req.raw:
                            res["context"] = chunk.get("tokens", [])
                        res.update(_metrics(chunk, started, load_ns))
                        if chunk.get("stop_sequence") is not None:
                            res[STOP_SEQUENCE] = chunk["stop_sequence"]
                    elif chunk.get("logprobs"):
                        res["logprobs"] = chunk["logprobs"]
                    yield res
                    if done:
                        return
            finally:
                await stream.aclose()  # cancels the runner's request when left early

    async def _generate_prompt(self, info: ModelInfo, runner: RunnerRef, req: GenerateRequest,
                               images: list[str], options: dict[str, Any],
                               think: bool | str | None) -> tuple[str, list[str]]:
        """The templated prompt of a generate request (spec GEN-03…GEN-06), image tags in it,
        and its images in the order of their tags; a `context`'s text is not in it yet."""
        from pollama.template.ollama import render_go_generate

        messages: list[dict[str, Any]] = []
        system = req.system or info.model.system
        if system:
            messages.append({"role": "system", "content": system})
        if not req.context:
            messages.extend(info.model.messages)
        user: dict[str, Any] = {"role": "user", "content": req.prompt}
        if images:
            user["images"] = images
        messages.append(user)
        if req.template or req.suffix:
            # direct execution: the request's template, or the model's for fill-in-middle
            source = req.template or info.template.go_template or DEFAULT_TEMPLATE
            tagged, kept = tag_images(messages)
            # a request's own template may run up to its execution budget: off the event loop
            rendered = await asyncio.to_thread(render_go_generate, source, tagged,
                                               suffix=req.suffix, think=think)
            return rendered, kept
        fitted = await self._fit(info, runner, messages, options, req.truncate, None, think)
        return fitted.prompt, fitted.images

    # -- chat ------------------------------------------------------------------------------

    async def _chat_plan(self, req: ChatRequest, *, check_vision: bool) -> _ChatPlan:
        """A chat request checked, and what running it needs before a runner is taken."""
        info = self.model_info(req.model, required_text="model is required")
        think = validate_think(req.think)
        if not 0 <= req.top_logprobs <= 20:
            raise BadRequest("top_logprobs must be between 0 and 20")
        keep_alive = parse_keep_alive(req.keep_alive)
        request_options, raw_grammar = split_grammar(req.options, req.grammar)
        options = self.merged_options(info, request_options)
        request_messages = [m.to_dict() for m in (req.messages or [])]
        plan = _ChatPlan(info, keep_alive, options, raw_grammar)
        if not request_messages:
            return plan
        if "completion" not in info.capabilities:
            raise BadRequest(f'"{req.model}" does not support chat')
        choice = resolve_tool_choice(req.tool_choice, req.parallel_tool_calls, req.tools)
        plan.tools = req.tools if choice.mode != "none" else None
        plan.max_calls = choice.max_calls
        if plan.tools:
            self.check_capabilities(info, ["tools"])
        if check_vision and any(m.get("images") for m in request_messages):
            self.check_capabilities(info, ["vision"])
        for i, m in enumerate(request_messages, 1):
            if m.get("images"):
                m["images"] = await self._prepare_images(m["images"],
                                                         f"image {{n}} of message {i}")
        plan.think = self._resolve_think(info, think, req.model)
        plan.grammar = request_grammar(req.format, raw_grammar)
        if plan.tools and choice.forced:
            if plan.grammar is not None:
                raise BadRequest("a required tool_choice cannot be combined with format or "
                                 "grammar")
            plan.grammar = choice.grammar(plan.tools, info.template.tool_tag())
        messages = drop_old_thinking(info, list(info.model.messages) + request_messages)
        if info.model.system and request_messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": info.model.system})
        plan.messages = messages
        return plan

    async def chat_prompt_tokens(self, req: ChatRequest) -> int:
        """How many tokens the prompt of `req` is when the runner evaluates it (images at
        their real size, after truncation): the Anthropic dialect's `count_tokens`."""
        plan = await self._chat_plan(req, check_vision=True)
        if not plan.messages:
            raise BadRequest("messages are required")
        async with self._acquire(plan.info, plan.options, plan.keep_alive) as runner:
            handle = runner.started()
            fitted = await self._fit(plan.info, runner, plan.messages, plan.options,
                                     req.truncate, plan.tools, plan.think)
            prompt = self._runner_prompt(plan.info, handle, fitted.prompt, fitted.images)
            return len(await self._tokenize(handle, prompt, fitted.images))

    async def chat(self, req: ChatRequest) -> AsyncGenerator[dict[str, Any], None]:
        started = time.perf_counter_ns()
        plan = await self._chat_plan(req, check_vision=not req.debug_render_only)
        info, options, keep_alive = plan.info, plan.options, plan.keep_alive
        think, tools, grammar, raw_grammar = plan.think, plan.tools, plan.grammar, \
            plan.raw_grammar
        messages = plan.messages
        if not messages:
            reason = await self._load_or_unload(info, options, keep_alive)
            yield {"model": req.model, "created_at": now_rfc3339(),
                   "message": {"role": "assistant", "content": ""}, "done": True,
                   "done_reason": reason}
            return

        async with self._acquire(info, options, keep_alive) as runner:
            load_ns = time.perf_counter_ns() - started
            handle = runner.started()
            fitted = await self._fit(info, runner, messages, options, req.truncate, tools,
                                     think)
            prompt = fitted.prompt
            if req.debug_render_only:
                yield {"model": req.model, "created_at": now_rfc3339(),
                       "_debug_info": {"rendered_template": prompt,
                                       "image_count": len(fitted.images)}}
                return
            thinking_parser = self._thinking_parser(info, think, prompt)
            tool_parser = (ToolCallParser(info.template.tool_tag(), tools, plan.max_calls)
                           if tools else None)
            out = Output(thinking_parser, tool_parser)
            # GF-11: with thinking, `format` only applies once the thinking is over: run
            # unconstrained until content starts, then render the thinking back and go again.
            # A raw `grammar` constrains the whole output, thinking tags included.
            deferred = grammar is not None and raw_grammar is None and \
                thinking_parser is not None
            while True:
                completion = self._completion_request(
                    self._runner_prompt(info, handle, prompt, fitted.images), options,
                    None if deferred else grammar, req.shift, req.logprobs, req.top_logprobs,
                    stream=req.stream is not False or deferred, images=fitted.images)
                restart = False
                stream = self._completion(handle, completion, raw_grammar,
                                          model=req.model, started=started)
                try:
                    async for chunk in stream:
                        done = bool(chunk.get("done"))
                        if done:
                            thinking, content, calls = out.flush()
                        elif deferred:
                            thinking, content = out.feed_thinking(chunk["text"])
                            if content:
                                # drop the unconstrained content; constrained decoding redoes it
                                restart, content, calls = True, "", []
                            else:
                                calls = []
                        else:
                            thinking, content, calls = out.feed(chunk["text"])
                        if not (done or restart or thinking or content or calls or
                                chunk.get("logprobs")):
                            continue
                        message: dict[str, Any] = {"role": "assistant", "content": content}
                        if thinking:
                            message["thinking"] = thinking
                        if calls:
                            message["tool_calls"] = calls
                        res: dict[str, Any] = {"model": req.model,
                                               "created_at": now_rfc3339(),
                                               "message": message, "done": done}
                        if done:
                            res["done_reason"] = chunk.get("done_reason", "stop")
                            res.update(_metrics(chunk, started, load_ns))
                            if chunk.get("stop_sequence") is not None:
                                res[STOP_SEQUENCE] = chunk["stop_sequence"]
                        elif chunk.get("logprobs"):
                            res["logprobs"] = chunk["logprobs"]
                        yield res
                        if done or restart:
                            break
                finally:
                    await stream.aclose()  # cancels the runner's request when left early
                if not restart:
                    return
                deferred = False
                if out.thought:
                    messages = [*messages, {"role": "assistant", "content": "",
                                            "thinking": out.thought}]
                    fitted = await self._fit(info, runner, messages, options,
                                             req.truncate, tools, think)
                    prompt = fitted.prompt

    # -- helpers ---------------------------------------------------------------------------

    def _resolve_think(self, info: ModelInfo, think: bool | str | None,
                       model: str) -> bool | str | None:
        if "thinking" in info.capabilities:
            return True if think is None else think
        if think is not None and think is not False:
            raise BadRequest(f'"{model}" does not support thinking')
        return think

    @staticmethod
    def _thinking_parser(info: ModelInfo, think: bool | str | None,
                         prompt: str) -> ThinkingParser | None:
        """A parser splitting out the thinking when it is on and the template has tags."""
        if not think or "thinking" not in info.capabilities:
            return None
        tags = info.template.thinking_tags()
        if tags is None:
            return None
        parser = ThinkingParser(*tags)
        parser.prefill(prompt)
        return parser

    async def _completion(self, handle: RunnerLike, completion: dict[str, Any],
                          raw_grammar: str | None, *, model: str, started: int
                          ) -> AsyncGenerator[dict[str, Any], None]:
        """The runner's chunks; a grammar the runner refuses is the user's 400. The observer
        hears of the first text (time since the request came) and of the end."""
        stream = handle.completion(completion)
        first = True
        try:
            async for chunk in stream:
                if first and chunk.get("text"):
                    first = False
                    self.observer.first_token(model, (time.perf_counter_ns() - started) / 1e9)
                if chunk.get("done"):
                    self.observer.finished(model, chunk)
                yield chunk
        except RequestRejected as err:
            if raw_grammar and "grammar" in str(err):
                raise BadRequest(f"invalid grammar: {err}") from None
            raise
        finally:
            await stream.aclose()

    async def _fit(self, info: ModelInfo, runner: RunnerRef, messages: list[dict[str, Any]],
                   options: dict[str, Any], truncate: bool | None, tools: Any,
                   think: bool | str | None) -> Fitted:
        handle = runner.started()

        async def count(text: str, images: list[str]) -> int:
            if images and "vision" in info.capabilities:
                text = self._runner_prompt(info, handle, text, images)
                return len(await self._tokenize(handle, text, images))
            # a model without a projector only renders images (_debug_render_only)
            return len(await self._tokenize(handle, self._strip_bos(info, handle, text), []))

        return await fit_messages(info.template, messages, num_ctx=runner.spec.num_ctx,
                                  truncate=truncate is not False, count_tokens=count,
                                  tools=tools, think=think)

    @staticmethod
    async def _tokenize(handle: RunnerLike, prompt: str, images: list[str]) -> list[int]:
        """The tokens the runner evaluates for `prompt` (BOS as it adds it), images included."""
        if images:
            return await handle.tokenize(prompt, add_special=True, parse_special=True,
                                         images=images)
        return await handle.tokenize(prompt, add_special=True, parse_special=True)

    @staticmethod
    async def _prepare_images(images: Sequence[str] | None, label: str) -> list[str]:
        """Images checked and made readable by the runner (`images.py`), off the event loop."""
        if not images:
            return []
        return await asyncio.to_thread(image_files.prepare, images, label)

    @classmethod
    def _runner_prompt(cls, info: ModelInfo, handle: RunnerLike, prompt: str,
                       images: list[str], *, earlier: str = "") -> str:
        """The text the runner gets: the runner's media marker for each image tag, after
        `earlier` (a `context`'s text), a printed BOS dropped when the tokenizer adds one."""
        if images:
            marker = handle.info.get("media_marker")
            if not handle.info.get("vision") or not isinstance(marker, str) or not marker:
                raise PollamaError(f"the runner of {info.model.stored.name.display_long()} "
                                   "was started without its projector: it cannot take images")
            try:
                prompt = media_prompt(prompt, len(images), marker)
            except ValueError as err:
                raise BadRequest(str(err)) from None
            if (earlier + prompt).count(marker) != len(images):
                raise BadRequest(f"the prompt contains the text {marker}, which marks an "
                                 "image for this model: remove it from the messages")
        return cls._strip_bos(info, handle, earlier + prompt)

    @staticmethod
    def _strip_bos(info: ModelInfo, handle: RunnerLike, prompt: str) -> str:
        """Avoid a double BOS when the template prints it and the tokenizer adds it (PRM-04)."""
        bos = info.template.bos_token
        if bos and handle.info.get("add_bos") and prompt.startswith(bos):
            return prompt[len(bos):]
        return prompt

    @staticmethod
    def _completion_request(prompt: str, options: dict[str, Any], grammar: str | None,
                            shift: bool | None, logprobs: bool, top_logprobs: int,
                            stream: bool = True,
                            images: list[str] | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"prompt": prompt, "options": options, "grammar": grammar,
                                   "shift": shift is not False,
                                   "logprobs": logprobs or top_logprobs > 0,
                                   "top_logprobs": top_logprobs, "stream": stream}
        if images:
            request["images"] = images  # base64, one per media marker in the prompt, in order
        return request

    # -- embeddings ------------------------------------------------------------------------

    async def embed(self, req: EmbedRequest) -> dict[str, Any]:
        """`/api/embed` (and the OpenAI dialect's `/v1/embeddings`): Ollama's EmbedResponse."""
        return await embed_inputs(self, req)

    # -- /api/ps ---------------------------------------------------------------------------

    def running(self) -> list[dict[str, Any]]:
        out = []
        for runner in self.scheduler.running():
            # Ollama: forever is now + MaxInt64 ns (about 292 years), and nothing lasts longer
            expires = min(runner.expires_at, time.time() + MAX_DURATION)
            expires_text = go_time(datetime.fromtimestamp(expires))
            entry = {"name": runner.name, "model": runner.name, "size": runner.memory,
                     "digest": runner.digest, "details": runner.details,
                     "expires_at": expires_text, "size_vram": 0,  # CPU only: no offload
                     "context_length": runner.spec.num_ctx}
            if self.config.rpc_servers:  # beyond Ollama: where the layers live
                entry["devices"] = list(runner.started().info.get("devices") or [])
            out.append(entry)
        return out
