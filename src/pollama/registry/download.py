"""Resumable, parallel, verified blob downloads, shared by every pull that needs the blob.

One `BlobDownload` per blob file runs as a detached asyncio task; each pull that needs the blob
`wait`s on it and gets progress every 60 ms. The task is cancelled only when the last waiter
leaves (REG-07), so a client that disconnects does not stop another one's pull.

On disk, as Ollama does it (REG-04/05), so either program resumes the other's download:

- `<blob>-partial`: the bytes, written at their offsets (a sparse file of the full size);
- `<blob>-partial-<N>`: JSON `{"N","Offset","Size","Completed"}` of part N, where Completed is
  the length of the part's prefix that is written; rewritten (atomically) every half second and
  when the download stops for any reason.

Parts are total/16 bytes clamped to [100 MB, 1000 MB] (Ollama's sizes, for the state files).
The bytes themselves are fetched in chunks (`ChunkCursor`: about a second of transfer each), in
blob order, by one or more streams, each a ranged GET on a kept-alive connection (ranges.py).
In order, so that a hasher thread follows the written prefix and the digest is known moments
after the last byte (Ollama fetches 16 parts side by side and hashes the whole file afterwards).
How many streams adapts to the link (`StreamScaler`): a CDN that paces each connection gets up
to 16, a fast local registry one or two (more would only contend for the CPU). The first answer
confirms the size (no HEAD) and names the direct URL: after a redirect to another host (a CDN),
later ranges go straight there, without the Authorization header (REG-04).

A failed chunk is retried up to 6 times (sleeping 2^n s); one that receives nothing for 30 s is
"stalled" and restarted without using an attempt. The blob gets its final name only after its
sha256 equals the digest; on a mismatch the partial files are deleted. Disk full (ENOSPC) stops
at once and deletes the partial files to give the space back; any other failure or a
cancellation keeps them for the next attempt.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from pollama.registry import auth
from pollama.registry.client import USER_AGENT, RegistryClient
from pollama.registry.errors import (
    BlobDigestMismatch,
    BlobSizeMismatch,
    MaxRetriesExceeded,
    RegistryError,
    Unauthorized,
)
from pollama.registry.progress import TICK, Progress, transfer
from pollama.registry.ranges import RangeBroken, RangeClient, RangeStalled, ReauthNeeded
from pollama.store import Store
from pollama.store.blobs import storage_error

log = logging.getLogger("pollama.registry")

T = TypeVar("T")

NUM_PARTS = 16
MIN_PART_SIZE = 100 * 1000 * 1000
MAX_PART_SIZE = 1000 * 1000 * 1000
FIRST_CHUNK_SIZE = 16 * 1000 * 1000
MIN_CHUNK_SIZE = 8 * 1000 * 1000
CHUNK_SECONDS = 1.0
INITIAL_STREAMS = 1
MAX_STREAMS = 16  # Ollama's 16 parts at a time
MAX_RETRIES = 6
BACKOFF_BASE = 1.0  # seconds; attempt n sleeps BACKOFF_BASE * 2**n
STATE_INTERVAL = 0.5  # seconds between rewrites of the state files
HASH_BLOCK = 8 << 20  # bytes hashed per read
HASH_STEP = 1 << 20  # bytes the hasher waits for
HASH_NAP, HASH_NAP_MAX = 0.001, 0.05  # seconds the hasher sleeps while it waits
SMALL_BLOB = 1 << 20  # blobs up to this size are fetched with one plain GET


async def with_retries(step: Callable[[], Awaitable[T]],
                       failed: Callable[[int, Exception, float], None] | None = None) -> T:
    """Run `step` up to MAX_RETRIES times, BACKOFF_BASE * 2**n seconds apart (REG-06): network
    errors and 5xx/429 answers are tried again, other registry errors end it at once.
    `failed(attempt, error, sleep)` hears of each failure that is tried again."""
    for attempt in range(MAX_RETRIES):
        try:
            return await step()
        except (httpx.TransportError, RegistryError) as err:
            if isinstance(err, RegistryError) and not err.transient:
                raise
            if attempt == MAX_RETRIES - 1:
                raise MaxRetriesExceeded(f"max retries exceeded: {err}") from err
            sleep = BACKOFF_BASE * 2 ** attempt
            if failed is not None:
                failed(attempt, err, sleep)
            await asyncio.sleep(sleep)
    raise AssertionError("unreachable: the last attempt returns or raises")


def part_sizes(total: int) -> list[tuple[int, int]]:
    """(offset, size) of each part: total/16 clamped to [100 MB, 1000 MB] (REG-04)."""
    size = min(max(total // NUM_PARTS, MIN_PART_SIZE), MAX_PART_SIZE)
    return [(off, min(size, total - off)) for off in range(0, total, size)]


class ChunkCursor:
    """Hands out the missing bytes of the blob in order, one chunk (ranged GET) at a time.

    A stream asks for about CHUNK_SECONDS of transfer at its own last rate (16 MB to start):
    long next to a request's round trip, which costs a few ms even on loopback. With several
    streams, chunks shrink toward the end to what is left over twice the streams (guided
    scheduling, down to 8 MB), so that the streams finish about together and little is left
    to hash after the last byte. Chunks never cross parts."""

    def __init__(self, parts: list[Part]) -> None:
        self._parts = collections.deque(p for p in parts if p.completed < p.size)
        self._pos = self._parts[0].offset + self._parts[0].completed if self._parts else 0
        self.remaining = sum(p.size - p.completed for p in self._parts)

    def __bool__(self) -> bool:
        return self.remaining > 0

    def take(self, streams: int, rate: float | None) -> Chunk:
        """The next chunk for a stream that last moved `rate` bytes/s (None: not yet)."""
        part = self._parts[0]
        size = int(rate * CHUNK_SECONDS) if rate else FIRST_CHUNK_SIZE
        if streams > 1:
            size = min(size, -(-self.remaining // (2 * streams)))
        size = min(max(size, MIN_CHUNK_SIZE), part.offset + part.size - self._pos)
        chunk = Chunk(self._pos, size)
        part.chunks.append(chunk)
        self._pos += size
        self.remaining -= size
        if self._pos == part.offset + part.size:
            self._parts.popleft()
            if self._parts:
                self._pos = self._parts[0].offset + self._parts[0].completed
        return chunk


@dataclass
class Chunk:
    """One ranged GET's worth of a part; `got` bytes from `offset` on are written."""

    offset: int
    size: int
    got: int = 0  # written only by the one thread fetching the chunk

    @property
    def done(self) -> bool:
        return self.got >= self.size


@dataclass
class Part:
    """One state file's range. `completed` is what an earlier attempt left on disk; `chunks`
    are what this attempt has asked for since, in order."""

    n: int
    offset: int
    size: int
    completed: int = 0
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def written(self) -> int:
        """Length of the part's prefix that is on disk (out-of-order chunks do not count)."""
        n = self.completed
        for chunk in self.chunks:
            n += chunk.got
            if not chunk.done:
                break
        return n

    @property
    def received(self) -> int:
        return self.completed + sum(chunk.got for chunk in self.chunks)

    @property
    def done(self) -> bool:
        return self.written >= self.size

    def to_json(self) -> bytes:
        return json.dumps({"N": self.n, "Offset": self.offset, "Size": self.size,
                           "Completed": self.written}, separators=(",", ":")).encode() + b"\n"


class StreamScaler:
    """How many streams fetch side by side: start with `initial`; double while the doubling
    raised the throughput by GAIN or more, up to `maximum`; when one did not, go back and stay.

    Each step lets the new streams SETTLE (connect, slow start), then measures for MEASURE
    seconds. Pure arithmetic on (time, bytes received) so that it can be tested alone."""

    GAIN = 1.3
    SETTLE = 0.25
    MEASURE = 0.5

    def __init__(self, now: float, initial: int = INITIAL_STREAMS,
                 maximum: int = MAX_STREAMS) -> None:
        self.streams = initial
        self.maximum = maximum
        self._rate: float | None = None  # measured with streams // 2 (None: not yet)
        self._mark: tuple[float, int] | None = None
        self._step_at = now
        self.settled = initial >= maximum

    def next_check(self, now: float) -> float | None:
        """Seconds until `update` has something to do; None once settled."""
        if self.settled:
            return None
        due = self._step_at + self.SETTLE if self._mark is None else \
            self._mark[0] + self.MEASURE
        return max(due - now, 0.0)

    def update(self, now: float, received: int) -> int:
        """The number of streams wanted now."""
        if self.settled:
            return self.streams
        if self._mark is None:
            if now >= self._step_at + self.SETTLE:
                self._mark = (now, received)
            return self.streams
        start, before = self._mark
        if now < start + self.MEASURE:
            return self.streams
        rate = (received - before) / (now - start)
        if self._rate is not None and rate < self._rate * self.GAIN:
            self.streams //= 2  # the doubling did not pay
            self.settled = True
        elif self.streams >= self.maximum:
            self.settled = True
        else:
            self._rate = rate
            self.streams = min(self.streams * 2, self.maximum)
            self._mark, self._step_at = None, now
        return self.streams


class BlobDownload:
    """The download of one blob into one store; see the module docstring."""

    def __init__(self, store: Store, origin: RegistryClient, digest: str, size_hint: int):
        self.store = store
        self.name = origin.name
        self.insecure = origin.insecure
        self.authorization = origin.authorization  # saves a 401 round trip per blob
        self.digest = digest
        self.path = store.blobs.name_path(digest)  # a link out of the store is replaced
        self.partial = Path(f"{self.path}-partial")
        self.total = size_hint
        self.parts: list[Part] = []
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None
        self._fd = -1
        self._url: str | None = None  # where ranges come from, once known
        self._stop = threading.Event()
        self._running: list[concurrent.futures.Future[None]] = []

    @property
    def completed(self) -> int:
        return sum(p.received for p in self.parts)

    # -- waiting ---------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"pull {self.digest}")

    async def wait(self, progress: Progress) -> None:
        """Report progress every 60 ms until the blob is in place; re-raises its error."""
        assert self.task is not None
        self.waiters += 1
        try:
            while not self.task.done():
                await asyncio.wait({self.task}, timeout=TICK)
                if not self.task.done():
                    progress(transfer("pulling", self.digest, self.total, self.completed))
            self.task.result()
            progress(transfer("pulling", self.digest, self.total, self.total))
        finally:
            self.waiters -= 1
            if self.waiters == 0 and not self.task.done():
                self.task.cancel()  # nobody waits any more (REG-07)

    # -- the download task -----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with RegistryClient(self.name, insecure=self.insecure) as client:
                client.authorization = self.authorization
                try:
                    self._prepare_from_state()
                    if not self.parts:
                        self._prepare_fresh()
                    await self._download(client)
                except BlobSizeMismatch:
                    self._remove_partial()  # its parts were cut for the wrong size
                    raise
                except OSError as err:
                    if err.errno == errno.ENOSPC:
                        self._remove_partial()  # give the space back
                    raise storage_error(err, f"blob {self.digest}") from err
        finally:
            key = str(self.path)
            if _active.get(key) is self:
                del _active[key]

    def _part_path(self, n: int) -> Path:
        return Path(f"{self.partial}-{n}")

    def _prepare_from_state(self) -> None:
        """Reload part files of an earlier attempt; discard them if they do not add up."""
        parts: list[Part] = []
        for path in self.partial.parent.glob(f"{self.partial.name}-*"):
            if not path.name.removeprefix(f"{self.partial.name}-").isdigit():
                continue
            try:
                data = json.loads(path.read_bytes())
                parts.append(Part(int(data["N"]), int(data["Offset"]), int(data["Size"]),
                                  int(data["Completed"])))
            except (OSError, ValueError, KeyError, TypeError):
                parts = []
                break
        parts.sort(key=lambda p: p.offset)
        offset = 0
        valid = bool(parts) and self.partial.is_file()
        for i, part in enumerate(parts):
            if part.n != i or part.offset != offset or part.size <= 0 or \
                    not 0 <= part.completed <= part.size:
                valid = False
            offset += part.size
        if not valid:
            if parts:
                log.info("discarding unusable partial download of %s", self.digest)
            self._remove_partial()
            return
        self.parts = parts
        self.total = offset
        log.info("resuming %s: %d of %d bytes already here", self.digest[7:19], self.completed,
                 self.total)

    def _prepare_fresh(self) -> None:
        """Parts for the manifest's size; the first range's Content-Range confirms it (where
        Ollama spends a HEAD on it, REG-03)."""
        self.parts = [Part(i, off, size) for i, (off, size) in enumerate(part_sizes(self.total))]
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        for part in self.parts:
            self._write_state(part)

    def _write_state(self, part: Part) -> None:
        path = self._part_path(part.n)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_bytes(part.to_json())
        os.replace(temp, path)

    def _write_states(self) -> None:
        for part in self.parts:
            with contextlib.suppress(OSError):
                self._write_state(part)

    def _remove_partial(self) -> None:
        for path in self.partial.parent.glob(f"{self.partial.name}*"):
            path.unlink(missing_ok=True)
        for path in self.partial.parent.glob(f".{self.partial.name}-*.tmp"):
            path.unlink(missing_ok=True)

    async def _download(self, client: RegistryClient) -> None:
        # O_NOFOLLOW: a link planted under the partial file's name is never written through
        self._fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            cursor = ChunkCursor(self.parts)
            _size_sparsely(self._fd, self.total, cursor.remaining)
            stop_hashing = threading.Event()
            hasher = _in_own_thread(self._hash_along, stop_hashing,
                                    name=f"pollama-hash-{self.digest[7:19]}")
            try:
                if cursor:
                    log.info("downloading %s: %d of %d bytes", self.digest[7:19],
                             cursor.remaining, self.total)
                    ranges = RangeClient(USER_AGENT)
                    try:
                        await self._fetch_in_order(
                            cursor, lambda c: self._chunk_with_retries(client, ranges, c))
                    finally:
                        try:
                            await self._stop_transfers(ranges)
                        finally:
                            self._write_states()
                got = await asyncio.shield(hasher)
            finally:
                stop_hashing.set()  # and wait: the thread reads the file
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await hasher
            if got != self.digest:
                self._remove_partial()
                raise BlobDigestMismatch(self.digest, got)
            await asyncio.to_thread(os.fsync, self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
        for part in self.parts:
            self._part_path(part.n).unlink(missing_ok=True)
        self.store.blobs.adopt(self.partial, self.digest)

    async def _fetch_in_order(self, cursor: ChunkCursor,
                              fetch: Callable[[Chunk], Awaitable[None]]) -> None:
        """Fetch the cursor's chunks with as many streams as `StreamScaler` finds worth it;
        rewrite the state files every STATE_INTERVAL; the first failure stops everything."""
        streams: set[asyncio.Task[None]] = set()
        scaler = StreamScaler(time.monotonic(), INITIAL_STREAMS)
        wanted = scaler.streams

        async def stream() -> None:
            rate = None
            while cursor and len(streams) <= wanted:
                chunk = cursor.take(wanted, rate)
                start = time.monotonic()
                await fetch(chunk)
                rate = chunk.size / max(time.monotonic() - start, 1e-3)

        def spawn() -> None:
            for _ in range(wanted - len(streams)):
                if cursor:
                    streams.add(asyncio.ensure_future(stream()))

        try:
            spawn()
            last_state = time.monotonic()
            while streams:
                now = time.monotonic()
                timeout = min(x for x in (scaler.next_check(now), STATE_INTERVAL) if x is not None)
                done, _ = await asyncio.wait(streams, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    streams.discard(task)
                    task.result()
                now = time.monotonic()
                if now - last_state >= STATE_INTERVAL:
                    self._write_states()
                    last_state = now
                wanted = scaler.update(now, self.completed)
                spawn()
        finally:
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)

    async def _stop_transfers(self, ranges: RangeClient) -> None:
        """Make the transfer threads stop and wait for them, even through a cancellation:
        they write into the partial file, which is closed next."""
        self._stop.set()
        ranges.close()  # breaks off the reads in progress too
        running = [asyncio.wrap_future(f) for f in self._running if not f.done()]
        cancelled = False
        if running:
            waiting = asyncio.ensure_future(asyncio.wait(running))
            while not waiting.done():
                try:
                    await asyncio.shield(waiting)
                except asyncio.CancelledError:
                    cancelled = True
        for waited in running:  # their failures were already reported (or do not matter)
            if not waited.cancelled():
                waited.exception()
        if cancelled:
            raise asyncio.CancelledError

    async def _chunk_with_retries(self, client: RegistryClient, ranges: RangeClient,
                                  chunk: Chunk) -> None:
        tries = 0
        asked_again = False
        while True:
            url = self._url or client.url("blobs", self.digest)
            headers = {"Authorization": client.authorization} \
                if client.same_host(url) and client.authorization else {}
            future = _executor().submit(self._fetch_chunk, ranges, url, headers, chunk)
            self._running.append(future)  # kept: a cancelled await leaves the thread running
            try:
                await asyncio.wrap_future(future)
                return
            except RangeStalled:
                log.info("%s at %d stalled; retrying. If this persists, press ctrl-c to exit, "
                         "then 'pollama pull' to find a faster connection.", self.digest[7:19],
                         chunk.offset + chunk.got)
                continue
            except (RangeBroken, RegistryError, ReauthNeeded) as err:
                if not isinstance(err, RangeBroken) and not client.same_host(url) and \
                        not asked_again:
                    # A CDN refused its URL (a signed one may have expired while a long pull
                    # ran): the registry gives a new one.
                    log.info("%s: %s refused: %s; asking the registry again",
                             self.digest[7:19], urlsplit(url).hostname, err)
                    self._url, asked_again = None, True
                    continue
                if isinstance(err, RegistryError) and not err.transient:
                    raise
                tries += 1
                if isinstance(err, ReauthNeeded):
                    if tries >= 2:
                        raise Unauthorized() from None
                    await client.authenticate(auth.parse_challenge(err.challenge), url)
                    continue
                if tries >= MAX_RETRIES:
                    raise MaxRetriesExceeded(f"max retries exceeded: {err}") from err
                sleep = BACKOFF_BASE * 2 ** (tries - 1)
                log.info("%s at %d: attempt %d failed: %s, retrying in %ss", self.digest[7:19],
                         chunk.offset + chunk.got, tries - 1, err, sleep)
                await asyncio.sleep(sleep)

    def _fetch_chunk(self, ranges: RangeClient, url: str, headers: dict[str, str],
                     chunk: Chunk) -> None:
        """Fetch the rest of one chunk into the partial file (runs in a worker thread)."""

        def write(data: memoryview, offset: int) -> None:
            _pwrite_all(self._fd, data, offset)
            chunk.got += len(data)

        start = chunk.offset + chunk.got
        served_by, total = ranges.fetch(url, start, chunk.offset + chunk.size - 1, headers,
                                        write, self._stop)
        if total is not None and total != self.total:
            raise BlobSizeMismatch(self.digest, self.total, total)
        # The first answer names the direct URL (a CDN's, after a redirect): later ranges go
        # straight there (REG-04).
        self._url = served_by

    def _hash_along(self, stop: threading.Event) -> str:
        """Hash the written prefix of the blob as it grows; returns `sha256:<hex>`, or "" when
        stopped. Runs in a thread of its own, with its own descriptor, that looks every
        millisecond while bytes come fast (an asyncio hop per step lags behind a fast link).
        Hashed ranges are handed to the kernel's writeback at once, so that the fsync at the
        end has little left to do."""
        h = hashlib.sha256()
        buffer = memoryview(bytearray(HASH_BLOCK))
        fd = os.open(self.partial, os.O_RDONLY | os.O_NOFOLLOW)
        nap = HASH_NAP
        try:
            pos = 0
            while pos < self.total:
                if stop.is_set():
                    return ""
                frontier = self._frontier()
                if frontier - pos < HASH_STEP and frontier < self.total:
                    if stop.wait(nap):
                        return ""
                    nap = min(nap * 2, HASH_NAP_MAX)  # a slow link need not be watched often
                    continue
                nap = HASH_NAP
                n = os.preadv(fd, [buffer[:min(frontier - pos, HASH_BLOCK)]], pos)
                if n <= 0:
                    raise OSError(errno.EIO, f"{self.partial} is shorter than expected")
                h.update(buffer[:n])
                _start_writeback(fd, pos, n)
                pos += n
            return f"sha256:{h.hexdigest()}"
        finally:
            os.close(fd)

    def _frontier(self) -> int:
        for part in self.parts:
            if not part.done:
                return part.offset + part.written
        return self.total


_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    """Threads for chunk transfers (blocking reads and writes of big buffers)."""
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=2 * MAX_STREAMS,
                                                      thread_name_prefix="pollama-pull")
    return _pool


def _in_own_thread(function: Callable[..., T], *args: Any, name: str) -> asyncio.Future[T]:
    """Run `function` in a new thread: a hasher waits for transfers, so it must not take a
    pool thread that they need."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (function(*args), None)
        except BaseException as err:  # handed to the awaiting task
            outcome = (None, err)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2), which Python's os module lacks; None elsewhere."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_SYNC_FILE_RANGE = _sync_file_range()
SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range to disk without waiting (a hint: failures show at the fsync)."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _size_sparsely(fd: int, size: int, missing: int) -> None:
    """Give the partial file its full size without allocating it (a sparse file, as Ollama:
    reserving it all with fallocate made some pulls half as fast); a disk that has no room for
    the missing bytes fails now rather than after hours of download."""
    free = os.fstatvfs(fd)
    if free.f_bavail * free.f_frsize < missing:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)


_active: dict[str, BlobDownload] = {}


async def download_blob(store: Store, client: RegistryClient, digest: str, size: int, *,
                        progress: Progress) -> bool:
    """Make sure the blob is in the store; returns True when it already was (a cache hit)."""
    path = store.blobs.name_path(digest)
    key = str(path)
    loop = asyncio.get_running_loop()
    while True:
        if store.blobs.exists(digest):
            have = path.stat().st_size
            progress(transfer("pulling", digest, have, have))
            return True
        if size <= SMALL_BLOB:
            await _fetch_small(store, client, digest, size)
            progress(transfer("pulling", digest, size, size))
            return False
        current = _active.get(key)
        if current is None or current.task is None or current.task.get_loop() is not loop \
                or current.task.done():
            current = BlobDownload(store, client, digest, size)
            _active[key] = current
            current.start()
        elif current.task.cancelling():
            await asyncio.wait({current.task})  # let a download nobody wanted put its state away
            continue
        await current.wait(progress)
        return False


async def _fetch_small(store: Store, client: RegistryClient, digest: str, size: int) -> None:
    """A blob the manifest says is small (config, template, params): one GET, verified by the
    store's writer before it gets its name; nothing to resume, so no part files."""
    limit = max(size, SMALL_BLOB)

    async def fetch() -> bytearray:
        async with client.stream("GET", client.url("blobs", digest)) as resp:
            data = bytearray()
            async for chunk in resp.aiter_raw():
                data += chunk
                if len(data) > limit:
                    raise RegistryError(f"blob {digest} is larger than its manifest says")
        return data

    data = await with_retries(fetch)
    got = f"sha256:{hashlib.sha256(data).hexdigest()}"
    if got != digest:
        raise BlobDigestMismatch(digest, got)
    await asyncio.to_thread(store.blobs.write_bytes, bytes(data), digest)
