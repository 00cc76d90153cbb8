"""The wire protocol between the server (`handle.py`) and one runner process (`runner.py`).

Framing: newline-delimited JSON, one object per line, UTF-8. The server writes to the runner's
stdin, the runner answers on its stdout; the runner's stderr is its log. The runner's stdin
reaching EOF means the server is gone: the runner exits.

Start-up (runner → server, exactly one of):

    {"ready": {"n_ctx": 8192, "num_ctx": 2048, "num_parallel": 4, "n_ctx_train": 8192,
               "n_vocab": 49152, "n_embd": 576, "bos": 1, "eos": 2, "add_bos": false,
               "eog": [2, ...], "model_size": 96576768, "kv_bytes": 50331648,
               "memory_bytes": 146908416, "embedding": false, "pooling": "mean" | null,
               "pid": 1234, ...}}
    {"fatal": "error loading model: ..."}          (then the runner exits non-zero)

Requests (server → runner); `id` is any JSON scalar, unique among the server's in-flight ones:

    {"op": "completion", "id": 1, "prompt": "text" | [token ids],
     "options": {ollama options: temperature, top_k, top_p, min_p, typical_p, repeat_last_n,
                 repeat_penalty, presence_penalty, frequency_penalty, seed, mirostat,
                 mirostat_tau, mirostat_eta, num_predict, num_keep, stop},
     "stop": [...], "num_predict": n, "num_keep": n, "seed": n,      (override options)
     "grammar": "GBNF" | null, "format": "json" | {JSON schema} | null (when no grammar),
     "shift": true, "truncate": true, "logprobs": false, "top_logprobs": 0}
    {"op": "cancel", "id": 1}                     frees the request's slot before the next step
    {"op": "tokenize", "id": 2, "text": "...", "add_special": true, "parse_special": true}
    {"op": "detokenize", "id": 3, "tokens": [...]}
    {"op": "embed", "id": 4, "texts": ["..."], "truncate": true}
    {"op": "status", "id": 5}                     (also answers "ping")
    {"op": "shutdown"}

Responses (runner → server), each carrying the request's `id`:

    completion  {"id", "text": "...", "logprobs"?: [{token, logprob, bytes, top_logprobs}]}
                ... (text may batch several tokens when the server reads slowly), then
                {"id", "done": true, "done_reason": "stop" | "length", "prompt_eval_count",
                 "prompt_eval_duration", "eval_count", "eval_duration", "prompt_cached",
                 "truncated", "tokens": [prompt + generated ids]}
    tokenize    {"id", "tokens": [...]}
    detokenize  {"id", "text": "..."}
    embed       {"id", "embeddings": [[...], ...], "prompt_eval_count": n}
    status      {"id", "ok": true, "slots": 4, "busy": [0, 2], "queued": 0}
    any         {"id", "error": "...", "code": "bad_request" | "prompt_too_long" | "internal"}

A cancelled completion ends with its `done` message (done_reason "cancel") unless the server
has stopped listening. Durations are integer nanoseconds.
"""

from __future__ import annotations

import json
from typing import Any

CODE_BAD_REQUEST = "bad_request"
CODE_PROMPT_TOO_LONG = "prompt_too_long"
CODE_INTERNAL = "internal"

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(message: dict[str, Any]) -> bytes:
    """One message as a protocol line (compact JSON + newline)."""
    return (_encoder.encode(message) + "\n").encode("utf-8")


def decode(line: bytes) -> dict[str, Any]:
    """One protocol line back into a message (raises ValueError on garbage)."""
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"protocol message is not an object: {line[:80]!r}")
    return message
