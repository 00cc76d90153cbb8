"""Embeddings: `/api/embed` and the legacy `/api/embeddings`, with Ollama's semantics (EMB-01..07).

The runner pools each input (the model's pooling, or the last token of a generative model) and
returns raw vectors; here inputs are checked and truncated to the context the way Ollama's
EmbedHandler does (tokens without special tokens, one place kept for BOS and one for EOS), and
the vectors are L2-normalised in float32, cut to `dimensions` and normalised again.

Values are float32: each is handed on as the Python float whose shortest text is the float32's
(what Go's encoding/json writes for a []float32), so `0.1` stays `0.1`, not 0.10000000149.
The legacy endpoint returns float64 values of the same float32s, as Ollama does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import ConfigDict, Field

from pollama.engine.errors import RequestRejected
from pollama.errors import (
    INPUT_TOO_LONG,
    NOT_FINITE,
    BadRequest,
    EmbeddingError,
    InvalidModelName,
    ModelNotFound,
    PollamaError,
)
from pollama.inference.requests import (
    KEEP_ALIVE,
    OPTIONS,
    EmbedRequest,
    Request,
    require_model,
)
from pollama.inference.scheduler import RunnerLike, parse_keep_alive
from pollama.models.info import ModelInfo
from pollama.names import parse

if TYPE_CHECKING:
    from pollama.inference.service import Inference

TRUNCATE_FAILED = "input exceeds maximum context length and cannot be truncated further"
NO_ROOM = "input after truncation exceeds maximum context length"


class EmbeddingRequest(Request):
    """The legacy `/api/embeddings` body (Ollama's api.EmbeddingRequest)."""

    model_config = ConfigDict(json_schema_extra=require_model)

    model: str = Field("", description="model name")
    prompt: str = Field("", description="the text to embed; empty loads the model")
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(None, description="runtime options")
    keep_alive: Annotated[Any, KEEP_ALIVE] = Field(
        None, description="how long the model stays loaded afterwards")


# -- vectors -----------------------------------------------------------------------------------

def normalize(vector: np.ndarray) -> np.ndarray:
    """Ollama's normalize: `v / max(||v||, 1e-12)` in float32; NaN or Inf is the user's 400."""
    vec = np.asarray(vector, dtype=np.float32)
    if not np.isfinite(vec).all():
        raise EmbeddingError(NOT_FINITE)
    total = np.float32(np.dot(vec, vec))
    return vec * np.float32(1.0 / max(float(np.sqrt(np.float64(total))), 1e-12))


def finish(vector: Sequence[float], dimensions: int | None) -> np.ndarray:
    """A runner's raw vector as /api/embed returns it: normalised, cut to `dimensions` when
    0 < dimensions < its length, then normalised again (EMB-03)."""
    vec = normalize(np.asarray(vector, dtype=np.float32))
    if dimensions and 0 < dimensions < len(vec):
        vec = normalize(vec[:dimensions])
    return vec


def float32_values(vec: np.ndarray) -> list[float]:
    """Python floats that print as the float32s' shortest text (Go's float32 JSON values)."""
    return [float(text) for text in vec.astype(np.float32).astype(str)]


def parse_input(value: Any) -> list[str]:
    """`input`: a string (empty: nothing to embed) or a list of strings, else `invalid input
    type` (EMB-01)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise BadRequest("invalid input type")
        return list(value)
    raise BadRequest("invalid input type")


def legacy_raw(info: ModelInfo) -> bool:
    """Ollama's legacyEmbeddingsWereRaw: old BERT-style runners returned raw vectors, so the
    legacy endpoint keeps those raw; every other model's legacy vector is L2-normalised."""
    if info.gguf is None:
        return False
    kv, arch = info.gguf.kv, info.gguf.architecture
    if f"{arch}.pooling_type" not in kv:
        return False
    if arch == "bert":
        if kv.get("tokenizer.ggml.model", "bert") != "bert":
            return True
        return not bool(kv.get("normalize_embeddings", True))
    if arch in ("nomic-bert", "nomic-bert-moe"):
        return not bool(kv.get("normalize_embeddings", False))
    return False


def is_input_limit_error(text: str) -> bool:
    """A runner's refusal of an input for its length (Ollama's isEmbeddingInputLimitError)."""
    text = text.lower()
    return any(s in text for s in ("too large", "context size", "context length",
                                   "physical batch size", "exceeds the available context"))


# -- model lookup ------------------------------------------------------------------------------

def _model(service: Inference, name: str, *, invalid: PollamaError) -> ModelInfo:
    if not name or not parse(name).is_valid:
        raise invalid
    try:
        return service.model_info(name)
    except (ModelNotFound, InvalidModelName):
        raise ModelNotFound(name, f'model "{name}" not found, try pulling it first') from None


# -- /api/embed --------------------------------------------------------------------------------

class _Limits:
    """How many tokens an input may keep (EmbedHandler's adjustTokenLimit and context)."""

    def __init__(self, info: ModelInfo, handle: RunnerLike, num_ctx: int) -> None:
        kv = info.gguf.kv if info.gguf is not None else {}
        arch = info.gguf.architecture if info.gguf is not None else ""
        self.handle = handle
        self.bos = int(kv.get("tokenizer.ggml.bos_token_id") or 0)
        self.eos = int(kv.get("tokenizer.ggml.eos_token_id") or 0)
        # Ollama reads these through its KV accessor, which prefixes the architecture.
        self.add_bos = bool(kv.get(f"{arch}.add_bos_token", True))
        self.add_eos = bool(kv.get(f"{arch}.add_eos_token", True))
        self.context = min(num_ctx, info.n_ctx_train) if info.n_ctx_train > 0 else num_ctx

    def adjust(self, tokens: list[int], limit: int) -> int:
        if tokens and tokens[0] != self.bos and self.add_bos:
            limit -= 1
        if tokens and tokens[-1] != self.eos and self.add_eos:
            limit -= 1
        return limit

    async def tokens(self, text: str) -> tuple[list[int], int]:
        tokens = await self.handle.tokenize(text, add_special=False, parse_special=True)
        return tokens, self.adjust(tokens, self.context)

    async def truncated(self, text: str, cap: int = 0) -> tuple[str, bool]:
        """The text cut to its limit (and to `cap` tokens when given); whether it was cut."""
        tokens, limit = await self.tokens(text)
        if cap > 0:
            limit = min(limit, self.adjust(tokens, cap))
        if limit <= 0:
            raise EmbeddingError(NO_ROOM)
        if len(tokens) <= limit:
            return text, False
        return await self.handle.detokenize(tokens[:limit]), True

    async def checked(self, text: str) -> str:
        """`truncate: false`: the text as is, or Ollama's 400 when it is too long."""
        tokens, limit = await self.tokens(text)
        if limit <= 0:
            raise EmbeddingError(NO_ROOM)
        if len(tokens) > limit:
            raise EmbeddingError(INPUT_TOO_LONG)
        return text


async def _embed_runner(handle: RunnerLike, texts: list[str]) -> tuple[list[list[float]], int]:
    """The runner's raw vectors and tokens read; a refusal for length is INPUT_TOO_LONG."""
    embed = getattr(handle, "embed", None)
    if embed is None:
        raise BadRequest("this runner cannot embed")
    try:
        result = await embed(texts, truncate=False)
    except RequestRejected as err:
        if is_input_limit_error(str(err)):
            raise EmbeddingError(INPUT_TOO_LONG) from None
        raise EmbeddingError(str(err).strip()) from None
    return list(result), int(getattr(result, "prompt_eval_count", 0))


async def embed_inputs(service: Inference, req: EmbedRequest) -> dict[str, Any]:
    """Serve one `/api/embed` request: Ollama's EmbedResponse as a dict in its field order."""
    started = time.perf_counter_ns()
    info = _model(service, req.model, invalid=ModelNotFound(req.model))
    inputs = parse_input(req.input)
    keep_alive = parse_keep_alive(req.keep_alive)
    options = service.merged_options(info, req.options)
    async with service._acquire(info, options, keep_alive) as runner:
        load_ns = time.perf_counter_ns() - started
        if not inputs:
            return {"model": req.model, "embeddings": []}
        handle = runner.started()
        limits = _Limits(info, handle, runner.spec.num_ctx)
        if req.truncate is False:
            texts = list(await asyncio.gather(*(limits.checked(t) for t in inputs)))
        else:
            texts = [t for t, _ in await asyncio.gather(*(limits.truncated(t) for t in inputs))]
        try:
            vectors, count = await _embed_runner(handle, texts)
        except EmbeddingError as err:
            if err.message != INPUT_TOO_LONG or req.truncate is False:
                raise
            # One input still did not fit (num_batch of a non-causal model): embed one by one,
            # cutting what the runner refuses to num_batch tokens (Ollama's embedWithRetry).
            pairs = await asyncio.gather(*(_embed_retry(handle, limits, t, runner.spec.num_batch)
                                           for t in texts))
            vectors = [v for v, _ in pairs]
            count = sum(n for _, n in pairs)
        embeddings = [float32_values(finish(v, req.dimensions)) for v in vectors]
    return {"model": req.model, "embeddings": embeddings,
            "total_duration": time.perf_counter_ns() - started, "load_duration": load_ns,
            "prompt_eval_count": count}


async def _embed_retry(handle: RunnerLike, limits: _Limits, text: str,
                       num_batch: int) -> tuple[list[float], int]:
    try:
        vectors, count = await _embed_runner(handle, [text])
    except EmbeddingError as err:
        if err.message != INPUT_TOO_LONG:
            raise
        cut, shortened = await limits.truncated(text, num_batch)
        if not shortened:
            raise EmbeddingError(TRUNCATE_FAILED) from None
        vectors, count = await _embed_runner(handle, [cut])
    return vectors[0], count


# -- /api/embeddings (legacy) ------------------------------------------------------------------

async def embed_legacy(service: Inference, req: EmbeddingRequest) -> dict[str, Any]:
    """Serve one legacy `/api/embeddings` request: `{"embedding": [float64...]}` (EMB-06).

    No truncation; the vector is L2-normalised (llama-server's default) unless the model is
    one whose old runner returned raw vectors; a runner's failure is a 500."""
    info = _model(service, req.model, invalid=BadRequest("model is required"))
    keep_alive = parse_keep_alive(req.keep_alive)
    options = service.merged_options(info, req.options)
    async with service._acquire(info, options, keep_alive) as runner:
        if not req.prompt:
            return {"embedding": []}
        try:
            vectors, _ = await _embed_runner(runner.started(), [req.prompt])
        except EmbeddingError as err:
            raise PollamaError(err.message) from None
    vec = np.asarray(vectors[0], dtype=np.float32)
    if not np.isfinite(vec).all():
        raise PollamaError(NOT_FINITE)
    if not legacy_raw(info):
        norm = float(np.sqrt(np.dot(vec.astype(np.float64), vec.astype(np.float64))))
        vec = (vec.astype(np.float64) / (norm if norm > 0 else 1.0)).astype(np.float32)
    return {"embedding": vec.tolist()}
