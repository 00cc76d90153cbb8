"""A stored model read back from its manifest: weights, template, system, params, messages."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pollama.store import Store, StoredManifest
from pollama.store import manifest as mt

log = logging.getLogger("pollama.store")


@dataclass
class Model:
    """Everything the manifest of one model name points at."""

    stored: StoredManifest
    config: dict[str, Any]
    model_path: Path | None
    projector_paths: list[Path] = field(default_factory=list)
    adapter_paths: list[Path] = field(default_factory=list)
    template: str | None = None  # Go template text of a TEMPLATE layer
    system: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    parent_model: str = ""

    @property
    def name(self) -> str:
        return self.stored.name.display_shortest()

    @property
    def digest(self) -> str:
        return self.stored.digest


def load_model(store: Store, text: str) -> Model:
    """Read a model by name; raises ModelNotFound."""
    stored = store.get(text)
    return model_from_manifest(store, stored)


def model_from_manifest(store: Store, stored: StoredManifest) -> Model:
    manifest = stored.manifest
    try:
        config = json.loads(store.blobs.read_bytes(manifest.config.digest))
        if not isinstance(config, dict):
            config = {}
    except Exception:  # a missing or unreadable config blob still leaves a usable model
        config = {}
    model = Model(stored=stored, config=config, model_path=None)
    for layer in manifest.layers:
        kind = layer.media_type
        if kind == mt.MEDIA_MODEL:
            model.model_path = store.blobs.path(layer.digest)
            model.parent_model = layer.from_
        elif kind == mt.MEDIA_PROJECTOR:
            model.projector_paths.append(store.blobs.path(layer.digest))
        elif kind == mt.MEDIA_ADAPTER:
            model.adapter_paths.append(store.blobs.path(layer.digest))
        elif kind in (mt.MEDIA_TEMPLATE, mt.MEDIA_PROMPT):
            model.template = store.blobs.read_text(layer.digest)
        elif kind == mt.MEDIA_SYSTEM:
            model.system = store.blobs.read_text(layer.digest)
        elif kind == mt.MEDIA_LICENSE:
            model.licenses.append(store.blobs.read_text(layer.digest))
        elif kind == mt.MEDIA_PARAMS:
            params = json.loads(store.blobs.read_bytes(layer.digest) or b"{}")
            if isinstance(params, dict):
                model.params = params
        elif kind == mt.MEDIA_MESSAGES:
            messages = json.loads(store.blobs.read_bytes(layer.digest) or b"[]")
            if isinstance(messages, list):
                model.messages = [m for m in messages if isinstance(m, dict)]
        elif kind == mt.MEDIA_EMBED:
            log.warning("model %s has a deprecated embed layer; ignoring it", stored.name)
    return model
