"""`push`: send a model's blobs and manifest to its registry (PUSH-02, REG-08..REG-12).

Per blob: `HEAD` (present → skip), `POST .../blobs/uploads/` (with `?mount=&from=` for a layer
reused from another model; `201` means mounted), then the parts in order as `PATCH` with
`Content-Range: <start>-<end>`, and a final `PUT <location>?digest=..&etag=..`. A `307` answer to
a `PATCH` (Ollama's registry) sends that part's bytes by `PUT` to the redirect target, without
credentials, while the next part goes on. Docker Distribution needs the chunks in order and the
final `PUT`, which is what this does. A `PATCH` that fails restarts the blob's upload session (up
to 6 times, 2^n s apart): Distribution cannot resume a session whose last chunk broke off.
Pushes that need the same blob in the same repository at once share one upload, which goes on
while any of them waits (as downloads do). The manifest is sent as the bytes stored locally, so
the model keeps its ID on the registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx

from pollama.errors import InvalidModelName
from pollama.names import Name, parse
from pollama.registry.client import (
    MEDIA_MANIFEST,
    UPLOAD_TIMEOUT,
    RegistryClient,
    translate_errors,
)
from pollama.registry.download import part_sizes, with_retries
from pollama.registry.errors import (
    InsecureProtocol,
    LocalManifestMissing,
    RegistryError,
    RemoteNotFound,
)
from pollama.registry.progress import TICK, Progress, status, transfer
from pollama.store import CorruptManifest, Store
from pollama.store.manifest import Layer

log = logging.getLogger("pollama.registry")

READ_CHUNK = 1 << 20


async def push_model(store: Store, name: Name, *, insecure: bool = False,
                     progress: Progress) -> None:
    """Push `name` from `store` to its registry, reporting Ollama's progress objects."""
    if not name.is_valid:
        raise InvalidModelName()
    progress(status("retrieving manifest"))
    if name.scheme == "http" and not insecure:
        raise InsecureProtocol()
    name = store.manifests.resolve(name)
    try:
        stored = store.manifests.read(name)
    except CorruptManifest as err:
        progress(status("couldn't retrieve manifest"))
        raise LocalManifestMissing(f"corrupt manifest for {name}: {err}") from err
    if stored is None:
        progress(status("couldn't retrieve manifest"))
        raise LocalManifestMissing(f"open {store.manifests.path(name)}: no such file or directory")
    raw = stored.path.read_bytes()
    manifest = stored.manifest
    layers = manifest.all_layers() if manifest.config.digest else list(manifest.layers)

    with translate_errors():
        async with RegistryClient(name, insecure=insecure) as client:
            for layer in layers:
                await upload_blob(client, store, layer, progress)
            progress(status("pushing manifest"))
            await client.request("PUT", client.url("manifests", name.tag), body=raw,
                                 headers={"Content-Type": manifest.media_type or MEDIA_MANIFEST})
    progress(status("success"))


async def upload_blob(client: RegistryClient, store: Store, layer: Layer,
                      progress: Progress) -> None:
    """Upload one blob unless the registry has it (REG-08). Pushes that need the same blob in
    the same repository at the same time share one upload, as Ollama's do."""
    try:
        await client.request("HEAD", client.url("blobs", layer.digest))
        progress(transfer("pushing", layer.digest, layer.size, layer.size))
        return
    except RemoteNotFound:
        pass
    key = (client.base, client.repository, layer.digest)
    loop = asyncio.get_running_loop()
    shared = _active.get(key)
    if shared is None or shared.task.done() or shared.task.get_loop() is not loop:
        shared = _SharedUpload(_Upload(store.blobs.path(layer.digest), layer), client)
        _active[key] = shared
        shared.task.add_done_callback(lambda _: _active.pop(key, None)
                                      if _active.get(key) is shared else None)
    await shared.wait(progress)


class _SharedUpload:
    """One blob upload as a task of its own (with its own client, so that it outlives the push
    that started it), and the pushes waiting for it; cancelled when the last one leaves."""

    def __init__(self, upload: _Upload, origin: RegistryClient) -> None:
        self.upload = upload
        self.waiters = 0
        self.task = asyncio.get_running_loop().create_task(
            self._run(origin.name, origin.insecure, origin.authorization))

    async def _run(self, name: Name, insecure: bool, authorization: str | None) -> None:
        async with RegistryClient(name, insecure=insecure) as client:
            client.authorization = authorization  # saves a 401 round trip
            await self.upload.run(client)

    async def wait(self, progress: Progress) -> None:
        upload = self.upload
        self.waiters += 1
        try:
            while not self.task.done():
                await asyncio.wait({self.task}, timeout=TICK)
                if not self.task.done():
                    progress(transfer("pushing", upload.layer.digest, upload.total,
                                      upload.completed))
            self.task.result()
            progress(transfer("pushing", upload.layer.digest, upload.total, upload.total))
        finally:
            self.waiters -= 1
            if self.waiters == 0 and not self.task.done():
                self.task.cancel()


_active: dict[tuple[str, str, str], _SharedUpload] = {}


class _Upload:
    """One blob upload session and its progress."""

    def __init__(self, path: Path, layer: Layer) -> None:
        self.client: RegistryClient
        self.path = path
        self.layer = layer
        self.total = path.stat().st_size
        self.completed = 0

    async def run(self, client: RegistryClient) -> None:
        self.client = client

        def failed(attempt: int, err: Exception, sleep: float) -> None:
            log.info("%s upload attempt %d failed: %s, retrying in %ss",
                     self.layer.digest[7:19], attempt, err, sleep)
            self.completed = 0

        await with_retries(self._session, failed)

    async def _session(self) -> None:
        client = self.client
        url = client.url("blobs", "uploads") + "/"
        if self.layer.from_:  # REG-09: cross-repository mount
            source = parse(self.layer.from_).repository
            url += "?" + urlencode({"mount": self.layer.digest, "from": source})
        resp = await client.request("POST", url)
        if resp.status_code == 201:
            self.completed = self.total
            return
        location = _location(resp)
        redirected: list[asyncio.Future[Any]] = []
        md5s: list[bytes] = []
        try:
            for offset, size in part_sizes(self.total):
                location = await self._patch(location, offset, size, md5s, redirected)
            await asyncio.gather(*redirected)
        finally:
            for task in redirected:
                task.cancel()
        etag = f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"
        final = httpx.URL(location).copy_merge_params({"digest": self.layer.digest,
                                                       "etag": etag})
        await client.request("PUT", str(final), body=b"", follow="none", timeout=UPLOAD_TIMEOUT,
                             headers={"Content-Type": "application/octet-stream",
                                      "Content-Length": "0"})

    async def _patch(self, location: str, offset: int, size: int, md5s: list[bytes],
                     redirected: list[asyncio.Future[Any]]) -> str:
        """Send one part (REG-10); returns the URL for the next request."""
        state: dict[str, Any] = {"sent": 0}

        def body() -> AsyncIterator[bytes]:  # a fresh body for each try (auth retry included)
            self.completed -= state["sent"]
            state.update(sent=0, md5=hashlib.md5())
            return self._read(offset, size, state)

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size),
                   "Content-Range": f"{offset}-{offset + size - 1}", "X-Redirect-Uploads": "1"}
        try:
            resp = await self.client.request("PATCH", location, headers=headers, body=body,
                                             follow="none", timeout=UPLOAD_TIMEOUT)
        except BaseException:
            self.completed -= state["sent"]
            raise
        next_url = _location(resp)
        if resp.status_code == 307:  # part goes to the redirect target; the session goes on
            self.completed -= state["sent"]
            target = urljoin(str(resp.url), resp.headers["location"])
            redirected.append(asyncio.ensure_future(self._put_part(target, offset, size)))
            md5s.append(await asyncio.to_thread(_md5_range, self.path, offset, size))
        else:
            md5s.append(state["md5"].digest())
        return next_url

    async def _put_part(self, url: str, offset: int, size: int) -> None:
        """PUT one part to the target of a 307, without credentials (REG-10)."""

        async def put() -> None:
            state: dict[str, Any] = {"sent": 0, "md5": hashlib.md5()}
            try:
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Length": str(size)}
                resp = await self.client.http.put(url, timeout=UPLOAD_TIMEOUT, headers=headers,
                                                  content=self._read(offset, size, state))
                if resp.status_code >= 400:
                    raise RegistryError(f"http status {resp.status_code}: {resp.text}",
                                        resp.status_code)
            except (httpx.TransportError, RegistryError):
                self.completed -= state["sent"]  # this try's bytes no longer count
                raise

        await with_retries(put)

    async def _read(self, offset: int, size: int, state: dict[str, Any]) -> AsyncIterator[bytes]:
        """The part's bytes from the blob file, counting progress and md5 into `state`."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            left = size
            while left:
                data = f.read(min(READ_CHUNK, left))
                if not data:
                    raise OSError(f"{self.path} is shorter than its manifest says")
                state["md5"].update(data)
                left -= len(data)
                state["sent"] += len(data)
                self.completed += len(data)
                yield data


def _location(resp: httpx.Response) -> str:
    location = resp.headers.get("docker-upload-location") or resp.headers.get("location")
    if not location:
        raise RegistryError(f"{resp.status_code}: the registry gave no upload location")
    return urljoin(str(resp.url), location)


def _md5_range(path: Path, offset: int, size: int) -> bytes:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        f.seek(offset)
        left = size
        while left:
            data = f.read(min(READ_CHUNK, left))
            if not data:
                break
            md5.update(data)
            left -= len(data)
    return md5.digest()
