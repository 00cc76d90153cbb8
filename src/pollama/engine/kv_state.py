"""Saved KV state: a prompt cache on disk that outlives the runner process.

A slot's KV cells (llama.cpp's sequence state, `llama_state_seq_get_data`) are written with
the tokens they hold, so a later runner of the same model and settings loads them back
(`llama_state_seq_set_data`) and evaluates only the rest of a prompt that extends them. This
module owns the files; the runner (`runner.py`) decides when to save and load.

One file per saved token list, `<key id>-<tokens hash>.kv`:

    MAGIC (8 bytes) | header length (u32 LE) | header (JSON: format, key, n_tokens,
    state_bytes, crc) | tokens (int64 LE × n_tokens) | state (state_bytes)

The key holds everything the cells depend on: the model file's identity (real path, size,
mtime: the path of a blob names its digest), adapters and projector likewise, llama-cpp-python's
version, the state format, num_ctx, the KV cache type and flash attention (V is stored
transposed without it). A file is trusted only if its key equals the runner's exactly, its
length matches its header and the CRC-32 of its tokens and state matches; anything else is
deleted and ignored, and the prompt is evaluated in full. Image positions are saved like text
(their negative ids come from the pixels' hash; the projector is part of the key).

Lookup is O(blocks): each file is indexed under a hash of its token prefix at every BLOCK
boundary; a prompt's own boundary hashes (longest first) find the files sharing its longest
block prefix, and the exact common prefix is counted on the tokens. A file whose tokens extend
another file's replaces it. The directory is kept under its size limit (least recently used
first out: a load touches the file's mtime), checked before each write; a write that would
leave the disk with less than DISK_RESERVE free is skipped with a log line. Writes go to a
temporary name and are renamed when complete, so no half-written file is ever read.
Writing (CRC, write, fsync, rename, eviction) runs on a thread of its own; only the copy out of
the context runs in the loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = 1
MAGIC = b"PLKVSTAT"
SUFFIX = ".kv"
BLOCK = 256  # prefixes are indexed at multiples of this many tokens
MIN_TOKENS = 256  # a shorter prefix evaluates faster than it saves and loads: never saved
LOAD_MIN_GAIN = 64  # load a file only when it offers this many more tokens than a slot
DISK_RESERVE = 1 << 30  # a write never leaves less free space on the disk than this
MAX_PENDING_BYTES = 1 << 30  # state copies waiting for the writer thread, at most
_HEAD = struct.Struct("<8sI")


def _log(message: str) -> None:
    print(f"kv state: {message}", file=sys.stderr)


def file_identity(path: str) -> dict[str, Any]:
    """What identifies a file's content cheaply: real path, size and mtime."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def make_key(*, model: str, adapters: list[str], projector: str | None, num_ctx: int,
             cache_type: str, flash_attention: str, engine: str) -> dict[str, Any]:
    """The fields a saved state must match exactly to be loaded."""
    return {
        "format": FORMAT, "engine": engine, "model": file_identity(model),
        "adapters": [file_identity(a) for a in adapters],
        "projector": file_identity(projector) if projector else None,
        "num_ctx": num_ctx, "cache_type": cache_type, "flash_attention": flash_attention,
    }


def _as_array(tokens: list[int] | np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(tokens, dtype="<i8")


def block_hashes(tokens: np.ndarray, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(length, hash of tokens[:length]) for every multiple of BLOCK up to `limit`."""
    end = len(tokens) if limit is None else min(limit, len(tokens))
    h = hashlib.blake2b(digest_size=16)
    data = tokens.tobytes()
    for n in range(BLOCK, end + 1, BLOCK):
        h.update(data[(n - BLOCK) * 8:n * 8])
        yield n, h.copy().digest()


def common_length(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the common prefix of two token arrays."""
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


@dataclass
class Entry:
    """One saved file of this runner's key, as the index knows it."""

    name: str
    tokens: np.ndarray
    size: int


class StateStore:
    """The saved states of one runner's key in a shared directory (other keys, other runners
    write there too: the size limit counts every file)."""

    def __init__(self, directory: str, limit: int, key: dict[str, Any]) -> None:
        self.dir = directory
        self.limit = limit
        self.key = key
        self.key_json = json.dumps(key, sort_keys=True)
        self.key_id = hashlib.blake2b(self.key_json.encode(), digest_size=8).hexdigest()
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._blocks: dict[bytes, set[str]] = {}
        self._jobs: queue.SimpleQueue[tuple[np.ndarray, Any] | None] = queue.SimpleQueue()
        self._pending = 0  # bytes of state queued or being written
        self._idle = threading.Condition(self._lock)
        os.makedirs(directory, exist_ok=True)
        self._scan()
        self._thread = threading.Thread(target=self._write_loop, name="kv-state", daemon=True)
        self._thread.start()

    # -- index -----------------------------------------------------------------------------

    def _scan(self) -> None:
        """Index this key's files (headers only); drop bad ones and stale temporary files."""
        for entry in os.scandir(self.dir):
            name = entry.name
            if name.endswith(".tmp"):
                self._clean_tmp(entry)
            elif name.startswith(self.key_id + "-") and name.endswith(SUFFIX):
                try:
                    tokens, _ = self._read(name, with_state=False)
                    size = entry.stat().st_size
                except (OSError, ValueError) as e:
                    _log(f"ignoring {name}: {e}")
                    self._unlink(name)
                    continue
                self._add(Entry(name, tokens, size))
        if self._entries:
            _log(f"{len(self._entries)} saved prompts for this model in {self.dir}")

    def _clean_tmp(self, entry: os.DirEntry[str]) -> None:
        """A temporary file whose writer is gone (its pid is in the name) is removed."""
        try:
            pid = int(entry.name.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            pid = 0
        if pid > 0 and pid != os.getpid():
            try:
                os.kill(pid, 0)
                return  # another runner is writing it
            except ProcessLookupError:
                pass
            except PermissionError:
                return
        self._unlink(entry.name)

    def _add(self, entry: Entry) -> None:
        with self._lock:
            self._entries[entry.name] = entry
            for _, h in block_hashes(entry.tokens):
                self._blocks.setdefault(h, set()).add(entry.name)

    def _forget(self, name: str) -> None:
        with self._lock:
            entry = self._entries.pop(name, None)
            if entry is None:
                return
            for _, h in block_hashes(entry.tokens):
                names = self._blocks.get(h)
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self._blocks[h]

    def lookup(self, prompt: list[int]) -> tuple[Entry | None, int]:
        """The saved file sharing the longest prefix with `prompt`, and that length."""
        tokens = _as_array(prompt)
        hashes = list(block_hashes(tokens))
        with self._lock:
            for _, h in reversed(hashes):
                names = self._blocks.get(h)
                if not names:
                    continue
                best, best_len = None, 0
                for name in names:
                    entry = self._entries[name]
                    n = common_length(entry.tokens, tokens)
                    if n > best_len:
                        best, best_len = entry, n
                if best is not None:
                    return best, best_len
        return None, 0

    def __len__(self) -> int:
        return len(self._entries)

    # -- reading ---------------------------------------------------------------------------

    def _read(self, name: str, with_state: bool) -> tuple[np.ndarray, bytearray]:
        """A file's tokens (and state), every check passed; ValueError says which failed."""
        path = os.path.join(self.dir, name)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(_HEAD.size)
            if len(head) != _HEAD.size:
                raise ValueError("truncated header")
            magic, header_len = _HEAD.unpack(head)
            if magic != MAGIC or header_len > 1 << 20:
                raise ValueError("not a saved KV state")
            header = json.loads(f.read(header_len))
            if json.dumps(header.get("key"), sort_keys=True) != self.key_json:
                raise ValueError("saved for another model or other settings")
            n_tokens, state_bytes = int(header["n_tokens"]), int(header["state_bytes"])
            if size != _HEAD.size + header_len + 8 * n_tokens + state_bytes:
                raise ValueError(f"{size} bytes, the header says otherwise")
            raw = f.read(8 * n_tokens)
            tokens = np.frombuffer(raw, dtype="<i8")
            if not name.endswith(f"-{_tokens_id(tokens)}{SUFFIX}"):
                raise ValueError("its tokens do not match its name")
            if not with_state:
                return tokens, bytearray()
            state = bytearray(state_bytes)
            if f.readinto(state) != state_bytes:
                raise ValueError("truncated")
        if zlib.crc32(state, zlib.crc32(raw)) != int(header["crc"]):
            raise ValueError("checksum mismatch")
        return tokens, state

    def read(self, entry: Entry) -> bytearray | None:
        """The state of a file the index holds, checked; None (file deleted) if it fails."""
        try:
            tokens, state = self._read(entry.name, with_state=True)
            if not np.array_equal(tokens, entry.tokens):
                raise ValueError("its tokens changed")
        except (OSError, ValueError, KeyError) as e:
            self.discard(entry, str(e))
            return None
        with contextlib.suppress(OSError):
            os.utime(os.path.join(self.dir, entry.name))  # most recently used
        return state

    def discard(self, entry: Entry, reason: str) -> None:
        """A file that failed to load: ignored from now on and deleted."""
        _log(f"discarding {entry.name}: {reason}")
        self._forget(entry.name)
        self._unlink(entry.name)

    def _unlink(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.dir, name))

    # -- writing ---------------------------------------------------------------------------

    def has(self, tokens: list[int]) -> bool:
        """Whether exactly these tokens are saved already."""
        return f"{self.key_id}-{_tokens_id(_as_array(tokens))}{SUFFIX}" in self._entries

    def room_for(self, state_bytes: int) -> bool:
        """Whether a copy of this size may be queued (the writer's backlog is bounded)."""
        with self._lock:
            return self._pending + state_bytes <= MAX_PENDING_BYTES \
                and state_bytes <= self.limit

    def save(self, tokens: list[int], state: Any) -> None:
        """Queue a state copy (a buffer, owned from now on) for the writer thread."""
        with self._lock:
            self._pending += len(state)
        self._jobs.put((_as_array(tokens), state))

    def flush(self, timeout: float) -> bool:
        """Wait until queued writes are done (at most `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        self._jobs.put(None)

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            tokens, state = job
            try:
                self._write(tokens, state)
            except Exception as e:  # a failed write loses a cache entry, nothing else
                _log(f"could not save {len(tokens)} tokens: {e}")
            finally:
                with self._idle:
                    self._pending -= len(state)
                    self._idle.notify_all()

    def _write(self, tokens: np.ndarray, state: Any) -> None:
        raw = tokens.tobytes()
        view = memoryview(state)
        header = json.dumps({"key": self.key, "n_tokens": len(tokens),
                             "state_bytes": len(view),
                             "crc": zlib.crc32(view, zlib.crc32(raw))}).encode()
        size = _HEAD.size + len(header) + len(raw) + len(view)
        name = f"{self.key_id}-{_tokens_id(tokens)}{SUFFIX}"
        if size > self.limit:
            _log(f"not saving {len(tokens)} tokens: {size} bytes exceed the limit "
                 f"({self.limit})")
            return
        self._evict(size)
        free = shutil.disk_usage(self.dir).free
        if free - size < DISK_RESERVE:
            _log(f"not saving {len(tokens)} tokens ({size} bytes): {free} bytes free on disk")
            return
        tmp = os.path.join(self.dir, f".{name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(_HEAD.pack(MAGIC, len(header)))
                f.write(header)
                f.write(raw)
                f.write(view)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.dir, name))
        except BaseException:
            self._unlink(os.path.basename(tmp))
            raise
        self._forget(name)
        self._add(Entry(name, tokens, size))
        # A file whose tokens this one extends is redundant: loading this one and dropping
        # the tail gives the same cells.
        with self._lock:
            shorter = [e.name for e in self._entries.values()
                       if e.name != name and len(e.tokens) <= len(tokens)
                       and np.array_equal(e.tokens, tokens[:len(e.tokens)])]
        for old in shorter:
            self._forget(old)
            self._unlink(old)

    def _evict(self, incoming: int) -> None:
        """Delete the least recently used files (any key) until `incoming` bytes fit."""
        files = []
        total = 0
        for entry in os.scandir(self.dir):
            if not entry.name.endswith(SUFFIX):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            files.append((st.st_mtime_ns, entry.name, st.st_size))
            total += st.st_size
        files.sort()
        for _, name, size in files:
            if total + incoming <= self.limit:
                break
            self._forget(name)
            self._unlink(name)
            total -= size


def _tokens_id(tokens: np.ndarray) -> str:
    return hashlib.blake2b(tokens.tobytes(), digest_size=12).hexdigest()
