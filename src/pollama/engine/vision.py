"""Images in a runner: llama.cpp's mtmd (the `--mmproj` projector) next to the text model.

`Vision` owns the mtmd context. Its work splits across two threads of the runner:

- the vision worker thread (`VisionWorker`) does everything heavy that only touches the mtmd
  (clip) context: decoding the image files (stb), `mtmd_tokenize` (text chunks + image
  chunks, the images preprocessed), and `mtmd_encode_chunk` (the vision encoder and projector),
  one job at a time, so the mtmd context is only ever used by that thread for them;
- the loop thread, which alone uses the llama context, decodes an encoded image into a slot's
  sequence with `mtmd_helper_decode_image_chunk` (positions for M-RoPE projectors, causal
  attention off for non-causal ones), as a decode of its own.

A prompt with images is a `VisionPrompt`: its token list holds, for each image, one id per
position it takes, all equal to the image's negative id (`image_id`, from the hash mtmd gives
the bitmap), so comparing token lists compares images too: KV prefix reuse works across turns
that repeat an image. The encoded embeddings are kept in a small LRU (`EmbeddingCache`) by the
same hash, so another slot sending the same image does not encode it again.

The clip context loads its weights into plain CPU buffers (mtmd_context_params has no extra
buffer types to switch), so a CPU that faults on repacked weights is safe here either way.
"""

from __future__ import annotations

import base64
import binascii
import collections
import ctypes
import hashlib
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_cpp import llama_cpp as C
from llama_cpp import mtmd_cpp as M

from pollama.engine.model import FLASH_ATTENTION_TYPES, LoadedModel, log_callback

NO_PROJECTOR = "images need a vision model: this model has no projector"
CACHE_ENTRIES = 16  # encoded images kept by hash
CACHE_BYTES = 256 << 20


def default_marker() -> str:
    """The text that stands for one image in a prompt (mtmd's default media marker)."""
    return (M.mtmd_default_marker() or b"<__media__>").decode()


def image_id(key: str) -> int:
    """The negative token id an image's positions carry in token lists (from its hash)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return -1 - (int.from_bytes(digest, "little") & 0x3FFFFFFF)


@dataclass(slots=True)
class ImageSpan:
    """One image of a prompt: where it starts, how many positions and tokens it takes."""

    index: int  # its place among the request's images (0-based), for error texts
    start: int  # position of its first token in the prompt
    n_pos: int  # positions it takes (= n_tokens except for M-RoPE projectors)
    n_tokens: int  # embeddings (KV cells) it takes
    key: str  # hash of the image: cache key
    chunk: Any  # its mtmd_input_chunk (owned by the VisionPrompt)

    @property
    def end(self) -> int:
        return self.start + self.n_pos


class VisionPrompt:
    """A tokenized prompt with images: token ids (images as their ids) and the image chunks."""

    def __init__(self, chunks: Any, tokens: list[int], images: list[ImageSpan],
                 n_tokens: int) -> None:
        self._chunks = chunks
        self.tokens = tokens
        self.images = images
        self.n_tokens = n_tokens  # mtmd_helper_get_n_tokens: KV cells the prompt needs

    def close(self) -> None:
        """Free the chunks (idempotent; the loop thread calls it when the request ends)."""
        if self._chunks is not None:
            M.mtmd_input_chunks_free(self._chunks)
            self._chunks = None
            for image in self.images:
                image.chunk = None


class ImageError(ValueError):
    """An image the request sent cannot be used (not decodable, wrong count, ...)."""


class EmbeddingCache:
    """Encoded images by hash, least recently used first out (at most CACHE_ENTRIES / BYTES)."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES) -> None:
        self._items: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._entries = entries
        self._max_bytes = max_bytes
        self._bytes = 0

    def get(self, key: str) -> np.ndarray | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._items[key] = value
        self._bytes += value.nbytes
        while len(self._items) > 1 and (len(self._items) > self._entries
                                        or self._bytes > self._max_bytes):
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class Vision:
    """The mtmd context of a runner started with `--mmproj`."""

    def __init__(self, path: str, model: LoadedModel) -> None:
        M.mtmd_helper_log_set(log_callback(), ctypes.c_void_p(0))
        params = M.mtmd_context_params_default()
        params.use_gpu = False
        params.n_threads = model.threads
        params.print_timings = False
        params.warmup = True  # a CPU that faults on the encoder's kernels faults while loading
        params.flash_attn_type = FLASH_ATTENTION_TYPES[model.options.flash_attention]
        self.model = model
        self.ctx = M.mtmd_init_from_file(path.encode(), model.model.model, params)
        if not self.ctx:
            raise RuntimeError(f"failed to load the projector: {path}")
        if not M.mtmd_support_vision(self.ctx):
            M.mtmd_free(self.ctx)
            self.ctx = None
            raise RuntimeError(f"the projector has no vision encoder: {path}")
        self.marker = default_marker()
        self.mrope = bool(M.mtmd_decode_use_mrope(self.ctx))
        self.n_embd = C.llama_model_n_embd_inp(model.model.model)
        self.encodes = 0  # images encoded since start (status reports it)

    def close(self) -> None:
        if self.ctx:
            M.mtmd_free(self.ctx)
            self.ctx = None

    # -- worker thread ---------------------------------------------------------------------

    def tokenize(self, text: str, images: list[bytes], add_special: bool = True,
                 parse_special: bool = True) -> VisionPrompt:
        """Decode the images and tokenize text + images (one marker per image, in order)."""
        bitmaps = []
        try:
            for i, data in enumerate(images):
                buf = (ctypes.c_uint8 * max(1, len(data))).from_buffer_copy(data or b"\0")
                bitmap = M.mtmd_helper_bitmap_init_from_buf(self.ctx, buf, len(data), False) \
                    if data else None
                if not bitmap:
                    raise ImageError(f"image {i}: cannot decode the image (not a PNG, JPEG, "
                                     "GIF, BMP or other format stb_image reads)")
                bitmaps.append(bitmap)
                M.mtmd_bitmap_set_id(bitmap, _pixels_key(bitmap).encode())
            markers = text.count(self.marker)
            if markers != len(images):
                raise ImageError(f"the prompt has {markers} image markers ({self.marker}) "
                                 f"for {len(images)} images")
            data_b = text.encode("utf-8")
            text_in = M.mtmd_input_text(data_b, len(data_b), add_special, parse_special)
            chunks = M.mtmd_input_chunks_init()
            array = (M.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
            rc = M.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text_in), array, len(bitmaps))
            if rc != 0:
                M.mtmd_input_chunks_free(chunks)
                raise ImageError("the prompt's images do not match its image markers"
                                 if rc == 1 else f"failed to preprocess the images (code {rc})")
        finally:
            for bitmap in bitmaps:
                M.mtmd_bitmap_free(bitmap)
        return self._prompt(chunks)

    def _prompt(self, chunks: Any) -> VisionPrompt:
        tokens: list[int] = []
        images: list[ImageSpan] = []
        n = M.mtmd_input_chunks_size(chunks)
        for i in range(n):
            chunk = M.mtmd_input_chunks_get(chunks, i)
            kind = M.mtmd_input_chunk_get_type(chunk)
            if kind == M.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t(0)
                ptr = M.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                tokens.extend(ptr[: count.value] if count.value else [])
                continue
            if kind != M.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                M.mtmd_input_chunks_free(chunks)
                raise ImageError("only images are supported (no audio)")
            raw = M.mtmd_input_chunk_get_id(chunk)
            if not raw:
                M.mtmd_input_chunks_free(chunks)
                raise ImageError("an image chunk has no id")
            key = raw.decode("utf-8", "replace")
            n_pos = M.mtmd_input_chunk_get_n_pos(chunk)
            n_tokens = M.mtmd_input_chunk_get_n_tokens(chunk)
            images.append(ImageSpan(len(images), len(tokens), n_pos, n_tokens, key, chunk))
            tokens.extend([image_id(key)] * n_pos)
        return VisionPrompt(chunks, tokens, images, M.mtmd_helper_get_n_tokens(chunks))

    def copy_chunk(self, chunk: Any) -> Any:
        """A copy of an image chunk that the worker owns (the request may end meanwhile)."""
        copy = M.mtmd_input_chunk_copy(chunk)
        if not copy:
            raise RuntimeError("failed to copy an image chunk")
        return copy

    def encode(self, chunk: Any) -> np.ndarray:
        """Run the vision encoder and projector on one image chunk (frees the chunk copy)."""
        try:
            n_tokens = M.mtmd_input_chunk_get_n_tokens(chunk)
            rc = M.mtmd_encode_chunk(self.ctx, chunk)
            if rc != 0:
                raise RuntimeError(f"failed to encode the image (code {rc})")
            ptr = M.mtmd_get_output_embd(self.ctx)
            if not ptr:
                raise RuntimeError("the projector returned no embeddings")
            self.encodes += 1
            return np.ctypeslib.as_array(ptr, shape=(n_tokens * self.n_embd,)).copy()
        finally:
            M.mtmd_input_chunk_free(chunk)

    # -- loop thread -----------------------------------------------------------------------

    def non_causal(self, chunk: Any) -> bool:
        return bool(M.mtmd_decode_use_non_causal(self.ctx, chunk))

    def decode(self, chunk: Any, embd: np.ndarray, n_past: int, seq: int, n_batch: int) -> int:
        """Decode an encoded image into `seq` from position `n_past` (its own llama_decodes);
        llama_decode's code (0 = done)."""
        new_n_past = C.llama_pos(0)
        embd_ptr = embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        return int(M.mtmd_helper_decode_image_chunk(
            self.ctx, self.model.ctx, chunk, embd_ptr, n_past, seq, n_batch,
            ctypes.byref(new_n_past), M.mtmd_helper_post_decode_callback(), None))


def _pixels_key(bitmap: Any) -> str:
    """A hash of a decoded image (size and RGB pixels): the same picture sent as PNG or JPEG
    of the same pixels is the same image."""
    nx, ny = M.mtmd_bitmap_get_nx(bitmap), M.mtmd_bitmap_get_ny(bitmap)
    n = M.mtmd_bitmap_get_n_bytes(bitmap)
    data = M.mtmd_bitmap_get_data(bitmap)
    h = hashlib.blake2b(f"{nx}x{ny}:".encode(), digest_size=16)
    if data and n:
        h.update(ctypes.string_at(data, n))
    return h.hexdigest()


def decode_images(raw: Any) -> list[bytes]:
    """The protocol's `images` (base64 strings) as bytes; ImageError names the bad one."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ImageError("images must be a list of base64 strings")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise ImageError(f"image {i}: not a base64 string")
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise ImageError(f"image {i}: invalid base64 data") from None
    return out


class Done:
    """A finished worker job, for the loop thread: `run()` calls `done(result)` there."""

    __slots__ = ("done", "result")

    def __init__(self, done: Callable[[Any], None], result: Any) -> None:
        self.done = done
        self.result = result

    def run(self) -> None:
        self.done(self.result)


class VisionWorker:
    """The thread that runs the mtmd jobs (tokenize, encode) one at a time, off the loop.

    Each result goes back through `post` (the runner's inbox) as a `Done`, which the loop
    thread runs between steps; a job never raises out of the thread: an exception is the
    result.
    """

    def __init__(self, vision: Vision, post: Callable[[Any], None]) -> None:
        self.vision = vision
        self._post = post
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Callable[[Any], None]] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="vision", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `work()` on the worker; the loop then runs `done(result or exception)`."""
        self._jobs.put((work, done))

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the current job; whether the thread ended in time."""
        self._jobs.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            work, done = job
            try:
                result: Any = work()
            except Exception as e:  # handed back: the request fails, the runner goes on
                if not isinstance(e, ValueError):
                    traceback.print_exc(file=sys.stderr)
                result = e
            self._post(Done(done, result))
