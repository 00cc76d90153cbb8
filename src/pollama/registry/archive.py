"""Export one model to, and import it from, a tar in OCI image-layout form (beyond Ollama).

The tar holds `oci-layout`, `index.json` (one manifest descriptor whose annotation
`org.opencontainers.image.ref.name` is the full model name, `host/namespace/model:tag`) and
`blobs/sha256/<hex>` for the manifest (its bytes exactly as stored, so the model keeps its ID),
the config and every layer. Export writes the small entries first, so an import can stream.

Import streams the tar (plain or compressed) once. Every blob goes through the store's verifying
writer (hashed while written, renamed only when equal to its name); the manifest is written
last, after every blob it names is present. A corrupt or incomplete archive raises ArchiveError
and removes the blobs this import had added, so nothing of it stays in the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import lzma
import os
import tarfile
import time
import zlib
from pathlib import Path
from typing import IO, Any, BinaryIO

from pollama.errors import DigestMismatch, ModelNotFound, PollamaError
from pollama.names import Name, parse
from pollama.registry.errors import ArchiveError
from pollama.registry.progress import TICK, Progress, ignore, status, transfer
from pollama.store import CorruptManifest, Manifest, Store, StoredManifest
from pollama.store.blobs import parse_digest

REF_NAME = "org.opencontainers.image.ref.name"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
SMALL = 1 << 20  # blobs up to this size are held in memory until index.json names the manifest
COPY_CHUNK = 1 << 20

Source = BinaryIO | str | os.PathLike[str]


async def export_model(store: Store, name: Name, out: Source) -> None:
    """Write model `name` (manifest + its blobs) as an OCI image-layout tar to `out`."""
    stored = store.manifests.read(store.manifests.resolve(name))
    if stored is None:
        raise ModelNotFound(name.display_shortest())
    if isinstance(out, str | os.PathLike):
        target = Path(out)
        temp = target.with_name(f".{target.name}.tmp")
        try:
            with open(temp, "wb") as f:
                await asyncio.to_thread(_write_archive, store, stored, f)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
    else:
        await asyncio.to_thread(_write_archive, store, stored, out)


def _write_archive(store: Store, stored: StoredManifest, out: BinaryIO) -> None:
    raw = stored.path.read_bytes()
    manifest_digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [{
        "mediaType": stored.manifest.media_type, "digest": manifest_digest, "size": len(raw),
        "annotations": {REF_NAME: stored.name.display_long()}}]}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        # typeshed omits TarFile.copybufsize, which TarFile.__init__ sets and copyfileobj reads
        tar.copybufsize = COPY_CHUNK  # type: ignore[attr-defined]
        _add_bytes(tar, "oci-layout", LAYOUT)
        _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())
        _add_bytes(tar, _blob_name(manifest_digest), raw)
        done: set[str] = set()
        for layer in stored.manifest.all_layers():
            if not layer.digest or layer.digest in done:
                continue
            done.add(layer.digest)
            path = store.blobs.path(layer.digest)
            info = _info(_blob_name(layer.digest), path.stat().st_size)
            with open(path, "rb") as f:
                reader = _HashingReader(f)
                tar.addfile(info, reader)
            if reader.digest() != layer.digest:
                raise ArchiveError(f"blob {layer.digest} in the store is corrupt "
                                   f"(its bytes hash to {reader.digest()}); pull the model again")


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


class _HashingReader:
    """A file wrapper that hashes what is read through it."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._h.update(data)
        return data

    def digest(self) -> str:
        return f"sha256:{self._h.hexdigest()}"


async def import_archive(store: Store, src: Source, *, name: Name | None = None,
                         progress: Progress = ignore) -> Name:
    """Import the model in an export tar into `store` (as `name`, else the archived name)."""
    loop = asyncio.get_running_loop()

    def report(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(progress, event)

    if isinstance(src, str | os.PathLike):
        with open(src, "rb") as f:
            return await asyncio.to_thread(_Importer(store, name, report).run, f)
    return await asyncio.to_thread(_Importer(store, name, report).run, src)


class _Importer:
    """One import: reads the tar once, keeps track of what it added so it can take it back."""

    def __init__(self, store: Store, name: Name | None, report: Progress) -> None:
        self.store = store
        self.name = name
        self.report = report
        self.created: set[str] = set()
        self.held: dict[str, bytes] = {}  # small verified blobs, until the manifest is known
        self.index: dict[str, Any] | None = None
        self.layout = False

    def run(self, src: BinaryIO) -> Name:
        try:
            return self._run(src)
        except BaseException as err:
            self.store.remove_unreferenced(self.created)
            if isinstance(err, tarfile.TarError | EOFError | zlib.error | lzma.LZMAError | OSError):
                raise ArchiveError(f"unreadable archive: {err}") from err
            raise

    def _run(self, src: BinaryIO) -> Name:
        with tarfile.open(fileobj=src, mode="r|*") as tar:
            for member in tar:
                self._entry(tar, member)
        if not self.layout:
            raise ArchiveError("not an OCI image layout archive: oci-layout is missing")
        if self.index is None:
            raise ArchiveError("not an OCI image layout archive: index.json is missing")
        descriptor, ref = self._pick()
        manifest_digest = descriptor["digest"]
        raw = self.held.pop(manifest_digest, None)
        if raw is None:
            raw = self._take_back_from_store(manifest_digest)
        try:
            manifest = Manifest.decode(raw)
        except CorruptManifest as err:
            raise ArchiveError(f"the archive's manifest is corrupt: {err}") from err
        for digest, data in self.held.items():
            if digest in manifest.digests() and not self.store.blobs.exists(digest):
                self._store(digest, [data], len(data))
        missing = [d for d in manifest.digests() if not self.store.blobs.exists(d)]
        if missing:
            raise ArchiveError(f"archive is missing blob {missing[0]}")

        target = self.name if self.name is not None else parse(ref)
        if not target.is_valid:
            raise ArchiveError(f"invalid model name {ref!r} in the archive; give a name")
        target = self.store.manifests.resolve(target)
        try:
            old = self.store.manifests.read(target)
        except CorruptManifest:
            old = None
        self.report(status("writing manifest"))
        self.store.manifests.write(target, raw)
        self.store.remove_unreferenced(self.created - manifest.digests())
        unused = (old.manifest.digests() if old else set()) - manifest.digests()
        if unused:
            self.report(status("removing unused layers"))
            self.store.remove_unreferenced(unused)
        self.report(status("success"))
        return target

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = member.name.removeprefix("./")
        if member.isdir():
            return
        if not member.isfile():
            raise ArchiveError(f"unexpected entry {member.name!r} in the archive")
        f = tar.extractfile(member)
        assert f is not None
        if path == "oci-layout":
            data = self._small(f, member, "oci-layout")
            try:
                version = json.loads(data).get("imageLayoutVersion")
            except (ValueError, AttributeError):
                version = None
            if not isinstance(version, str) or not version.startswith("1."):
                raise ArchiveError("unsupported oci-layout (want imageLayoutVersion 1.x)")
            self.layout = True
        elif path == "index.json":
            try:
                self.index = json.loads(self._small(f, member, "index.json"))
            except ValueError as err:
                raise ArchiveError(f"index.json is not JSON: {err}") from err
            if not isinstance(self.index, dict) or \
                    not isinstance(self.index.get("manifests"), list):
                raise ArchiveError("index.json has no manifests list")
        elif path.startswith("blobs/"):
            digest = parse_digest(path.removeprefix("blobs/").replace("/", ":", 1))
            if digest is None or _blob_name(digest) != path:
                raise ArchiveError(f"unexpected blob name {member.name!r} in the archive")
            self._blob(f, member, digest)

    def _small(self, f: IO[bytes], member: tarfile.TarInfo, what: str) -> bytes:
        if member.size > 16 * SMALL:
            raise ArchiveError(f"{what} is too large ({member.size} bytes)")
        return f.read()

    def _blob(self, f: IO[bytes], member: tarfile.TarInfo, digest: str) -> None:
        if self.index is None and member.size <= SMALL:
            data = f.read()
            got = f"sha256:{hashlib.sha256(data).hexdigest()}"
            if got != digest:
                raise ArchiveError(f"archive blob {digest} is corrupt: its bytes hash to {got}")
            self.held[digest] = data
            return
        if self._is_manifest(digest):
            data = self._small(f, member, "the manifest")
            got = f"sha256:{hashlib.sha256(data).hexdigest()}"
            if got != digest:
                raise ArchiveError(f"archive blob {digest} is corrupt: its bytes hash to {got}")
            self.held[digest] = data
            return
        if self.store.blobs.exists(digest):
            return  # the store's copy is already verified; tarfile skips the rest
        self._store(digest, iter(lambda: f.read(COPY_CHUNK), b""), member.size)

    def _is_manifest(self, digest: str) -> bool:
        return any(isinstance(d, dict) and d.get("digest") == digest
                   for d in (self.index or {}).get("manifests", []))

    def _store(self, digest: str, chunks: Any, total: int) -> None:
        done = 0
        last = 0.0
        try:
            with self.store.blobs.writer(digest) as w:
                for chunk in chunks:
                    w.write(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if now - last >= TICK:
                        self.report(transfer("importing", digest, total, done))
                        last = now
                _, created = w.commit()
        except DigestMismatch as err:
            raise ArchiveError(f"archive blob {digest} is corrupt: {err}") from err
        if created:
            self.created.add(digest)
        self.report(transfer("importing", digest, total, total))

    def _take_back_from_store(self, digest: str) -> bytes:
        """The manifest came before index.json and was large: it went to the store; undo."""
        try:
            raw = self.store.blobs.read_bytes(digest)
        except PollamaError as err:
            raise ArchiveError(f"archive is missing its manifest blob {digest}") from err
        if digest in self.created:
            self.store.blobs.remove(digest)
            self.created.discard(digest)
        return raw

    def _pick(self) -> tuple[dict[str, Any], str]:
        assert self.index is not None
        found = [d for d in self.index["manifests"] if isinstance(d, dict) and
                 parse_digest(str(d.get("digest", ""))) == d.get("digest")]
        refs = [str((d.get("annotations") or {}).get(REF_NAME, "")) for d in found]
        if self.name is not None and len(found) > 1:
            for descriptor, ref in zip(found, refs, strict=True):
                if ref and parse(ref).equal_fold(self.name):
                    return descriptor, ref
        if len(found) != 1:
            raise ArchiveError(f"archive holds {len(found)} models; expected exactly one")
        return found[0], refs[0]
