"""Ollama request options → llama.cpp's C sampler chain, so per-token sampling never runs Python.

Defaults are Ollama's (`api.DefaultOptions`, spec OPT-*). The chain, in llama.cpp's order:

    [grammar] → [penalties] → greedy                                  temperature <= 0
    [grammar] → [penalties] → temp → mirostat v1 | v2                  mirostat 1 | 2
    [grammar] → [penalties] → top_k → typical → top_p → min_p → temp → dist(seed)

Samplers that would do nothing (top_k <= 0, top_p >= 1, typical_p >= 1, min_p <= 0, neutral
penalties) are left out. The grammar goes first so every later stage only sees allowed tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import llama_cpp.llama_cpp as C
from llama_cpp._internals import LlamaSampler


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """The per-request sampling options, with Ollama's defaults."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64  # -1 = num_ctx, 0 = off
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1  # -1 (any negative) = random
    mirostat: int = 0  # 0 off, 1 mirostat, 2 mirostat 2.0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SamplingParams:
        """Pick the sampling keys out of an Ollama options map; None or unknown keys are skipped."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = options.get(f.name)
            if raw is None:
                continue
            kind = int if f.type in ("int", int) else float
            try:
                values[f.name] = kind(raw)
            except (TypeError, ValueError):
                raise ValueError(f"option {f.name!r} must be a number, got {raw!r}") from None
        return cls(**values)

    @property
    def greedy(self) -> bool:
        """Temperature 0 picks the most likely token every time."""
        return self.temperature <= 0.0

    @property
    def seed_u32(self) -> int:
        """The seed as llama.cpp takes it: LLAMA_DEFAULT_SEED asks for a random one."""
        return C.LLAMA_DEFAULT_SEED if self.seed < 0 else self.seed & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Everything a completion request sets besides its prompt, resolved against num_ctx."""

    sampling: SamplingParams
    num_predict: int
    num_keep: int
    stop: tuple[str, ...]
    shift: bool  # context shift when the window fills (else stop with "length")
    fill_context: bool  # num_predict -2: the answer ends when the window is full
    truncate: bool  # trim an over-long prompt when shift is on (else refuse it)
    grammar: str | None
    logprobs: bool
    top_logprobs: int


def generation_params(request: Mapping[str, Any], num_ctx: int) -> GenerationParams:
    """Resolve a completion request: top-level stop/num_predict/num_keep/seed win over options.

    num_predict < 0 or > 10×num_ctx is bounded to 10×num_ctx, as Ollama's boundedNumPredict;
    -2 (llama.cpp's "fill the context") also ends the answer when the window is full.
    """
    options = dict(request.get("options") or {})
    for key in ("stop", "num_predict", "num_keep", "seed"):
        if request.get(key) is not None:
            options[key] = request[key]
    sampling = SamplingParams.from_options(options)

    num_predict = options.get("num_predict")
    num_predict = -1 if num_predict is None else int(num_predict)
    fill_context = num_predict == -2
    if num_predict < 0 or num_predict > 10 * num_ctx:
        num_predict = 10 * num_ctx
    num_keep = options.get("num_keep")
    num_keep = 4 if num_keep is None else int(num_keep)

    stop = options.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    if not all(isinstance(s, str) for s in stop):
        raise ValueError('option "stop" must be of type array')
    top_logprobs = int(request.get("top_logprobs") or 0)
    shift = request.get("shift")
    return GenerationParams(
        sampling=sampling,
        num_predict=num_predict,
        num_keep=num_keep,
        stop=tuple(s for s in stop if s),
        shift=True if shift is None else bool(shift),
        fill_context=fill_context,
        truncate=request.get("truncate") is not False,
        grammar=request.get("grammar") or None,
        logprobs=bool(request.get("logprobs")) or top_logprobs > 0,
        top_logprobs=max(0, min(top_logprobs, 20)),
    )


def build_chain(
    params: SamplingParams,
    *,
    vocab: Any,
    n_vocab: int,
    num_ctx: int,
    grammar: str | None = None,
    history: Sequence[int] = (),
) -> LlamaSampler:
    """A fresh sampler chain for one request; `history` (the prompt) primes the penalties.

    Raises ValueError if the grammar does not parse. The caller owns (and closes) the chain.
    """
    chain = LlamaSampler()
    try:
        if grammar:
            g = C.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            if not g:
                raise ValueError("failed to parse grammar")
            C.llama_sampler_chain_add(chain.sampler, g)
        _add_penalties(chain, params, n_vocab, num_ctx, history)
        if params.greedy:
            chain.add_greedy()
        elif params.mirostat == 1:
            chain.add_temp(params.temperature)
            chain.add_mirostat(n_vocab, params.seed_u32, params.mirostat_tau,
                               params.mirostat_eta, 100)
        elif params.mirostat == 2:
            chain.add_temp(params.temperature)
            chain.add_mirostat_v2(params.seed_u32, params.mirostat_tau, params.mirostat_eta)
        else:
            if params.top_k > 0:
                chain.add_top_k(params.top_k)
            if params.typical_p < 1.0:
                chain.add_typical(params.typical_p, 1)
            if params.top_p < 1.0:
                chain.add_top_p(params.top_p, 1)
            if params.min_p > 0.0:
                chain.add_min_p(params.min_p, 1)
            chain.add_temp(params.temperature)
            chain.add_dist(params.seed_u32)
    except BaseException:
        chain.close()
        raise
    return chain


def _add_penalties(
    chain: LlamaSampler,
    params: SamplingParams,
    n_vocab: int,
    num_ctx: int,
    history: Sequence[int],
) -> None:
    last_n = num_ctx if params.repeat_last_n < 0 else params.repeat_last_n
    neutral = (
        params.repeat_penalty == 1.0
        and params.presence_penalty == 0.0
        and params.frequency_penalty == 0.0
    )
    if last_n == 0 or neutral:
        return
    # The llama.cpp in llama-cpp-python 0.3.36 takes the vocabulary size first (llama.h).
    penalties = C.llama_sampler_init_penalties(
        n_vocab, last_n, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
    )
    # Prime with the prompt before the sampler joins the chain, so the grammar never sees it.
    accept = C.llama_sampler_accept
    for token in history[-last_n:]:
        accept(penalties, token)
    C.llama_sampler_chain_add(chain.sampler, penalties)
