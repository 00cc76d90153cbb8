"""The model store, byte-compatible with Ollama's `~/.ollama/models`: blobs plus manifests.

Only the server writes here. Blobs are shared between manifests and deleted only when no
manifest references them any more.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pollama.errors import InvalidModelName, ModelNotFound
from pollama.names import Name, parse
from pollama.store.blobs import Blobs, parse_digest
from pollama.store.manifest import CorruptManifest, Manifest, Manifests, StoredManifest

__all__ = ["Blobs", "CorruptManifest", "Manifest", "Manifests", "Store", "StoredManifest",
           "parse_digest"]

log = logging.getLogger("pollama.store")

STAGING_PREFIX = "pollama-staging-"


class Store:
    """One models directory (OLLAMA_MODELS)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = Blobs(root / "blobs")
        self.manifests = Manifests(root / "manifests")

    def ensure_dirs(self) -> None:
        self.blobs.root.mkdir(parents=True, exist_ok=True)
        self.manifests.root.mkdir(parents=True, exist_ok=True)

    def name(self, text: str) -> Name:
        """Parse a requested model name and use the on-disk spelling if one matches."""
        name = parse(text)
        if not name.is_valid:
            raise InvalidModelName()
        return self.manifests.resolve(name)

    def get(self, text: str) -> StoredManifest:
        """The stored manifest of a model name; ModelNotFound when there is none."""
        name = parse(text)
        if not name.is_valid:
            raise ModelNotFound(text)
        stored = self.manifests.read(self.manifests.resolve(name))
        if stored is None:
            raise ModelNotFound(text)
        return stored

    def referenced_digests(self) -> tuple[set[str], bool]:
        """Digests used by any manifest, and whether every manifest could be read."""
        found, corrupt = self.manifests.all()
        digests: set[str] = set()
        for stored in found:
            digests |= stored.manifest.digests()
        return digests, not corrupt

    def remove_unreferenced(self, candidates: set[str]) -> None:
        """Delete those of `candidates` that no manifest references any more."""
        referenced, complete = self.referenced_digests()
        if not complete:
            log.warning("corrupt manifests detected, not removing layers")
            return
        for digest in candidates - referenced:
            self.blobs.remove(digest)

    def delete(self, text: str) -> None:
        stored = self.get(text)
        self.manifests.delete(stored.name)
        self.remove_unreferenced(stored.manifest.digests())

    def copy(self, source: str, destination: str) -> None:
        src = parse(source)
        if not src.is_valid:
            raise InvalidModelName(f'source "{source}" is invalid')
        dst = parse(destination)
        if not dst.is_valid:
            raise InvalidModelName(f'destination "{destination}" is invalid')
        stored = self.manifests.read(self.manifests.resolve(src))
        if stored is None:
            raise ModelNotFound(source, f'model "{source}" not found')
        dst = self.manifests.resolve(dst)
        if dst.parts() == stored.name.parts():
            return
        self.manifests.write(dst, stored.path.read_bytes())

    def prune(self) -> None:
        """Server start: drop unreferenced blobs, stray files and empty manifest dirs."""
        self.blobs.fix_names()
        referenced, complete = self.referenced_digests()
        if not complete:
            log.warning("corrupt manifests detected, skipping prune operation.  Re-pull or "
                        "delete to clear")
            return
        removed = self.blobs.prune(referenced)
        if removed:
            log.info("pruned %d unused blob files", len(removed))
        self.manifests.prune_empty_dirs()
        self._remove_stale_transfers()

    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        """A temporary directory in the store's root (a conversion lays its uploaded files out
        there by name), removed on exit; `prune` removes one a dead server left."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _remove_stale_transfers(self, min_age: float = 3600.0) -> None:
        """Export/import temp tars and staging directories a dead server left in the store's
        root (older than an hour)."""
        now = time.time()
        for pattern in ("export-*.tar", "import-*.tar", f"{STAGING_PREFIX}*"):
            for path in self.root.glob(pattern):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime >= min_age:
                        if path.is_dir():
                            shutil.rmtree(path, ignore_errors=True)
                        else:
                            path.unlink()
