"""The wire protocol between the server (`handle.py`) and one runner process (`runner.py`).

Framing: newline-delimited JSON, one object per line, UTF-8. The server writes to the runner's
stdin, the runner answers on its stdout; the runner's stderr is its log. The runner's stdin
reaching EOF means the server is gone: the runner exits.

Start-up (runner → server, exactly one of):

    {"ready": {"n_ctx": 8192, "num_ctx": 2048, "num_parallel": 4, "n_ctx_train": 8192,
               "n_vocab": 49152, "n_embd": 576, "bos": 1, "eos": 2, "add_bos": false,
               "eog": [2, ...], "model_size": 96576768, "kv_bytes": 50331648,
               "memory_bytes": 146908416, "embedding": false, "pooling": "mean" | null,
               "vision": false, "media_marker": "<__media__>", "adapters": [...],
               "pid": 1234, ...}}
        vision: the runner was started with a projector (--mmproj) and takes images;
        media_marker: the text that stands for one image in a prompt
    {"fatal": "error loading model: ..."}          (then the runner exits non-zero)

Requests (server → runner); `id` is any JSON scalar, unique among the server's in-flight ones:

    {"op": "completion", "id": 1, "prompt": "text" | [token ids],
     "options": {ollama options: temperature, top_k, top_p, min_p, typical_p, repeat_last_n,
                 repeat_penalty, presence_penalty, frequency_penalty, seed, mirostat,
                 mirostat_tau, mirostat_eta, num_predict, num_keep, stop},
     "stop": [...], "num_predict": n, "num_keep": n, "seed": n,      (override options)
     "grammar": "GBNF" | null (the server turns Ollama's `format` into one: grammar.py),
     "shift": true, "truncate": true, "logprobs": false, "top_logprobs": 0,
     "stream": true,    (false: the text comes in one message right before `done`)
     "images": ["base64 of an image file", ...]}
        images (vision runners only): PNG, JPEG, GIF, BMP, ... files, one per media_marker in
        the text prompt, in order; the prompt must go on with text after its last image.
        An image stands in token lists (`tokens` of `done`, tokenize) as one negative id
        per position it takes, derived from a hash of its pixels.
    {"op": "cancel", "id": 1}                     frees the request's slot before the next step
    {"op": "tokenize", "id": 2, "text": "...", "add_special": true, "parse_special": true,
     "images": [...]}      (optional, as in completion: the count includes the images)
    {"op": "detokenize", "id": 3, "tokens": [...]}
    {"op": "embed", "id": 4, "texts": ["..."], "truncate": true}
    {"op": "status", "id": 5}                     (also answers "ping")
    {"op": "shutdown"}

Responses (runner → server), each carrying the request's `id`:

    completion  {"id", "text": "...", "logprobs"?: [{token, logprob, bytes, top_logprobs}]}
                ... (text may batch several tokens when the server reads slowly), then
                {"id", "done": true, "done_reason": "stop" | "length", "prompt_eval_count",
                 "prompt_eval_duration", "eval_count", "eval_duration", "prompt_cached",
                 "truncated", "tokens": [prompt + generated ids],
                 "stop_sequence"?: the stop string that ended it}
    tokenize    {"id", "tokens": [...]}   (with images, also "count": tokens the prompt costs;
                                          an image's tokens are its negative id, repeated)
    detokenize  {"id", "text": "..."}
    embed       {"id", "embeddings": [[...], ...], "prompt_eval_count": n}
    status      {"id", "ok": true, "slots": 4, "busy": [0, 2], "queued": 0,
                 "cells": [tokens in each slot's KV cache],
                 "images_encoded": n, "images_cached": n, "images_encoding": n,
                 "kv_saved": n}
                 (the image counters on vision runners only; kv_saved, the saved prompt
                 states of this runner's key, with --state-dir only)
    any         {"id", "error": "...", "code": "bad_request" | "prompt_too_long" | "internal"}

Images never crash a runner: one it cannot decode fails its request (`bad_request`, "image 1:
cannot decode the image ..."), as do images sent to a runner without a projector ("images need
a vision model: this model has no projector") and a marker count that differs from the images'.

A cancelled completion ends with its `done` message (done_reason "cancel") unless the server
has stopped listening. Durations are integer nanoseconds.
"""

from __future__ import annotations

import json
import os
import select
import threading
from typing import Any

CODE_BAD_REQUEST = "bad_request"
CODE_PROMPT_TOO_LONG = "prompt_too_long"
CODE_INTERNAL = "internal"

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_escape = json.encoder.encode_basestring  # C: a str as a JSON string literal
_decoder = json.JSONDecoder()


def encode(message: dict[str, Any]) -> bytes:
    """One message as a protocol line (compact JSON + newline)."""
    return (_encoder.encode(message) + "\n").encode("utf-8")


def decode(line: bytes) -> dict[str, Any]:
    """One protocol line back into a message (raises ValueError on garbage)."""
    message = _decoder.decode(line.decode("utf-8"))
    if not isinstance(message, dict):
        raise ValueError(f"protocol message is not an object: {line[:80]!r}")
    return message


class Outbox:
    """The runner's stdout: writes at once while the server keeps up, queues while it lags.

    A message is written straight to the non-blocking pipe by the calling thread when nothing
    is queued, so no token waits when the server is idle. When the pipe is full, messages
    queue behind the unwritten bytes, a request's text chunks merge into one, and a flusher
    thread writes them as the server reads.
    """

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._backlog = b""  # the unwritten rest of a partial write, always first
        self._items: list[dict[str, Any]] = []  # messages queued behind the backlog
        self._open: dict[Any, dict[str, Any]] = {}  # request id → its text chunk in _items
        self._busy = False  # the flusher owns the pipe until backlog and queue are empty
        self._broken = False
        self._closed = False
        self._thread = threading.Thread(target=self._flush, name="outbox", daemon=True)
        self._thread.start()

    def send(self, message: dict[str, Any]) -> None:
        """Write (or queue) any message; it ends the merging of its request's text."""
        with self._lock:
            if self._busy:
                self._open.pop(message.get("id"), None)
                self._items.append(message)
            else:
                self._write(encode(message))

    def texts(self, chunks: list[tuple[Any, str, list[dict[str, Any]] | None]]) -> None:
        """Write one step's generated text, one `(id, text, logprobs)` per request."""
        with self._lock:
            if not self._busy:
                self._write(b"".join([_text_line(*c) for c in chunks]))
                return
            for rid, text, logprobs in chunks:
                chunk = self._open.get(rid)
                if chunk is None:
                    self._open[rid] = chunk = _chunk(rid, text, logprobs)
                    self._items.append(chunk)
                else:
                    chunk["text"] += text
                    if logprobs:
                        chunk["logprobs"].extend(logprobs)

    def close(self, timeout: float = 5.0) -> None:
        """Let the flusher write what is queued (for up to `timeout` seconds), then stop it."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)

    def _write(self, data: bytes) -> None:  # lock held, not busy
        if self._broken:
            return
        try:
            n = os.write(self._fd, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self._broken = True  # the server is gone; the stdin reader will see EOF
            return
        if n < len(data):
            self._backlog = data[n:]
            self._busy = True
            self._wake.notify()

    def _flush(self) -> None:
        while True:
            with self._lock:
                while not self._busy and not self._closed:
                    self._wake.wait()
                if not self._busy:
                    return
                data = self._backlog + b"".join([encode(m) for m in self._items])
                self._items = []
                self._open.clear()
            try:
                select.select([], [self._fd], [])
                n = os.write(self._fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                n, self._broken = len(data), True
            with self._lock:
                self._backlog = data[n:]
                if self._broken:
                    self._backlog, self._items = b"", []
                if not self._backlog and not self._items:
                    self._busy = False


def _text_line(rid: Any, text: str, logprobs: list[dict[str, Any]] | None) -> bytes:
    """A text chunk's line, built without the JSON encoder when it has no logprobs (hot path)."""
    if logprobs is not None:
        return encode(_chunk(rid, text, logprobs))
    rid_json = rid if type(rid) is int else _encoder.encode(rid)
    return f'{{"id":{rid_json},"text":{_escape(text)}}}\n'.encode()


def _chunk(rid: Any, text: str, logprobs: list[dict[str, Any]] | None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": rid, "text": text}
    if logprobs is not None:
        chunk["logprobs"] = logprobs
    return chunk
