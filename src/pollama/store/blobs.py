"""Content-addressed blobs under `<models>/blobs/sha256-<hex>`, as Ollama lays them out.

A blob only becomes visible under its digest name after its bytes were hashed, found equal to
the digest, flushed and fsynced: writers stream into a temp file in the same directory, then
`os.replace` it. A crash or a full disk leaves at most a temp file, which pruning removes.

A blob name that is a symbolic link leading out of the models directory is never followed: the
blob counts as missing (so an upload, pull or import writes it afresh, replacing the link, never
the file it points at), and reading or serving it is an `UnsafeBlob` error naming it. Links
within the models directory are followed as usual.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from pollama.errors import BadRequest, DigestMismatch, NotFound, StorageError, UnsafeBlob

_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_BLOB_FILE = re.compile(r"sha256-[0-9a-f]{64}")
TEMP_PREFIX = "sha256-tmp-"
CHUNK = 1 << 20


def parse_digest(text: str) -> str | None:
    """`sha256:<hex>` for `sha256:<hex>` / `sha256-<hex>` (any hex case), else None."""
    m = _DIGEST.fullmatch(text or "")
    return f"sha256:{m.group(1).lower()}" if m else None


def require_digest(text: str) -> str:
    digest = parse_digest(text)
    if digest is None:
        raise BadRequest("invalid digest format")
    return digest


def storage_error(err: OSError, what: str, doing: str = "write") -> StorageError:
    """A user-facing error for a failed write; disk full gets its own plain words."""
    if err.errno == errno.ENOSPC:
        return StorageError(f"no space left on device while writing {what}")
    return StorageError(f"could not {doing} {what}: {err.strerror or err}")


class BlobWriter:
    """Streams bytes into a temp file and hashes them; `commit` makes the blob visible."""

    def __init__(self, blobs: Blobs, expected: str | None) -> None:
        self._blobs = blobs
        self.expected = expected
        self._hash = hashlib.sha256()
        self.size = 0
        blobs.root.mkdir(parents=True, exist_ok=True)
        self.temp_path = blobs.root / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            self._file: BinaryIO | None = open(self.temp_path, "xb")  # noqa: SIM115
        except OSError as err:
            raise storage_error(err, "blob") from err

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        try:
            self._file.write(chunk)
        except OSError as err:
            self.abort()
            raise storage_error(err, "blob") from err
        self._hash.update(chunk)
        self.size += len(chunk)

    def commit(self) -> tuple[str, bool]:
        """Verify, fsync and rename into place; returns (digest, created)."""
        assert self._file is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as err:
            self.abort()
            raise storage_error(err, "blob") from err
        self._file = None
        digest = f"sha256:{self._hash.hexdigest()}"
        if self.expected is not None and digest != self.expected:
            self.abort()
            raise DigestMismatch(f'digest mismatch, expected "{self.expected}", got "{digest}"')
        final = self._blobs.name_path(digest)
        created = not final.exists() or self._blobs.escapes(final)
        if created:
            os.chmod(self.temp_path, 0o644)
            os.replace(self.temp_path, final)
            fsync_dir(self._blobs.root)
        else:
            self.temp_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                os.utime(final)
        return digest, created

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self.temp_path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Blobs:
    """The blobs directory of one model store."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def name_path(self, digest: str) -> Path:
        """Where a digest's blob is named, link or not: for replacing or removing that name."""
        return self.root / require_digest(digest).replace(":", "-")

    def escapes(self, path: Path) -> bool:
        """Whether `path` is a symbolic link whose target lies outside the models directory."""
        if not path.is_symlink():
            return False
        return not path.resolve().is_relative_to(self.root.parent.resolve())

    def path(self, digest: str) -> Path:
        """File path of a digest (`sha256:<hex>` or `sha256-<hex>`) to read; a link out of the
        models directory raises UnsafeBlob."""
        path = self.name_path(digest)
        if self.escapes(path):
            raise UnsafeBlob(f"blob {path.name} is a symbolic link to {path.resolve()}, outside "
                             f"the models directory {self.root.parent}: pollama does not follow "
                             "it; remove the link, or pull or create the model again")
        return path

    def exists(self, digest: str) -> bool:
        """Whether the blob is here to read (a link out of the models directory is not)."""
        path = self.name_path(digest)
        return path.is_file() and not self.escapes(path)

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f'blob "{digest}" not found') from None

    def writer(self, expected: str | None = None) -> BlobWriter:
        return BlobWriter(self, expected)

    def write_bytes(self, data: bytes, expected: str | None = None) -> tuple[str, int, bool]:
        """Store bytes; returns (digest, size, created)."""
        with self.writer(expected) as w:
            w.write(data)
            digest, created = w.commit()
        return digest, len(data), created

    def write_chunks(self, chunks: Iterable[bytes], expected: str | None = None) -> tuple[str, int,
                                                                                          bool]:
        with self.writer(expected) as w:
            for chunk in chunks:
                w.write(chunk)
            digest, created = w.commit()
        return digest, w.size, created

    def adopt(self, path: Path, digest: str) -> None:
        """Give a file that its writer has already hashed, found equal to `digest` and
        fsynced (a finished download) its blob name; it must be in the blobs directory."""
        final = self.name_path(digest)
        if path.parent != final.parent:
            raise ValueError(f"{path} is not in {final.parent}")
        os.chmod(path, 0o644)
        os.replace(path, final)
        fsync_dir(self.root)

    def temp_path(self) -> Path:
        """A fresh name in the blobs directory for a file another writer (a quantizer) fills;
        `commit_file` gives it its digest name. Strays are pruned like any temp file."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f"{TEMP_PREFIX}{secrets.token_hex(8)}"

    def commit_file(self, path: Path, on_chunk: Callable[[int], None] | None = None
                    ) -> tuple[str, int, bool]:
        """Hash a finished file from `temp_path`, fsync it and name it by its digest; returns
        (digest, size, created). `on_chunk(bytes_hashed)` is called as hashing goes (it may
        raise to stop); on any failure, or when the blob already exists, the file is removed."""
        if path.parent != self.root:
            raise ValueError(f"{path} is not in {self.root}")
        try:
            h = hashlib.sha256()
            size = 0
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK * 16):
                    h.update(chunk)
                    size += len(chunk)
                    if on_chunk is not None:
                        on_chunk(size)
                os.fsync(f.fileno())
            digest = f"sha256:{h.hexdigest()}"
            final = self.name_path(digest)
            created = not final.exists() or self.escapes(final)  # a link out is replaced
            if created:
                self.adopt(path, digest)
            else:
                path.unlink()
                with contextlib.suppress(OSError):
                    os.utime(final)
        except BaseException as err:
            path.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise storage_error(err, "blob") from err
            raise
        return digest, size, created

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f'blob "{digest}" not found') from None

    def read_text(self, digest: str) -> str:
        return self.read_bytes(digest).decode("utf-8", errors="replace")

    def remove(self, digest: str) -> None:
        self.name_path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if _BLOB_FILE.fullmatch(entry.name):
                yield entry.name.replace("-", ":", 1)

    def fix_names(self) -> None:
        """Rename `sha256:<hex>` files (written by old Ollama versions) to `sha256-<hex>`."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            digest = parse_digest(entry.name)
            if digest and ":" in entry.name:
                os.replace(entry, self.path(digest))

    def prune(self, referenced: set[str], min_age: float = 3600.0) -> list[str]:
        """Delete unreferenced blobs and stray files older than `min_age` seconds."""
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for entry in self.root.iterdir():
            try:
                if now - entry.stat().st_mtime < min_age:
                    continue
            except FileNotFoundError:
                continue
            name = entry.name
            # Ollama's rule: a stray file (temp, stale partial download) or an unreferenced blob.
            if _BLOB_FILE.fullmatch(name) and name.replace("-", ":", 1) in referenced:
                continue
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(name)
        return removed
