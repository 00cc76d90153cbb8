"""Resumable, parallel, verified blob downloads, shared by every pull that needs the blob.

One `BlobDownload` per blob file runs as a detached asyncio task; each pull that needs the blob
`wait`s on it and gets progress every 60 ms. The task is cancelled only when the last waiter
leaves (REG-07), so a client that disconnects does not stop another one's pull.

On disk, as Ollama does it (REG-04/05), so either program resumes the other's download:

- `<blob>-partial`: the bytes, written at their offsets (pre-allocated to the full size);
- `<blob>-partial-<N>`: JSON `{"N","Offset","Size","Completed"}` of part N, rewritten (atomically)
  every half second and when the part stops for any reason, so a killed pull re-fetches at most
  the last half second of each part.

Parts are total/16 bytes clamped to [100 MB, 1000 MB], fetched with ranged GETs, 16 at a time.
A failed part is retried up to 6 times (sleeping 2^n s); one that receives nothing for 30 s is
"stalled" and restarted without using an attempt. A hasher follows the contiguous downloaded
prefix while parts arrive, so verification costs little after the last byte. The blob gets its
final name only after its sha256 equals the digest; on a mismatch the partial files are deleted.
Disk full (ENOSPC) stops at once and deletes the partial files to give the space back; any other
failure or a cancellation keeps them for the next attempt.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pollama.registry import auth
from pollama.registry.client import RegistryClient
from pollama.registry.errors import (
    BlobDigestMismatch,
    MaxRetriesExceeded,
    RegistryError,
    RemoteNotFound,
    Unauthorized,
)
from pollama.registry.progress import TICK, Progress, transfer
from pollama.store import Store
from pollama.store.blobs import fsync_dir, storage_error

log = logging.getLogger("pollama.registry")

NUM_PARTS = 16
MIN_PART_SIZE = 100 * 1000 * 1000
MAX_PART_SIZE = 1000 * 1000 * 1000
MAX_RETRIES = 6
BACKOFF_BASE = 1.0  # seconds; attempt n sleeps BACKOFF_BASE * 2**n
STATE_INTERVAL = 0.5  # seconds between rewrites of a part's state file
HASH_BLOCK = 8 << 20
DIRECT_URL_DEADLINE = 30.0
SMALL_BLOB = 1 << 20  # blobs up to this size are fetched with one plain GET


def part_sizes(total: int) -> list[tuple[int, int]]:
    """(offset, size) of each part: total/16 clamped to [100 MB, 1000 MB] (REG-04)."""
    size = min(max(total // NUM_PARTS, MIN_PART_SIZE), MAX_PART_SIZE)
    return [(off, min(size, total - off)) for off in range(0, total, size)]


@dataclass
class Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    @property
    def done(self) -> bool:
        return self.completed >= self.size

    def to_json(self) -> bytes:
        return json.dumps({"N": self.n, "Offset": self.offset, "Size": self.size,
                           "Completed": self.completed}, separators=(",", ":")).encode() + b"\n"


class PartStalled(Exception):
    """No byte arrived for STALL_TIMEOUT seconds."""


class BlobDownload:
    """The download of one blob into one store; see the module docstring."""

    def __init__(self, store: Store, origin: RegistryClient, digest: str, size_hint: int):
        self.store = store
        self.name = origin.name
        self.insecure = origin.insecure
        self.authorization = origin.authorization  # saves a 401 round trip per blob
        self.digest = digest
        self.path = store.blobs.path(digest)
        self.partial = Path(f"{self.path}-partial")
        self.total = size_hint
        self.parts: list[Part] = []
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None
        self._fd = -1
        self._stop = threading.Event()
        self._running: list[concurrent.futures.Future[None]] = []

    @property
    def completed(self) -> int:
        return sum(p.completed for p in self.parts)

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
                        await self._prepare_fresh(client)
                    await self._download(client)
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

    async def _prepare_fresh(self, client: RegistryClient) -> None:
        resp = await client.request("HEAD", client.url("blobs", self.digest))  # REG-03
        length = resp.headers.get("content-length")
        if length and length.isdigit() and int(length) > 0:
            self.total = int(length)  # else the manifest's size
        self.parts = [Part(i, off, size) for i, (off, size) in enumerate(part_sizes(self.total))]
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        for part in self.parts:
            self._write_state(part)
        if self.parts:
            log.info("downloading %s in %d %d-byte part(s)", self.digest[7:19], len(self.parts),
                     self.parts[0].size)

    def _write_state(self, part: Part) -> None:
        path = self._part_path(part.n)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_bytes(part.to_json())
        os.replace(temp, path)

    def _remove_partial(self) -> None:
        for path in self.partial.parent.glob(f"{self.partial.name}*"):
            path.unlink(missing_ok=True)
        for path in self.partial.parent.glob(f".{self.partial.name}-*.tmp"):
            path.unlink(missing_ok=True)

    async def _download(self, client: RegistryClient) -> None:
        self._fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _preallocate(self._fd, self.total)
            pending = [p for p in self.parts if not p.done]
            if pending:
                url, with_auth = await self._direct_url(client)
                limit = asyncio.Semaphore(NUM_PARTS)
                http = client.sync_client()

                async def one(part: Part) -> None:
                    async with limit:
                        await self._part_with_retries(client, http, url, with_auth, part)

                hasher = asyncio.ensure_future(self._hash_along())
                try:
                    await _all_or_nothing([one(p) for p in pending])
                    got = await hasher
                finally:
                    hasher.cancel()
                    await self._stop_transfers()
                    http.close()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await hasher
                    for part in self.parts:
                        with contextlib.suppress(OSError):
                            self._write_state(part)
            else:
                h = hashlib.sha256()
                await asyncio.to_thread(_hash_range, self.partial, h, 0, self.total)
                got = f"sha256:{h.hexdigest()}"
            if got != self.digest:
                self._remove_partial()
                raise BlobDigestMismatch(self.digest, got)
            await asyncio.to_thread(os.fsync, self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
        for part in self.parts:
            self._part_path(part.n).unlink(missing_ok=True)
        os.chmod(self.partial, 0o644)
        os.replace(self.partial, self.path)
        fsync_dir(self.path.parent)

    async def _stop_transfers(self) -> None:
        """Make the transfer threads stop (after their current chunk) and wait for them."""
        self._stop.set()
        running = [asyncio.wrap_future(f) for f in self._running if not f.done()]
        if running:
            await asyncio.wait(running)

    async def _direct_url(self, client: RegistryClient) -> tuple[str, bool]:
        """Where the ranges come from: the first other-host redirect target (no auth), or the
        registry URL itself. Resolved with a 1-byte GET, retried for up to 30 s."""
        url = client.url("blobs", self.digest)
        deadline = time.monotonic() + DIRECT_URL_DEADLINE
        delay = 0.1
        while True:
            try:
                async with client.stream("GET", url, headers={"Range": "bytes=0-0"},
                                         follow="same-host") as resp:
                    location = resp.headers.get("location")
                    if resp.status_code in (301, 302, 303, 307, 308) and location:
                        return str(resp.url.join(location)), False
                    if resp.status_code == 206:
                        await resp.aread()  # one byte; lets the connection be reused
                    if resp.status_code in (200, 206):
                        return str(resp.url), True
                    raise RegistryError(f"unexpected status code {resp.status_code}")
            except (httpx.TransportError, RegistryError) as err:
                if isinstance(err, RegistryError) and not err.transient:
                    raise
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("failed to get direct URL; backing off and retrying: %s", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _part_with_retries(self, client: RegistryClient, http: httpx.Client, url: str,
                                 with_auth: bool, part: Part) -> None:
        tries = 0
        while True:
            headers = {"Authorization": client.authorization} \
                if with_auth and client.authorization else {}
            future = _executor().submit(self._fetch_part, http, url, headers, part)
            self._running.append(future)  # kept: a cancelled await leaves the thread running
            try:
                await asyncio.wrap_future(future)
                return
            except PartStalled:
                log.info("%s part %d stalled; retrying. If this persists, press ctrl-c to exit, "
                         "then 'pollama pull' to find a faster connection.", self.digest[7:19],
                         part.n)
                continue
            except (httpx.TransportError, RegistryError, _ShortRead, _Reauth) as err:
                if isinstance(err, RegistryError) and not err.transient:
                    raise
                tries += 1
                if isinstance(err, _Reauth):
                    if tries >= 2:
                        raise Unauthorized() from None
                    await client.authenticate(auth.parse_challenge(err.challenge), url)
                    continue
                if tries >= MAX_RETRIES:
                    raise MaxRetriesExceeded(f"max retries exceeded: {err}") from err
                sleep = BACKOFF_BASE * 2 ** (tries - 1)
                log.info("%s part %d attempt %d failed: %s, retrying in %ss", self.digest[7:19],
                         part.n, tries - 1, err, sleep)
                await asyncio.sleep(sleep)

    def _fetch_part(self, http: httpx.Client, url: str, headers: dict[str, str],
                    part: Part) -> None:
        """Fetch the rest of one part into the partial file (runs in a worker thread)."""
        start, end = part.offset + part.completed, part.offset + part.size - 1
        last_state = time.monotonic()
        try:
            with http.stream("GET", url, headers={**headers, "Range": f"bytes={start}-{end}"},
                             follow_redirects=True) as resp:
                if resp.status_code == 401 and headers:
                    raise _Reauth(resp.headers.get("www-authenticate", ""))
                if resp.status_code == 404:
                    raise RemoteNotFound()
                if resp.status_code >= 400:
                    text = resp.read().decode("utf-8", errors="replace")
                    raise RegistryError(f"{resp.status_code}: {text}", resp.status_code)
                if resp.status_code != 206 and not (resp.status_code == 200 and start == 0):
                    raise RegistryError(f"unexpected status code {resp.status_code} for a range")
                pos = start
                for chunk in resp.iter_raw():
                    if self._stop.is_set():
                        return
                    room = end + 1 - pos
                    if len(chunk) > room:
                        chunk = chunk[:room]
                    written = os.pwrite(self._fd, chunk, pos)
                    pos += written
                    part.completed += written
                    if pos > end:
                        break
                    now = time.monotonic()
                    if now - last_state >= STATE_INTERVAL:
                        self._write_state(part)
                        last_state = now
        except httpx.ReadTimeout as err:
            raise PartStalled() from err
        finally:
            with contextlib.suppress(OSError):
                self._write_state(part)
        if not part.done:
            raise _ShortRead(f"unexpected EOF after {part.completed} of {part.size} bytes")

    async def _hash_along(self) -> str:
        """Hash the contiguous downloaded prefix as it grows; returns `sha256:<hex>`.

        Hashed ranges are also flushed to disk in the background, so that the fsync before the
        rename has little left to do."""
        h = hashlib.sha256()
        pos = 0
        flush: asyncio.Future[None] | None = None
        try:
            while pos < self.total:
                frontier = self._frontier()
                if frontier - pos >= HASH_BLOCK or frontier == self.total:
                    pos = await asyncio.to_thread(_hash_range, self.partial, h, pos, frontier)
                    if flush is None or flush.done():
                        flush = asyncio.ensure_future(asyncio.to_thread(os.fdatasync, self._fd))
                else:
                    await asyncio.sleep(0.005)
        finally:
            if flush is not None:
                with contextlib.suppress(OSError):
                    await asyncio.shield(flush)
        return f"sha256:{h.hexdigest()}"

    def _frontier(self) -> int:
        for part in self.parts:
            if not part.done:
                return part.offset + part.completed
        return self.total


class _ShortRead(Exception):
    """The body ended before the part was complete (resumable)."""


class _Reauth(Exception):
    """The registry wants new credentials (a token expired) for a ranged GET."""

    def __init__(self, challenge: str) -> None:
        super().__init__("401: token expired")
        self.challenge = challenge


_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    """Threads for part transfers: sync httpx there moves bytes ~1.5x faster than asyncio."""
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=2 * NUM_PARTS,
                                                      thread_name_prefix="pollama-pull")
    return _pool


async def _all_or_nothing(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run all; on the first failure cancel the rest and raise that failure."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _hash_range(path: Path, h: Any, start: int, end: int) -> int:
    """Feed bytes [start, end) of `path` into `h` (in a worker thread: it has its own fd)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = start
        while pos < end:
            data = os.pread(fd, min(HASH_BLOCK, end - pos), pos)
            if not data:
                raise OSError(errno.EIO, f"{path} is shorter than expected")
            h.update(data)
            pos += len(data)
        return pos
    finally:
        os.close(fd)


def _preallocate(fd: int, size: int) -> None:
    """Reserve the whole blob up front, so a full disk shows before any byte is fetched."""
    if os.fstat(fd).st_size >= size:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise
        os.ftruncate(fd, size)  # filesystems without fallocate: a sparse file, as Ollama


_active: dict[str, BlobDownload] = {}


async def download_blob(store: Store, client: RegistryClient, digest: str, size: int, *,
                        progress: Progress) -> bool:
    """Make sure the blob is in the store; returns True when it already was (a cache hit)."""
    path = store.blobs.path(digest)
    key = str(path)
    loop = asyncio.get_running_loop()
    while True:
        if path.is_file():
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
    for attempt in range(MAX_RETRIES):
        try:
            async with client.stream("GET", client.url("blobs", digest)) as resp:
                data = bytearray()
                async for chunk in resp.aiter_raw():
                    data += chunk
                    if len(data) > limit:
                        raise RegistryError(f"blob {digest} is larger than its manifest says")
            break
        except (httpx.TransportError, RegistryError) as err:
            if isinstance(err, RegistryError) and not err.transient:
                raise
            if attempt == MAX_RETRIES - 1:
                raise MaxRetriesExceeded(f"max retries exceeded: {err}") from err
            await asyncio.sleep(BACKOFF_BASE * 2 ** attempt)
    got = f"sha256:{hashlib.sha256(data).hexdigest()}"
    if got != digest:
        raise BlobDigestMismatch(digest, got)
    await asyncio.to_thread(store.blobs.write_bytes, bytes(data), digest)
