"""The runner process: one loaded model, `num_parallel` slots, a continuous-batching loop.

    python -m pollama.engine.runner --model PATH [--ctx-size N] [--parallel N] [--batch-size N]
        [--threads N] [--no-mmap] [--n-gpu-layers N] [--embedding] [--lora PATH]... [--verbose]
        [--no-repack] [--flash-attn on|off|auto] [--cache-type TYPE]
        [--state-dir DIR] [--state-limit BYTES] [--rpc-servers HOST:PORT,...] [--rpc-split N,...]

It speaks the protocol in `protocol.py` on stdin/stdout (stderr is its log). The main thread
runs the loop and writes each step's text straight to stdout (`protocol.Outbox` queues and
merges chunks only while the server is slow to read); a reader thread turns stdin lines into
an inbox, and answers tokenize, detokenize and status itself (they only read the vocabulary).

Each step of the loop is one `llama_decode` over a batch holding every generating slot's next
token plus chunks of pending prompts (at most `num_batch` tokens in all), then one C sampler
chain call per slot that has logits. A slot is one sequence id with its own `num_ctx` window;
it remembers the tokens in its KV cells, so a request that shares a prefix with a free slot's
cache only evaluates the rest.

With `--state-dir`, slots' KV state also outlives the process (`kv_state.py`): a slot's cells
are saved when the runner goes idle after a completion, when the slot is about to be reused for
another prompt, and on shutdown; a request whose prompt extends a saved prefix longer than any
free slot's loads it into a slot and evaluates only the rest.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import ctypes
import itertools
import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import llama_cpp as C

from pollama.engine import protocol
from pollama.engine.kv_state import LOAD_MIN_GAIN, MIN_TOKENS, Entry, StateStore, make_key
from pollama.engine.model import (
    FLASH_ATTENTION_TYPES,
    KV_CACHE_GGML_TYPES,
    LoadedModel,
    LoadOptions,
)
from pollama.engine.protocol import Outbox
from pollama.engine.rpc import keep_alive_connections
from pollama.engine.sampling import GenerationParams, build_chain, generation_params
from pollama.engine.text import TextStream
from pollama.engine.vision import (
    NO_PROJECTOR,
    Done,
    EmbeddingCache,
    ImageError,
    ImageSpan,
    Vision,
    VisionPrompt,
    VisionWorker,
    decode_images,
    default_marker,
)

MAX_REPEATS = 30  # identical tokens in a row (after the first) that end an answer
# A loop of a short sequence ("keyfile.keyfile.keyfile..."): the last LOOP_WINDOW tokens repeat
# one block of 2..LOOP_MAX_PERIOD tokens (so at least 4 times), checked every LOOP_CHECK tokens.
LOOP_WINDOW, LOOP_MAX_PERIOD, LOOP_CHECK = 256, 64, 16
# On shutdown, slots not yet saved are saved within this many seconds (the handle kills a
# runner 5 s after asking it to stop).
SAVE_ON_EXIT_S = 3.5
ALL_FRESH = sys.maxsize

_now = time.perf_counter_ns


class Request:
    """One completion: its prompt, sampler chain, output so far and timings."""

    __slots__ = ("arrival", "cached", "chain", "eval_ns", "fill_context", "generated", "held",
                 "held_logprobs", "id", "images", "last_piece", "logprobs", "next_image",
                 "num_keep", "num_predict", "prompt", "prompt_ns", "repeats", "sampler", "shift",
                 "stream", "top_logprobs", "truncated", "vision")

    def __init__(self, rid: Any, prompt: list[int], params: GenerationParams, chain: Any,
                 truncated: bool, stream: bool | None = None,
                 vision: VisionPrompt | None = None, images: list[ImageSpan] | None = None,
                 ) -> None:
        self.id = rid
        self.arrival = 0  # the runner's count of requests when this one came (serving order)
        self.prompt = prompt
        self.vision = vision  # owns the image chunks (freed by close)
        self.images = images or []  # in prompt order, after truncation
        self.next_image = 0  # the first image not yet decoded into the slot
        self.chain = chain
        self.sampler = chain.sampler
        self.stream = TextStream(params.stop)
        self.num_predict = params.num_predict
        self.num_keep = params.num_keep
        self.shift = params.shift
        self.fill_context = params.fill_context
        self.logprobs = params.logprobs
        self.top_logprobs = params.top_logprobs
        self.truncated = truncated
        # "stream": false: the text is held and sent once, with the end, so the server does
        # not handle a message per token while the model computes.
        self.held: list[str] | None = [] if stream is False else None
        self.held_logprobs: list[dict[str, Any]] = []
        self.generated: list[int] = []
        self.last_piece = b""  # the last token's bytes, without surrounding whitespace
        self.repeats = 0  # how many tokens in a row repeated it
        self.cached = 0
        self.prompt_ns = 0
        self.eval_ns = 0

    def close(self) -> None:
        """Free the sampler chain and the image chunks (once the request is done)."""
        self.chain.close()
        if self.vision is not None:
            self.vision.close()


class EmbedJob:
    """One embed request on a generative runner: its inputs' tokens and the vectors so far."""

    __slots__ = ("arrival", "id", "inputs", "n_tokens", "vectors")

    def __init__(self, rid: Any, inputs: list[list[int]]) -> None:
        self.id = rid
        self.arrival = 0  # as Request.arrival
        self.inputs = inputs
        self.vectors: list[list[float] | None] = [None] * len(inputs)
        self.n_tokens = sum(len(t) for t in inputs)


class Slot:
    """One sequence id of the context and the tokens its KV cells hold (position = index)."""

    __slots__ = ("dirty", "fresh", "i_batch", "last_used", "next_token", "pending", "request",
                 "seq", "tokens")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.tokens: list[int] = []
        self.dirty = False  # its tokens changed since they were saved (or loaded)
        # The cells of tokens[:fresh] are what evaluating those tokens gives; a context shift
        # moves cells, and a slot holding moved cells is never saved.
        self.fresh = ALL_FRESH
        self.request: Request | None = None
        self.pending: list[int] = []  # prompt tokens still to evaluate
        self.next_token = -1  # sampled, to be decoded in the next step
        self.i_batch = -1  # row of this slot's logits in the current batch
        self.last_used = 0


def _seq_of(slot: Slot) -> int:
    return slot.seq


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists (slice compares run in C)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def context_shift_prompt_limit(num_ctx: int, num_keep: int) -> int:
    """Ollama's contextShiftPromptLimit: keep num_keep, free about half of the rest."""
    if num_ctx <= 1:
        return 0
    num_keep = max(0, min(num_keep, num_ctx - 1))
    return num_ctx - max((num_ctx - num_keep) // 2, 1)


class PromptTooLongError(ValueError):
    """The prompt does not fit the window and context shift is off."""


class Runner:
    """The slots and the batch loop of one loaded model."""

    def __init__(self, model: LoadedModel, outbox: Outbox, vision: Vision | None = None,
                 states: StateStore | None = None) -> None:
        self.model = model
        self.outbox = outbox
        self.states = states  # saved KV state on disk, or None
        # Messages for the loop: protocol messages from the stdin reader, and `_Internal`
        # results (an image prepared or encoded) from the vision worker.
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.vision = vision
        self.worker = VisionWorker(vision, self.inbox.put) if vision is not None else None
        self.image_cache = EmbeddingCache()
        self.encoding: dict[str, int] = {}  # image hash → encodes in flight for it
        # Completions whose images the worker is preparing: id → (message, params).
        self.preparing: dict[Any, tuple[dict[str, Any], GenerationParams]] = {}
        # Requests whose slot waits for a saved KV state being read off the loop: id → (the
        # slot, reserved: its `request` is set, it is not active; the request).
        self.loading: dict[Any, tuple[Slot, Request]] = {}
        self.num_ctx = model.num_ctx
        self.n_batch = model.n_batch
        self.slots = [Slot(i) for i in range(model.num_parallel)]
        self.active: list[Slot] = []  # slots serving a request, by sequence id
        self.queue: collections.deque[Request] = collections.deque()
        # Embed requests waiting for free slots: (job, index of its next input to embed).
        self.embeds: collections.deque[tuple[EmbedJob, int]] = collections.deque()
        self.running = True
        self._arrivals = itertools.count(1)  # numbers requests and embed jobs as they come
        self._clock = 0
        self._prompt_cap = self.n_batch
        self._emit: list[tuple[Any, str, list[dict[str, Any]] | None]] = []  # this step's text
        # Hot-loop handles, fetched once: each ctypes field access builds a new object.
        self._ctx = model.ctx
        self._batch = batch = model.batch.batch
        self._token, self._pos, self._logits = batch.token, batch.pos, batch.logits
        self._seq_rows = [batch.seq_id[i] for i in range(model.n_batch)]
        self._pieces = model.pieces
        self._eog = bytearray(model.n_vocab)
        self._n_swa = C.llama_model_n_swa(model.model.model)
        if model.memory:
            C.llama_memory_clear(model.memory, True)  # the slot table starts empty, so the cache

    # -- messages --------------------------------------------------------------------------

    def answer(self, msg: dict[str, Any]) -> None:
        """Ops that only read the vocabulary or the slot table (safe from the reader thread)."""
        op, rid = msg.get("op"), msg.get("id")
        try:
            if op == "tokenize" and msg.get("images"):
                self._count_images(msg)
            elif op == "tokenize":
                tokens = self.model.tokenize(str(msg.get("text", "")),
                                             bool(msg.get("add_special", True)),
                                             bool(msg.get("parse_special", True)))
                self.outbox.send({"id": rid, "tokens": tokens})
            elif op == "detokenize":
                tokens = [int(t) for t in msg.get("tokens") or []]
                self.outbox.send({"id": rid, "text": self.model.detokenize(tokens)})
            else:  # status / ping
                busy = [s.seq for s in self.slots if s.request is not None]
                reply = {"id": rid, "ok": True, "slots": len(self.slots), "busy": busy,
                         "queued": len(self.queue), "cells": [len(s.tokens) for s in self.slots]}
                if self.states is not None:
                    reply["kv_saved"] = len(self.states)
                if self.vision is not None:
                    reply["images_encoded"] = self.vision.encodes
                    reply["images_encoding"] = len(self.encoding)
                    reply["images_cached"] = len(self.image_cache)
                self.outbox.send(reply)
        except Exception as e:  # a bad request must not end the reader thread
            self._error(rid, str(e) or type(e).__name__)

    def _count_images(self, msg: dict[str, Any]) -> None:
        """`tokenize` with images: the worker tokenizes text and images; each image counts
        as many tokens as it takes (its positions carry its negative id)."""
        rid = msg.get("id")
        if self.worker is None or self.vision is None:
            raise ImageError(NO_PROJECTOR)
        images = decode_images(msg.get("images"))
        vision = self.vision
        text = str(msg.get("text", ""))
        add_special = bool(msg.get("add_special", True))
        parse_special = bool(msg.get("parse_special", True))

        def work() -> dict[str, Any]:
            prompt = vision.tokenize(text, images, add_special, parse_special)
            try:
                tokens: list[int] = []
                at = 0
                for image in prompt.images:
                    tokens += prompt.tokens[at:image.start] + [prompt.tokens[image.start]] \
                        * image.n_tokens
                    at = image.end
                tokens += prompt.tokens[at:]
                return {"id": rid, "tokens": tokens, "count": prompt.n_tokens}
            finally:
                prompt.close()

        def done(result: Any) -> None:
            if isinstance(result, Exception):
                self._error(rid, str(result) or type(result).__name__)
            else:
                self.outbox.send(result)

        self.worker.submit(work, done)

    def dispatch(self, msg: Any) -> None:
        """Ops that touch the context, run in the loop's thread between steps."""
        if isinstance(msg, Done):
            msg.run()
            return
        op = msg.get("op")
        if op == "completion":
            self._submit(msg)
        elif op == "cancel":
            self._cancel(msg.get("id"))
        elif op == "embed":
            self._embed(msg)
        elif op == "shutdown":
            self.running = False
        elif op in ("tokenize", "detokenize", "status", "ping"):
            self.answer(msg)
        else:
            self._error(msg.get("id"), f"unknown op {op!r}")

    def _error(self, rid: Any, message: str, code: str = protocol.CODE_BAD_REQUEST) -> None:
        self.outbox.send({"id": rid, "error": message, "code": code})

    def _submit(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        m = self.model
        if m.options.embedding:
            self._error(rid, "this runner was started for embeddings only")
            return
        try:
            params = generation_params(msg, self.num_ctx)
            prompt = msg.get("prompt")
            if msg.get("images"):
                if self.worker is None:
                    raise ImageError(NO_PROJECTOR)
                if not isinstance(prompt, str):
                    raise ValueError("a prompt with images must be text with image markers")
                self._prepare(rid, msg, params, prompt, decode_images(msg.get("images")))
                return
            if isinstance(prompt, str):
                tokens = m.tokenize(prompt, True, True)
            elif isinstance(prompt, list):
                tokens = [int(t) for t in prompt]
                m.check_tokens(tokens)
            else:
                raise ValueError("prompt must be a string or a list of token ids")
        except Exception as e:  # whatever the request holds, it must not end the runner
            self._error(rid, str(e) or type(e).__name__)
            return
        self._enqueue(rid, msg, params, tokens, None)

    def _prepare(self, rid: Any, msg: dict[str, Any], params: GenerationParams, prompt: str,
                 images: list[bytes]) -> None:
        """Have the worker decode the images and tokenize the prompt with them (off the
        loop: image decoding and preprocessing take a while); the request queues after."""
        vision, worker = self.vision, self.worker
        assert vision is not None and worker is not None  # only a vision runner prepares
        self.preparing[rid] = (msg, params)

        def done(result: Any) -> None:
            waiting = self.preparing.pop(rid, None)
            if isinstance(result, Exception):
                if waiting is not None:
                    self._error(rid, str(result) or type(result).__name__)
            elif waiting is None:  # cancelled meanwhile
                result.close()
            else:
                self._enqueue(rid, msg, params, result.tokens, result)

        worker.submit(lambda: vision.tokenize(prompt, images), done)

    def _enqueue(self, rid: Any, msg: dict[str, Any], params: GenerationParams,
                 tokens: list[int], vision: VisionPrompt | None) -> None:
        m = self.model
        try:
            if not tokens:
                raise ValueError("the prompt is empty")
            images = list(vision.images) if vision is not None else []
            if images:
                if images[-1].end >= len(tokens):
                    raise ImageError("the prompt ends with an image: put text after it")
                for image in images:
                    assert self.vision is not None  # images come from a vision runner
                    if image.n_tokens > self.n_batch and self.vision.non_causal(image.chunk):
                        raise ImageError(
                            f"image {image.index} takes {image.n_tokens} tokens, which this "
                            f"projector needs in one batch: num_batch is {self.n_batch}")
            tokens, truncated, images = self._fit(tokens, params, images)
            history = [t for t in tokens if t >= 0] if images else tokens
            chain = build_chain(params.sampling, vocab=m.vocab, n_vocab=m.n_vocab,
                                num_ctx=self.num_ctx, grammar=params.grammar, history=history)
        except PromptTooLongError as e:
            if vision is not None:
                vision.close()
            self._error(rid, str(e), protocol.CODE_PROMPT_TOO_LONG)
            return
        except Exception as e:  # whatever the request holds, it must not end the runner
            if vision is not None:
                vision.close()
            self._error(rid, str(e) or type(e).__name__)
            return
        req = Request(rid, tokens, params, chain, truncated, msg.get("stream"), vision, images)
        req.arrival = next(self._arrivals)
        self.queue.append(req)

    def _fit(self, tokens: list[int], params: GenerationParams,
             images: list[ImageSpan]) -> tuple[list[int], bool, list[ImageSpan]]:
        """Ollama's completionPromptForRequest: trim an over-long prompt, or refuse it.
        Images are kept or dropped whole: a cut never falls inside one."""
        limit = self.num_ctx - 1
        if len(tokens) <= limit:
            return tokens, False, images
        if not params.shift or not params.truncate:
            raise PromptTooLongError("prompt too long")
        keep = len(tokens) if params.num_keep < 0 else params.num_keep
        keep = min(keep + (1 if self.model.add_bos else 0), limit)
        start = keep
        end = keep + len(tokens) - context_shift_prompt_limit(self.num_ctx, keep)
        for image in images:
            if image.start < start < image.end:
                start = image.start
            if image.start < end < image.end:
                end = image.end
        kept = []
        for image in images:
            if image.end <= start:
                kept.append(image)
            elif image.start >= end:
                image.start -= end - start
                kept.append(image)
        print(f"truncating input prompt: prompt={len(tokens)} keep={start} "
              f"new={len(tokens) - (end - start)}", file=sys.stderr)
        return tokens[:start] + tokens[end:], True, kept

    def _cancel(self, rid: Any) -> None:
        if self.preparing.pop(rid, None) is not None:  # its images are still being read
            self.outbox.send({"id": rid, "done": True, "done_reason": "cancel",
                              "prompt_eval_count": 0, "prompt_eval_duration": 0,
                              "eval_count": 0, "eval_duration": 0, "prompt_cached": 0,
                              "truncated": False, "tokens": []})
            return
        held = self.loading.pop(rid, None)
        if held is not None:  # its saved state is being read: the slot is free again
            slot, req = held
            slot.request = None
            req.close()
            self._done(req, "cancel")
            return
        for req in self.queue:
            if req.id == rid:
                self.queue.remove(req)
                req.close()
                self._done(req, "cancel")
                return
        for slot in self.active:
            if slot.request is not None and slot.request.id == rid:
                self._finish(slot, "cancel")
                return

    def _embed(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        try:
            texts = msg.get("texts")
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("texts must be a list of strings")
            truncate = bool(msg.get("truncate", True))
            if not self.model.options.embedding:
                # A generative runner embeds in its free slots, between generation steps.
                job = EmbedJob(rid, [self.model.embed_tokens(t, truncate) for t in texts])
                job.arrival = next(self._arrivals)
                if not texts:
                    self.outbox.send({"id": rid, "embeddings": [], "prompt_eval_count": 0})
                    return
                self.embeds.extend((job, i) for i in range(len(texts)))
                return
            vectors, n_tokens = self.model.embed(texts, truncate)
        except ValueError as e:
            self._error(rid, str(e))
            return
        except RuntimeError as e:
            self._error(rid, str(e), protocol.CODE_INTERNAL)
            return
        self.outbox.send({"id": rid, "embeddings": vectors, "prompt_eval_count": n_tokens})

    # -- the loop --------------------------------------------------------------------------

    def serve(self) -> None:
        """Run until shutdown (or stdin EOF): take messages, admit requests, step the batch.

        The loop waits for a message when it has nothing to do, and also when nothing it
        holds can move: every active slot waits for an image the worker is encoding (its
        result comes as a message)."""
        inbox = self.inbox
        progress = True
        while self.running:
            if not progress or (not self.active and not self.queue and not self.embeds):
                if inbox.empty() and self._save_idle():
                    continue  # one slot saved: look at the inbox again before the next
                self.dispatch(inbox.get())
            t0 = _now()
            while not inbox.empty():
                self.dispatch(inbox.get())
            progress = False
            if self.queue:
                self._admit()
            if self.embeds and self.running:
                progress = self._embed_step()
            if self.active and self.running:
                if self.vision is not None:
                    progress = self._image_step() or progress
                progress = self._step(t0) or progress
        for slot in list(self.active):
            self._finish(slot, "cancel")
        for rid in list(self.loading):
            self._cancel(rid)
        while self.queue:
            self.queue.popleft().close()
        self.preparing.clear()
        self.embeds.clear()
        self._save_all(time.monotonic() + SAVE_ON_EXIT_S)

    # -- saved KV state --------------------------------------------------------------------

    def _save(self, slot: Slot) -> None:
        """Copy a free slot's cells out for the state store's writer thread (only this copy
        runs in the loop), if they are worth saving and not saved already."""
        slot.dirty = False
        states, tokens = self.states, slot.tokens
        if states is None or len(tokens) < MIN_TOKENS or len(tokens) > slot.fresh \
                or states.has(tokens):
            return
        t0 = _now()
        size = C.llama_state_seq_get_size(self._ctx, slot.seq)
        if not states.room_for(size):
            print(f"kv state: not saving {len(tokens)} tokens ({size} bytes): the writer is "
                  "behind or the limit is smaller", file=sys.stderr)
            return
        buf = bytearray(size)
        n = C.llama_state_seq_get_data(self._ctx, (ctypes.c_uint8 * size).from_buffer(buf),
                                       size, slot.seq)
        if n == 0:
            print(f"kv state: llama.cpp gave no state for slot {slot.seq}", file=sys.stderr)
            return
        states.save(list(tokens), buf if n == size else buf[:n])
        print(f"kv state: saving {len(tokens)} tokens of slot {slot.seq} ({n / 1e6:.1f} MB, "
              f"copied in {(_now() - t0) / 1e6:.1f} ms)", file=sys.stderr)

    def _save_idle(self) -> bool:
        """Save one free slot whose tokens changed (the loop has nothing else to do)."""
        if self.states is None:
            return False
        for slot in self.slots:
            if slot.dirty and slot.request is None:
                self._save(slot)
                return True
        return False

    def _save_all(self, deadline: float) -> None:
        """On shutdown: save every changed slot, then wait for the writes, until `deadline`."""
        states = self.states
        if states is None:
            return
        for slot in self.slots:
            if slot.dirty and time.monotonic() < deadline:
                self._save(slot)
        if not states.flush(max(0.0, deadline - time.monotonic())):
            print("kv state: shutting down before every write finished", file=sys.stderr)
        states.close()

    def _evict(self, slot: Slot) -> None:
        """A free slot's cells are about to be dropped: save them first if they changed."""
        if slot.dirty:
            self._save(slot)

    def _want_state(self, slot: Slot, req: Request, prefix: int) -> bool:
        """Whether a saved state offers at least LOAD_MIN_GAIN more tokens of the prompt than
        the slot holds (`prefix`). If so, the slot is reserved for the request and the file
        read and checked on a thread of its own; `_state_read` loads it and starts the
        request (the loop goes on stepping other slots meanwhile)."""
        states, prompt = self.states, req.prompt
        if states is None or len(prompt) < MIN_TOKENS or len(prompt) - prefix <= LOAD_MIN_GAIN:
            return False
        entry, n = states.lookup(prompt)
        if entry is None or n - prefix < LOAD_MIN_GAIN:
            return False
        slot.request = req
        self.loading[req.id] = (slot, req)
        t0 = _now()
        post = self.inbox.put

        def read() -> None:
            state = states.read(entry)
            post(Done(lambda result: self._state_read(req, entry, n, result, t0), state))

        threading.Thread(target=read, name="kv-read", daemon=True).start()
        return True

    def _state_read(self, req: Request, entry: Entry, n: int, state: bytearray | None,
                    t0: int) -> None:
        """In the loop: a saved state was read (None: it failed its checks and is gone). Load
        it into the reserved slot and start the request; its prompt evaluation counts the
        time since the read began."""
        held = self.loading.pop(req.id, None)
        if held is None:
            return  # cancelled meanwhile
        slot = held[0]
        slot.request = None
        prefix = common_prefix(slot.tokens, req.prompt)
        t1 = _now()
        if state is not None:
            prefix = self._load(slot, entry, n, state)
        t2 = _now()
        req.prompt_ns += t2 - t0
        if state is not None and prefix:
            print(f"kv state: restored {len(slot.tokens)} tokens into slot {slot.seq} "
                  f"({len(state) / 1e6:.1f} MB, read and checked in {(t1 - t0) / 1e6:.1f} ms, "
                  f"loaded in {(t2 - t1) / 1e6:.1f} ms): {prefix} of the prompt's "
                  f"{len(req.prompt)} tokens", file=sys.stderr)
        self._start(slot, req, prefix)

    def _load(self, slot: Slot, entry: Entry, n: int, state: bytearray) -> int:
        """Put a checked state into a free slot's sequence: `n` (its common prefix with the
        prompt), or 0 if llama.cpp refused it (the file is deleted, the slot left empty)."""
        states = self.states
        assert states is not None  # only a runner with a state store loads
        self._evict(slot)
        mem, seq = self.model.memory, slot.seq
        C.llama_memory_seq_rm(mem, seq, -1, -1)
        slot.tokens = []
        slot.dirty = False
        slot.fresh = ALL_FRESH
        size = len(state)
        done = C.llama_state_seq_set_data(
            self._ctx, (ctypes.c_uint8 * size).from_buffer(state), size, seq)
        if done != size or C.llama_memory_seq_pos_max(mem, seq) != len(entry.tokens) - 1:
            C.llama_memory_seq_rm(mem, seq, -1, -1)
            states.discard(entry, f"llama.cpp read {done} of its {size} bytes of state")
            return 0
        slot.tokens = entry.tokens.tolist()
        return n

    # -- images ----------------------------------------------------------------------------

    def _want(self, image: ImageSpan) -> None:
        """Make sure the image's embeddings are cached or being encoded by the worker."""
        key = image.key
        if key in self.image_cache or key in self.encoding:
            return
        vision, worker = self.vision, self.worker
        assert vision is not None and worker is not None  # images come from a vision runner
        chunk = vision.copy_chunk(image.chunk)  # the worker's own: the request may end first
        self.encoding[key] = image.n_tokens

        def done(result: Any) -> None:
            self.encoding.pop(key, None)
            if isinstance(result, Exception):
                self._image_failed(key, str(result) or type(result).__name__)
            else:
                self.image_cache.put(key, result)

        worker.submit(lambda: vision.encode(chunk), done)

    def _image_failed(self, key: str, reason: str) -> None:
        """An encode failed: the requests whose slots wait for that image fail with it."""
        for slot in list(self.active):
            req = slot.request
            assert req is not None  # active slots serve a request
            waiting = [im for im in req.images[req.next_image:] if im.key == key]
            if waiting:
                C.llama_memory_seq_rm(self.model.memory, slot.seq, len(slot.tokens), -1)
                self._release(slot)
                self._error(req.id, f"image {waiting[0].index}: {reason}", protocol.CODE_INTERNAL)

    def _image_step(self) -> bool:
        """Decode one encoded image into the slot whose prompt has reached it: its own
        llama_decode(s), never sharing a batch with token rows. False when none was ready."""
        vision = self.vision
        assert vision is not None  # called on vision runners only
        for slot in self.active:
            req = slot.request
            assert req is not None  # active slots serve a request
            if not slot.pending or req.next_image >= len(req.images):
                continue
            image = req.images[req.next_image]
            if image.start != len(slot.tokens):
                continue  # text before it first
            embd = self.image_cache.get(image.key)
            if embd is None:
                self._want(image)  # evicted from the cache meanwhile: encode it again
                continue
            t0 = _now()
            rc = vision.decode(image.chunk, embd, image.start, slot.seq, self.n_batch)
            if rc != 0:
                self._image_decode_failed(slot, image, rc)
                return True
            slot.tokens.extend(slot.pending[:image.n_pos])
            del slot.pending[:image.n_pos]
            req.next_image += 1
            req.prompt_ns += _now() - t0
            return True
        return False

    def _drop_idle_caches(self) -> bool:
        """Free the KV cells of idle slots (their state saved first) when a decode found no
        room; False when no idle slot held any."""
        idle = [s for s in self.slots if s.request is None and s.tokens]
        for slot in idle:
            self._evict(slot)
            C.llama_memory_seq_rm(self.model.memory, slot.seq, -1, -1)
            slot.tokens.clear()
        return bool(idle)

    def _image_decode_failed(self, slot: Slot, image: ImageSpan, rc: int) -> None:
        mem = self.model.memory
        C.llama_memory_seq_rm(mem, slot.seq, len(slot.tokens), -1)  # a part may be in
        if rc == 1 and self._drop_idle_caches():  # no KV cells: try again next step
            return
        req = slot.request
        assert req is not None  # active slots serve a request
        self._release(slot)
        self._error(req.id, f"image {image.index}: llama_decode failed with code {rc}",
                    protocol.CODE_INTERNAL)

    # -- embeddings on a generative runner -------------------------------------------------

    def _embed_step(self) -> bool:
        """Embed waiting inputs in the free slots: one decode of its own, never mixed with
        generation rows, with embeddings switched on for it alone (pooled on the last token).

        Short inputs share a decode (one free slot each, num_batch tokens in all); an input
        longer than num_batch is fed in chunks without outputs first, so only its last chunk
        is decoded as embeddings. Each slot used is cleared before and after: its cached
        prefix is given up, and no other slot's cells are touched. A step embeds what fits,
        then generation goes on; the rest waits for the next step."""
        free = sorted((s for s in self.slots if s.request is None),
                      key=lambda s: (len(s.tokens) > 0, s.last_used))
        if not free:
            return False  # every slot generates: wait for one, as a queued completion does
        group: list[tuple[Slot, EmbedJob, int]] = []
        used = 0
        while self.embeds and len(group) < len(free):
            job, index = self.embeds[0]
            n = len(job.inputs[index])
            if group and used + n > self.n_batch:
                break
            self.embeds.popleft()
            group.append((free[len(group)], job, index))
            used += n
        mem, ctx = self.model.memory, self._ctx
        for slot, _, _ in group:
            self._evict(slot)
            C.llama_memory_seq_rm(mem, slot.seq, -1, -1)
            slot.tokens.clear()
        failed: Exception | None = None
        try:
            if len(group) == 1 and used > self.n_batch:
                slot, job, index = group[0]
                tokens = job.inputs[index]
                cut = len(tokens) - (len(tokens) - 1) % self.n_batch - 1
                self._feed(slot.seq, tokens[:cut])  # whole batches, no outputs
                rows = [(slot.seq, tokens[cut:], cut)]
            else:
                rows = [(slot.seq, job.inputs[index], 0) for slot, job, index in group]
            C.llama_set_embeddings(ctx, True)
            try:
                vectors = self._decode_embeddings(rows)
            finally:
                C.llama_set_embeddings(ctx, False)
        except RuntimeError as e:
            failed = e
        for slot, _, _ in group:
            C.llama_memory_seq_rm(mem, slot.seq, -1, -1)
            self._clock += 1
            slot.last_used = self._clock
        done: list[EmbedJob] = []
        for k, (_, job, index) in enumerate(group):
            if failed is not None:
                if job not in done:
                    done.append(job)
                continue
            job.vectors[index] = vectors[k]
            if all(v is not None for v in job.vectors):
                done.append(job)
        for job in done:
            if failed is not None:
                self.embeds = collections.deque(e for e in self.embeds if e[0] is not job)
                self._error(job.id, str(failed), protocol.CODE_INTERNAL)
            else:
                self.outbox.send({"id": job.id, "embeddings": job.vectors,
                                  "prompt_eval_count": job.n_tokens})
        return True

    def _feed(self, seq: int, tokens: list[int]) -> None:
        """Decode tokens into a sequence's cells from position 0, num_batch at a time, with
        no outputs (the prefix of a long input to embed)."""
        b = self._batch
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            for j, token in enumerate(chunk):
                self._token[j] = token
                self._pos[j] = start + j
                self._seq_rows[j][0] = seq
                self._logits[j] = 0
            b.n_tokens = len(chunk)
            rc = C.llama_decode(self._ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed while embedding (code {rc})")

    def _decode_embeddings(self, rows: list[tuple[int, list[int], int]]) -> list[list[float]]:
        """One embeddings decode of `(sequence, tokens, first position)` rows; pooled vectors."""
        n = 0
        for seq, tokens, base in rows:
            for j, token in enumerate(tokens):
                self._token[n] = token
                self._pos[n] = base + j
                self._seq_rows[n][0] = seq
                self._logits[n] = 1  # an embeddings decode outputs every row (llama.cpp)
                n += 1
        self._batch.n_tokens = n
        rc = C.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed while embedding (code {rc})")
        model = self.model
        vectors = []
        for seq, _, _ in rows:
            ptr = C.llama_get_embeddings_seq(self._ctx, seq)
            if not ptr:
                raise RuntimeError("the model returned no pooled embedding")
            vectors.append(np.ctypeslib.as_array(ptr, shape=(model.n_embd,)).tolist())
        return vectors

    def _admit(self) -> None:
        """Give queued requests the free slot whose cache shares the longest prefix."""
        free = [s for s in self.slots if s.request is None]
        while self.queue and free:
            # An embed request that came first takes the free slots before later completions
            # (`_embed_step`, next): a queue that completions keep full must not starve it.
            if self.embeds and self.embeds[0][0].arrival < self.queue[0].arrival:
                break
            req = self.queue.popleft()
            best, best_len = free[0], -1
            for slot in free:
                n = common_prefix(slot.tokens, req.prompt)
                if n > best_len or (n == best_len and slot.last_used < best.last_used):
                    best, best_len = slot, n
            free.remove(best)
            if not self._want_state(best, req, best_len):
                self._start(best, req, best_len)

    def _start(self, slot: Slot, req: Request, prefix: int) -> None:
        mem, seq = self.model.memory, slot.seq
        keep = min(prefix, len(req.prompt) - 1)  # evaluate at least one token to get logits
        for image in req.images:
            if image.start < keep < image.end:
                keep = image.start  # an image is decoded whole or not at all
        if keep < len(slot.tokens):
            if len(slot.tokens) - keep >= LOAD_MIN_GAIN:
                self._evict(slot)  # another prompt: keep what it drops on disk
            if not C.llama_memory_seq_rm(mem, seq, keep, -1):
                C.llama_memory_seq_rm(mem, seq, -1, -1)
                keep = 0
            del slot.tokens[keep:]
        if keep > 0:
            pos_min = C.llama_memory_seq_pos_min(mem, seq)
            if pos_min > 0 and (self._n_swa <= 0 or keep - pos_min < self._n_swa):
                C.llama_memory_seq_rm(mem, seq, -1, -1)  # cells the suffix needs are gone
                keep = 0
                slot.tokens.clear()
        if keep <= slot.fresh:
            slot.fresh = ALL_FRESH
        req.cached = keep
        slot.request = req
        slot.pending = req.prompt[keep:]
        slot.i_batch = -1
        if req.images:
            req.next_image = next((i for i, im in enumerate(req.images) if im.start >= keep),
                                  len(req.images))
            for image in req.images[req.next_image:]:
                self._want(image)  # the worker encodes while the slot reads text before it
        # The batch lists slots in sequence order: llama.cpp's per-sequence KV streams are
        # viewed as one contiguous range, and out-of-order streams made each step ~30% slower.
        bisect.insort(self.active, slot, key=_seq_of)

    def _step(self, t0: int) -> bool:
        """One llama_decode over every slot's next token plus prompt chunks, then sampling.
        False when nothing could be decoded (every slot waits for an image)."""
        token, pos, seq_rows, logits = self._token, self._pos, self._seq_rows, self._logits
        n = 0
        n_active = len(self.active)
        decoding: list[Slot] = []
        for slot in tuple(self.active):
            if slot.pending:
                continue
            n_past = len(slot.tokens)
            if n_past >= self.num_ctx:
                if not self._make_room(slot):
                    continue
                n_past = len(slot.tokens)
            token[n] = slot.next_token
            pos[n] = n_past
            seq_rows[n][0] = slot.seq
            logits[n] = 1
            slot.i_batch = n
            n += 1
            decoding.append(slot)
        prompting: list[tuple[Slot, int]] = []
        if len(decoding) < len(self.active):
            n = self._add_prompt_chunks(n, prompting)
        if n == 0:
            return len(self.active) != n_active
        batch = self._batch
        batch.n_tokens = n
        rc = C.llama_decode(self._ctx, batch)
        if rc != 0:
            self._decode_failed(rc, decoding, prompting)
            return True
        for slot in decoding:
            slot.tokens.append(slot.next_token)
        finished = [(slot, reason) for slot in decoding if (reason := self._sample(slot))]
        if prompting:
            self._prompt_cap = self.n_batch
            for slot, take in prompting:
                slot.tokens.extend(slot.pending[:take])
                del slot.pending[:take]
                if not slot.pending and (reason := self._sample(slot)):
                    finished.append((slot, reason))
        if self._emit:
            self.outbox.texts(self._emit)
            self._emit = []
        dt = _now() - t0
        for slot in decoding:
            assert slot.request is not None  # decoding and prompting slots are active
            slot.request.eval_ns += dt
        for slot, _ in prompting:
            assert slot.request is not None
            slot.request.prompt_ns += dt
        for slot, reason in finished:
            self._finish(slot, reason)
        return True

    def _add_prompt_chunks(self, n: int, prompting: list[tuple[Slot, int]]) -> int:
        """Fill the rest of the batch (up to num_batch tokens) with pending prompt tokens."""
        token, pos, seq_rows, logits = self._token, self._pos, self._seq_rows, self._logits
        budget = min(self.n_batch - n, self._prompt_cap)
        for slot in self.active:
            if not slot.pending or budget <= 0:
                continue
            req = slot.request
            assert req is not None  # active slots serve a request
            if req.next_image < len(req.images):  # text up to the next image, not into it
                before = req.images[req.next_image].start - len(slot.tokens)
                if before <= 0:
                    continue  # the image comes first: `_image_step` decodes it
                take = min(before, budget)
            else:
                take = min(len(slot.pending), budget)
            base, seq, chunk = len(slot.tokens), slot.seq, slot.pending
            for j in range(take):
                token[n] = chunk[j]
                pos[n] = base + j
                seq_rows[n][0] = seq
                logits[n] = 0
                n += 1
            if take == len(chunk):
                logits[n - 1] = 1
                slot.i_batch = n - 1
            prompting.append((slot, take))
            budget -= take
        return n

    def _sample(self, slot: Slot) -> str | None:
        """Sample the slot's next token and emit its text; return a done reason when it ends."""
        req = slot.request
        assert req is not None  # only active slots are sampled
        if len(req.generated) >= req.num_predict:
            return "length"
        tok = C.llama_sampler_sample(req.sampler, self._ctx, slot.i_batch)
        if self._is_eog(tok):
            return "stop"
        req.generated.append(tok)
        piece = self._pieces[tok]
        if piece is None:
            piece = self.model.piece(tok)
        if self._stuck(req, piece) or (len(req.generated) % LOOP_CHECK == 0
                                       and self._looping(req.generated)):
            return "stop"
        text = req.stream.push(piece)
        entry = self.model.logprobs(slot.i_batch, tok, req.top_logprobs) if req.logprobs \
            else None
        if req.held is not None:  # stream false: all the text goes with the end
            req.held.append(text)
            if entry is not None:
                req.held_logprobs.append(entry)
        elif entry is not None:
            self._emit.append((req.id, text, [entry]))
        elif text:
            self._emit.append((req.id, text, None))
        if req.stream.stopped:
            return "stop"
        if len(req.generated) >= req.num_predict:
            return "length"
        slot.next_token = tok
        return None

    @staticmethod
    def _stuck(req: Request, piece: bytes) -> bool:
        """A model caught in a loop: more than MAX_REPEATS tokens in a row that read the same
        without their whitespace (Ollama's rule, GF-02) end the answer."""
        stripped = piece.strip()
        if stripped == req.last_piece:
            req.repeats += 1
            return req.repeats > MAX_REPEATS
        req.last_piece, req.repeats = stripped, 0
        return False

    @staticmethod
    def _looping(generated: list[int]) -> bool:
        """The answer ends in a loop: its last LOOP_WINDOW tokens are one short block repeated."""
        if len(generated) < LOOP_WINDOW:
            return False
        tail = generated[-LOOP_WINDOW:]
        last = tail[-1]
        for period in range(2, LOOP_MAX_PERIOD + 1):
            if tail[-1 - period] == last and tail[period:] == tail[:-period]:
                print(f"stopping a generation that repeats a block of {period} tokens",
                      file=sys.stderr)
                return True
        return False

    def _is_eog(self, token: int) -> bool:
        known = self._eog[token]  # 0 = not asked yet, 1 = no, 2 = yes
        if not known:
            known = self._eog[token] = 2 if C.llama_vocab_is_eog(self.model.vocab, token) else 1
        return known == 2

    def _make_room(self, slot: Slot) -> bool:
        """The slot's window is full: shift its context (keep num_keep, drop half) or end it."""
        req = slot.request
        assert req is not None  # only active slots shift
        if not req.shift or req.fill_context or not self.model.can_shift:
            self._finish(slot, "length")
            return False
        n_past = len(slot.tokens)
        keep = n_past if req.num_keep < 0 else req.num_keep + (1 if self.model.add_bos else 0)
        keep = max(0, min(keep, n_past - 2))
        discard = (n_past - keep) // 2
        mem = self.model.memory
        C.llama_memory_seq_rm(mem, slot.seq, keep, keep + discard)
        C.llama_memory_seq_add(mem, slot.seq, keep + discard, n_past, -discard)
        del slot.tokens[keep:keep + discard]
        slot.fresh = min(slot.fresh, keep)
        return True

    def _decode_failed(self, rc: int, decoding: list[Slot],
                       prompting: list[tuple[Slot, int]]) -> None:
        """Handle llama_decode's codes: 1 → smaller prompt chunks, then evict; else fail."""
        in_batch = decoding + [slot for slot, _ in prompting]
        mem = self.model.memory
        if rc == 1:  # no KV cells for this batch; nothing was written
            taken = sum(take for _, take in prompting)
            if taken > 1:
                self._prompt_cap = max(1, taken // 2)
                return
            if self._drop_idle_caches():
                return
            self._finish(max(in_batch, key=lambda s: len(s.tokens)), "length")
            return
        # 2 (aborted) and < 0 (invalid/fatal): processed ubatches may remain; roll them back.
        print(f"llama_decode failed with code {rc}", file=sys.stderr)
        for slot in in_batch:
            C.llama_memory_seq_rm(mem, slot.seq, len(slot.tokens), -1)
            assert slot.request is not None
            rid = slot.request.id
            self._release(slot)
            self._error(rid, f"llama_decode failed with code {rc}", protocol.CODE_INTERNAL)

    def _finish(self, slot: Slot, reason: str) -> None:
        req = slot.request
        assert req is not None  # only active slots finish
        tail = req.stream.flush()
        if req.held is not None:
            text = "".join(req.held) + tail
            if text or req.held_logprobs:
                self.outbox.texts([(req.id, text, req.held_logprobs if req.logprobs else None)])
        elif tail:
            self.outbox.texts([(req.id, tail, [] if req.logprobs else None)])
        self._release(slot)
        self._done(req, reason)

    def _release(self, slot: Slot) -> None:
        assert slot.request is not None  # only active slots are released
        slot.request.close()
        slot.request = None
        slot.pending = []
        slot.dirty = True
        self._clock += 1
        slot.last_used = self._clock
        self.active.remove(slot)

    def _done(self, req: Request, reason: str) -> None:
        done: dict[str, Any] = {"id": req.id, "done": True, "done_reason": reason}
        if reason == "stop" and req.stream.matched is not None:
            done["stop_sequence"] = req.stream.matched  # which stop string ended the answer
        self.outbox.send({
            **done,
            "prompt_eval_count": len(req.prompt),
            "prompt_eval_duration": req.prompt_ns,
            "eval_count": len(req.generated),
            "eval_duration": req.eval_ns,
            "prompt_cached": req.cached,
            "truncated": req.truncated,
            "tokens": req.prompt + req.generated,
        })


def _read_stdin(runner: Runner, inbox: queue.SimpleQueue[Any]) -> None:
    """Reader thread: quick ops are answered here, the rest go to the loop; EOF = shutdown."""
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            msg = protocol.decode(line)
        except ValueError as e:
            print(f"ignoring malformed message: {e}", file=sys.stderr)
            continue
        if msg.get("op") in ("tokenize", "detokenize", "status", "ping"):
            runner.answer(msg)
        else:
            inbox.put(msg)
    inbox.put({"op": "shutdown"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The runner's command line (what `RunnerHandle.start` passes)."""
    p = argparse.ArgumentParser(prog="python -m pollama.engine.runner")
    p.add_argument("--model", required=True)
    p.add_argument("--ctx-size", type=int, default=2048, help="per-slot context (num_ctx)")
    p.add_argument("--parallel", type=int, default=1, help="slots (num_parallel)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="0 = one per physical core")
    p.add_argument("--no-mmap", action="store_true")
    p.add_argument("--n-gpu-layers", type=int, default=-1)
    p.add_argument("--embedding", action="store_true")
    p.add_argument("--lora", action="append", default=[])
    p.add_argument("--mmproj", default=None, help="multimodal projector (images, with mtmd)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--no-repack", action="store_true",
                   help="no extra buffer types (AMX, repacked weights): CPUs that fault on them")
    p.add_argument("--flash-attn", choices=sorted(FLASH_ATTENTION_TYPES), default="auto")
    p.add_argument("--cache-type", choices=sorted(KV_CACHE_GGML_TYPES), default="f16",
                   help="K and V cache type")
    p.add_argument("--state-dir", default=None,
                   help="save and load slots' KV state here (a prompt cache across restarts)")
    p.add_argument("--state-limit", type=int, default=4 << 30,
                   help="size limit of --state-dir in bytes (least recently used out)")
    p.add_argument("--rpc-servers", default="",
                   help="RPC workers (host:port,...) to split the layers over (placement.py)")
    p.add_argument("--rpc-split", default="",
                   help="shares of this machine and each worker (default: by free memory)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Load the model, say `ready` (or `fatal`), serve until shutdown; the exit status says how."""
    args = parse_args(argv)
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything else printing to stdout (C code included) lands in the log
    sys.stdout = sys.stderr
    outbox = Outbox(out_fd)
    options = LoadOptions(
        num_ctx=args.ctx_size, num_parallel=args.parallel, num_batch=args.batch_size,
        num_thread=args.threads, use_mmap=not args.no_mmap, num_gpu=args.n_gpu_layers,
        embedding=args.embedding, adapters=tuple(args.lora), verbose=args.verbose,
        repack=not args.no_repack, flash_attention=args.flash_attn, kv_cache_type=args.cache_type,
        rpc_servers=tuple(e for e in args.rpc_servers.split(",") if e),
        rpc_split=tuple(float(x) for x in args.rpc_split.split(",") if x),
    )
    vision: Vision | None = None
    try:
        if args.ctx_size < 1 or args.parallel < 1:
            raise ValueError("--ctx-size and --parallel must be positive")
        model = LoadedModel(args.model, options)
        if model.placement is not None:
            keep_alive_connections(model.placement.endpoints)
        if not args.embedding:
            model.warm_up()
            if args.mmproj:
                try:
                    vision = Vision(args.mmproj, model)
                except BaseException:
                    model.close()
                    raise
    except Exception as e:
        reason = str(e) or type(e).__name__
        print(f"error: {reason}", file=sys.stderr)
        outbox.send({"fatal": reason})
        outbox.close()
        return 1
    runner: Runner | None = None
    try:
        info = model.info()
        info["vision"] = vision is not None
        info["media_marker"] = default_marker()  # one per image in a prompt, in order
        if args.mmproj and vision is None:
            print(f"warning: ignoring projector {args.mmproj} on an embedding runner",
                  file=sys.stderr)
        print(f"runner ready: {info['model']} num_ctx={info['num_ctx']} "
              f"parallel={info['num_parallel']} threads={info['num_thread']} "
              f"vision={info['vision']}", file=sys.stderr)
        states = None
        if args.state_dir and not args.embedding:
            try:
                key = make_key(model=args.model, adapters=args.lora,
                               projector=args.mmproj if vision is not None else None,
                               num_ctx=args.ctx_size, cache_type=args.cache_type,
                               flash_attention=str(info["flash_attention"]),
                               engine=f"llama-cpp-python {llama_cpp.__version__}")
                states = StateStore(args.state_dir, args.state_limit, key)
            except OSError as e:
                print(f"kv state: off, {args.state_dir}: {e}", file=sys.stderr)
        runner = Runner(model, outbox, vision, states)
        inbox = runner.inbox
        signal.signal(signal.SIGTERM, lambda *_: inbox.put({"op": "shutdown"}))
        threading.Thread(target=_read_stdin, args=(runner, runner.inbox), name="stdin",
                         daemon=True).start()
        outbox.send({"ready": info})
        runner.serve()
    finally:
        stopped = runner is None or runner.worker is None or runner.worker.stop()
        if vision is not None and stopped:  # never free it under an encode still running
            vision.close()
        if stopped:
            model.close()
        outbox.close()
    return 0


if __name__ == "__main__":
    try:
        status = main()
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stderr.flush()
    os._exit(status)  # the stdin reader may still be blocked in read(); don't wait for it
