"""Manifests under `<models>/manifests/<host>/<namespace>/<model>/<tag>`, as Ollama writes them.

A manifest is Docker's v2 image manifest: a config layer plus layers, each with a media type,
digest and size. The model's ID is the sha256 of the manifest file's bytes. Pulled manifests are
kept byte-for-byte as received; created ones are encoded the way Go's json.Encoder does.
Writes go to a temp file in the same directory, are fsynced, then renamed over the target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pollama import go as gojson
from pollama.names import Name
from pollama.store.blobs import storage_error

MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_PROMPT = "application/vnd.ollama.image.prompt"  # legacy name of the template layer
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_LICENSE = "application/vnd.ollama.image.license"
MEDIA_DRAFT = "application/vnd.ollama.image.draft"
MEDIA_TENSOR = "application/vnd.ollama.image.tensor"
MEDIA_EMBED = "application/vnd.ollama.image.embed"


class CorruptManifest(Exception):
    """A manifest file that is not a valid manifest JSON document."""


@dataclass
class Layer:
    media_type: str
    digest: str
    size: int
    from_: str = ""
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.from_:
            out["from"] = self.from_
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layer:
        if not isinstance(data, dict):
            raise CorruptManifest("layer is not an object")
        try:
            return cls(str(data["mediaType"]), str(data["digest"]), int(data.get("size", 0)),
                       str(data.get("from") or ""), str(data.get("name") or ""))
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptManifest(f"bad layer: {err}") from err


@dataclass
class Manifest:
    config: Layer
    layers: list[Layer] = field(default_factory=list)
    schema_version: int = 2
    media_type: str = MEDIA_MANIFEST

    def to_json(self) -> dict[str, Any]:
        return {"schemaVersion": self.schema_version, "mediaType": self.media_type,
                "config": self.config.to_json(), "layers": [lay.to_json() for lay in self.layers]}

    def encode(self) -> bytes:
        """The bytes Ollama's WriteManifest would write (Go json.Encoder, struct field order)."""
        return gojson.encode(self.to_json(), sort_keys=False)

    @classmethod
    def decode(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise CorruptManifest(str(err)) from err
        if not isinstance(data, dict) or "config" not in data:
            raise CorruptManifest("not a manifest")
        layers = data.get("layers") or []
        if not isinstance(layers, list):
            raise CorruptManifest("layers is not a list")
        return cls(Layer.from_json(data["config"]), [Layer.from_json(x) for x in layers],
                   int(data.get("schemaVersion", 2)), str(data.get("mediaType", MEDIA_MANIFEST)))

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers) + self.config.size

    def all_layers(self) -> list[Layer]:
        return [*self.layers, self.config]

    def digests(self) -> set[str]:
        return {layer.digest for layer in self.all_layers()}

    def find(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]


@dataclass
class StoredManifest:
    """A manifest as found on disk: its name, parsed content, ID and modification time."""

    name: Name
    manifest: Manifest
    digest: str  # hex sha256 of the file bytes: the model's ID
    modified_at: datetime
    path: Path


class Manifests:
    """The manifests directory of one model store."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: Name) -> Path:
        return self.root.joinpath(*name.manifest_relpath().parts)

    def read(self, name: Name) -> StoredManifest | None:
        """The manifest stored under exactly this name, or None."""
        path = self.path(name)
        try:
            raw = path.read_bytes()
            mtime = path.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return StoredManifest(name, Manifest.decode(raw), hashlib.sha256(raw).hexdigest(),
                              datetime.fromtimestamp(mtime, UTC), path)

    def resolve(self, name: Name) -> Name:
        """The on-disk spelling of `name` if a manifest matches it case-insensitively."""
        if not name.is_valid:
            return name
        if self.path(name).is_file():
            return name
        parts = list(name.parts())
        current = self.root
        for i, part in enumerate(parts):
            try:
                entries = list(current.iterdir())
            except (FileNotFoundError, NotADirectoryError):
                return name
            match = next((e for e in entries if e.name.lower() == part.lower()), None)
            if match is None:
                return name
            parts[i] = match.name
            current = match
        return name.with_parts(*parts)

    def write(self, name: Name, manifest: Manifest | bytes) -> str:
        """Atomically store a manifest; returns its digest (hex). Bytes are kept as given."""
        raw = manifest if isinstance(manifest, bytes) else manifest.encode()
        path = self.path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
            try:
                with open(temp, "xb") as f:
                    f.write(raw)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(temp, 0o644)
                os.replace(temp, path)
            finally:
                temp.unlink(missing_ok=True)
        except OSError as err:
            raise storage_error(err, "manifest") from err
        return hashlib.sha256(raw).hexdigest()

    def delete(self, name: Name) -> None:
        path = self.path(name)
        path.unlink(missing_ok=True)
        self.prune_empty_dirs(path.parent)

    def prune_empty_dirs(self, start: Path | None = None) -> None:
        """Remove empty directories (from `start` upwards, or the whole tree)."""
        if start is not None:
            current = start
            while current != self.root and self.root in current.parents:
                try:
                    current.rmdir()
                except OSError:
                    return
                current = current.parent
            return
        if not self.root.is_dir():
            return
        for dirpath, _dirs, _files in sorted(os.walk(self.root), key=lambda w: -len(w[0])):
            if Path(dirpath) != self.root:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    def all(self) -> tuple[list[StoredManifest], list[Path]]:
        """Every valid `host/namespace/model/tag` manifest, and the paths of corrupt ones."""
        found: list[StoredManifest] = []
        corrupt: list[Path] = []
        if not self.root.is_dir():
            return found, corrupt
        for path in self.root.glob("*/*/*/*"):
            if not path.is_file() or path.name.startswith("."):
                continue
            rel = path.relative_to(self.root).parts
            host, namespace, model, tag = rel  # the glob matched exactly four parts
            name = Name(host, namespace, model, tag)
            if not name.is_valid:
                continue
            try:
                stored = self.read(name)
            except CorruptManifest:
                corrupt.append(path)
                continue
            if stored is not None:
                found.append(stored)
        return found, corrupt
