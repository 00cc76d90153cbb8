"""`POST /api/create`: turn a create request (a parsed Modelfile) into layers and a manifest.

The request names its weights either by a base model (`from`, whose layers are reused) or by
blobs uploaded beforehand (`files`, `adapters`). Text layers (template, system, params,
messages, license) and the config layer are written as new blobs; the manifest is written last,
so a failed create leaves the old model (if any) untouched. Progress statuses are Ollama's.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from pollama import go as gojson
from pollama.errors import (
    BadRequest,
    InvalidModelName,
    ModelNotFound,
    NotSupported,
    SpeculativeDecodingUnsupported,
)
from pollama.formats import gguf, options
from pollama.models import convert
from pollama.models.quantize import (
    PROGRESS_DIGEST,
    QUANTIZE_TYPES,
    needs_quantizing,
    quantize_layer,
    requested_type,
)
from pollama.names import Name, parse
from pollama.store import Store
from pollama.store import manifest as mt
from pollama.store.blobs import require_digest
from pollama.store.manifest import Layer, Manifest

log = logging.getLogger("pollama.models.create")

Progress = Callable[[dict[str, Any]], None]
PullFn = Callable[[Name, Progress], None]


def _valid_relative_path(path: str) -> bool:
    # Go's fs.ValidPath: slash-separated, no empty, "." or ".." elements, not rooted.
    if path == ".":
        return True
    if not path or path.startswith("/") or path.endswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _check_files(files: dict[str, str] | None) -> None:
    for key, digest in (files or {}).items():
        if not _valid_relative_path(key):
            raise BadRequest("file path must be relative")
        require_digest(digest)


def validate_request(store: Store, request: dict[str, Any]) -> None:
    """Cheap checks, so bad requests fail with a status before any progress streams."""
    if request.get("draft_files") or request.get("draft_quantize"):
        raise SpeculativeDecodingUnsupported()
    _check_files(request.get("files"))
    _check_files(request.get("adapters"))
    if not parse(str(request.get("model") or request.get("name") or "")).is_valid:
        raise InvalidModelName()
    for digest in [*(request.get("files") or {}).values(),
                   *(request.get("adapters") or {}).values()]:
        if not store.blobs.exists(digest):
            raise BadRequest(f'blob "{digest}" not found, upload it with '
                             f"POST /api/blobs/{digest}")
    try:
        # Beyond Ollama, which stores any value and fails at every later request.
        parameters = options.from_map(request.get("parameters") or {})
    except options.InvalidOption as err:
        raise BadRequest(str(err)) from None
    if parameters.get("draft_num_predict"):
        raise SpeculativeDecodingUnsupported()


class _LayerBuilder:
    """Collects layers and reports Ollama's `using existing` / `creating new layer` statuses."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.layers: list[Layer] = []
        self.statuses: list[str] = []
        self.removed: set[str] = set()

    def text_layer(self, media_type: str, data: bytes) -> Layer:
        digest, size, created = self.store.blobs.write_bytes(data)
        status = "creating new layer" if created else "using existing layer"
        self.statuses.append(f"{status} {digest}")
        return Layer(media_type, digest, size)

    def swap(self, old: Layer, new: Layer, created: bool) -> None:
        """Put `new` where `old` was (a quantized model in place of its source)."""
        self.layers = [new if layer is old else layer for layer in self.layers]
        status = "creating new layer" if created else "using existing layer"
        was = (f"using existing layer {old.digest}", f"creating new layer {old.digest}")
        self.statuses = [f"{status} {new.digest}" if s in was else s for s in self.statuses]

    def replace(self, media_type: str, layer: Layer | None) -> None:
        kept = []
        for existing in self.layers:
            if existing.media_type == media_type:
                self.removed.add(existing.digest)
            else:
                kept.append(existing)
        self.layers = kept
        if layer is not None:
            self.layers.append(layer)


def _gguf_layer(store: Store, key: str, digest: str, progress: Progress,
                media_type: str | None = None) -> tuple[Layer, gguf.GGUFInfo]:
    progress({"status": "parsing GGUF"})
    digest = require_digest(digest)
    path = store.blobs.path(digest)
    if not path.is_file():
        raise BadRequest(f'blob "{digest}" not found, upload it with POST /api/blobs/{digest}')
    try:
        info = gguf.read(path)
    except gguf.NotGGUF:
        raise BadRequest("supplied file was not in GGUF format") from None
    except gguf.GGUFError as err:
        raise BadRequest(f"invalid GGUF file: {err}") from None
    if media_type is None:
        media_type = mt.MEDIA_MODEL
        if info.kv.get("general.type") == "adapter":
            media_type = mt.MEDIA_ADAPTER
        elif _is_projector(info.kv):
            media_type = mt.MEDIA_PROJECTOR
    return Layer(media_type, digest, path.stat().st_size, from_=key), info


def _is_projector(kv: dict[str, Any]) -> bool:
    """A vision/audio projector GGUF (mmproj), stored as its own layer."""
    if kv.get("general.type") in ("projector", "mmproj"):
        return True
    if not kv.get("block_count") and kv.get("vision.block_count"):
        return True
    return kv.get("general.architecture") == "clip" and not kv.get("block_count")


def _add_projectors(store: Store, builder: _LayerBuilder, files: dict[str, str],
                    progress: Progress) -> None:
    """`FROM <model>` with `FROM ./mmproj.gguf`: the projector file replaces the base's (Ollama
    drops `files` when `from` is set, and the picture would be silently lost). Only projectors
    can join an existing model: a second set of weights is refused, not ignored."""
    for key in sorted(files):
        if _files_kind(store, {key: files[key]}) != "gguf":
            raise BadRequest(f"{key}: only a GGUF projector file can be added to an existing "
                             "model")
        layer, _info = _gguf_layer(store, key, files[key], progress)
        if layer.media_type != mt.MEDIA_PROJECTOR:
            raise BadRequest(f"{key} is not a projector: FROM an existing model takes only a "
                             "projector (mmproj) file besides it")
        builder.layers = [la for la in builder.layers if la.media_type != mt.MEDIA_PROJECTOR]
        builder.layers.append(layer)
        builder.statuses.append(f"using existing layer {layer.digest}")


def _files_kind(store: Store, files: dict[str, str]) -> str:
    for key, digest in files.items():
        if key.endswith(".safetensors"):
            return "safetensors"
        if key.endswith(".gguf"):
            return "gguf"
        parsed = require_digest(digest)
        try:
            with open(store.blobs.path(parsed), "rb") as f:
                if f.read(4) == b"GGUF":
                    return "gguf"
        except OSError:
            return ""
    return ""


def _convert_safetensors(store: Store, files: dict[str, str], quantize: str,
                         progress: Progress) -> tuple[Layer, gguf.GGUFInfo, bool]:
    """Convert the uploaded Hugging Face folder to a GGUF blob: (layer, its info, whether the
    blob is new). The blobs are laid out by name in a staging directory (links, no copies); the
    GGUF streams into a blob writer, so a failure or a gone client leaves no file behind."""
    # F32/F16/BF16 are written directly; a quantized type is made from the default output.
    output_type = quantize if quantize in convert.OUTPUT_TYPES else None
    with store.staging_dir() as folder:
        for key, digest in files.items():
            target = folder / key
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(store.blobs.path(require_digest(digest)))
            except OSError:
                raise BadRequest(f"file path conflicts with another file: {key}") from None
        conversion = convert.prepare(folder, output_type)
        progress({"status": "converting model"})

        def report(done: int, total: int) -> None:
            progress({"status": "converting model", "digest": PROGRESS_DIGEST, "total": total,
                      "completed": done})

        with store.blobs.writer() as writer:
            conversion.write(writer, report)
            digest, created = writer.commit()
    path = store.blobs.path(digest)
    return Layer(mt.MEDIA_MODEL, digest, path.stat().st_size), gguf.read(path), created


def create_model(store: Store, request: dict[str, Any], progress: Progress,
                 pull: PullFn | None = None) -> None:
    """Build the model `request` describes; raises PollamaError subclasses with Ollama's texts."""
    new_blobs: set[str] = set()  # big blobs this create made (a converted or quantized model)
    try:
        _create_model(store, request, progress, pull, new_blobs)
    except BaseException:  # a failed or abandoned create keeps no blob of its own making
        store.remove_unreferenced(new_blobs)
        raise


def _create_model(store: Store, request: dict[str, Any], progress: Progress,
                  pull: PullFn | None, new_blobs: set[str]) -> None:
    validate_request(store, request)
    quantize = requested_type(request)

    name = parse(str(request.get("model") or request.get("name") or ""))
    if not name.is_valid:
        raise InvalidModelName()
    name = store.manifests.resolve(name)
    old = store.manifests.read(name)

    builder = _LayerBuilder(store)
    config: dict[str, Any] = {}
    model_infos: list[tuple[Layer, gguf.GGUFInfo]] = []

    if request.get("from"):
        base_name = parse(str(request["from"]))
        if not base_name.is_valid:
            raise InvalidModelName()
        base_name = store.manifests.resolve(base_name)
        base = store.manifests.read(base_name)
        if base is None:
            if pull is None:
                raise ModelNotFound(str(request["from"]))
            pull(base_name, progress)
            base = store.manifests.read(base_name)
            if base is None:
                raise ModelNotFound(str(request["from"]))
        from_display = base_name.display_shortest()
        for src in base.manifest.layers:
            layer = Layer(src.media_type, src.digest, src.size, from_=from_display, name=src.name)
            builder.statuses.append(f"using existing layer {src.digest}")
            builder.layers.append(layer)
            if src.media_type == mt.MEDIA_MODEL and store.blobs.exists(src.digest):
                with contextlib.suppress(gguf.GGUFError):
                    model_infos.append((layer, gguf.read(store.blobs.path(src.digest))))
        _add_projectors(store, builder, request.get("files") or {}, progress)
        try:
            base_config = json.loads(store.blobs.read_bytes(base.manifest.config.digest))
            for key in ("renderer", "parser", "requires", "model_format", "capabilities"):
                if base_config.get(key):
                    config[key] = base_config[key]
        except Exception:  # a base without a readable config still gives its layers
            pass
    elif request.get("files"):
        files: dict[str, str] = request["files"]
        kind = _files_kind(store, files)
        if kind == "safetensors":
            layer, info, created = _convert_safetensors(store, files, quantize, progress)
            if created:
                new_blobs.add(layer.digest)
                # Unless the manifest names it (a quantized model may take its place), it goes.
                builder.removed.add(layer.digest)
            builder.layers.append(layer)
            builder.statuses.append(f"{'creating new' if created else 'using existing'} layer "
                                    f"{layer.digest}")
            model_infos.append((layer, info))
        elif kind != "gguf":
            raise BadRequest("unknown type")
        else:
            for key in sorted(files):
                layer, info = _gguf_layer(store, key, files[key], progress)
                builder.layers.append(layer)
                builder.statuses.append(f"using existing layer {layer.digest}")
                if layer.media_type == mt.MEDIA_MODEL:
                    model_infos.append((layer, info))
    else:
        raise BadRequest("neither 'from' or 'files' was specified")

    adapters: dict[str, str] = request.get("adapters") or {}
    if len(adapters) > 1:
        raise BadRequest("only one adapter is currently supported")
    for key, digest in adapters.items():
        if key.endswith(".safetensors"):
            raise NotSupported("safetensors adapters are not supported yet; convert the adapter "
                               "to GGUF first")
        layer, _info = _gguf_layer(store, key, digest, progress, mt.MEDIA_ADAPTER)
        builder.layers.append(layer)
        builder.statuses.append(f"using existing layer {layer.digest}")

    if quantize:
        if not model_infos:  # Ollama skips the request silently
            raise BadRequest("cannot quantize: the model has no GGUF weights")
        for i, (layer, info) in enumerate(model_infos):
            if not needs_quantizing(info, quantize):
                continue
            new_layer, new_info, created = quantize_layer(store, layer, info, quantize, progress)
            if created:
                new_blobs.add(new_layer.digest)
            builder.swap(layer, new_layer, created)
            model_infos[i] = (new_layer, new_info)
            config["file_type"] = QUANTIZE_TYPES[quantize]

    for _layer, info in model_infos:
        config.setdefault("model_format", "gguf")
        config.setdefault("model_family", info.architecture)
        config.setdefault("model_type", gguf.human_number(info.parameter_count))
        config.setdefault("file_type", info.file_type)
        config.setdefault("model_families", []).append(info.architecture)

    _apply_text_layers(builder, request)

    for key in ("renderer", "parser", "requires"):
        if request.get(key):
            config[key] = request[key]

    config_layer = builder.text_layer(mt.MEDIA_CONFIG, gojson.encode(_config_v2(config),
                                                                     sort_keys=False))
    builder.statuses.pop()  # Ollama reports text layers only, not the config blob
    for status in builder.statuses:
        progress({"status": status})
    progress({"status": "writing manifest"})
    store.manifests.write(name, Manifest(config_layer, builder.layers))

    if old is not None:
        store.remove_unreferenced(old.manifest.digests() | builder.removed)
    elif builder.removed:
        store.remove_unreferenced(builder.removed)
    progress({"status": "success"})


def _apply_text_layers(builder: _LayerBuilder, request: dict[str, Any]) -> None:
    template = request.get("template")
    if template:
        _check_template(str(template))
        builder.replace(mt.MEDIA_TEMPLATE, None)
        builder.replace(mt.MEDIA_PROMPT, None)
        builder.replace(mt.MEDIA_TEMPLATE,
                        builder.text_layer(mt.MEDIA_TEMPLATE, str(template).encode()))
    system = request.get("system")
    if system:
        builder.replace(mt.MEDIA_SYSTEM, builder.text_layer(mt.MEDIA_SYSTEM, str(system).encode()))
    licenses = request.get("license")
    if isinstance(licenses, str):
        licenses = [licenses] if licenses else []
    if licenses is not None and not isinstance(licenses, list):
        raise BadRequest(f"unknown license type: {type(licenses).__name__}")
    for text in licenses or []:
        builder.layers.append(builder.text_layer(mt.MEDIA_LICENSE, str(text).encode()))

    params = dict(request.get("parameters") or {})
    for existing in [lay for lay in builder.layers if lay.media_type == mt.MEDIA_PARAMS]:
        try:
            old_params = json.loads(builder.store.blobs.read_bytes(existing.digest))
        except Exception:
            old_params = {}
        for key, value in (old_params or {}).items():
            params.setdefault(key, value)
    if params:
        builder.replace(mt.MEDIA_PARAMS, builder.text_layer(mt.MEDIA_PARAMS,
                                                            gojson.encode(params)))

    messages = request.get("messages") or []
    if messages:
        encoded = [_message_json(m) for m in messages]
        builder.replace(mt.MEDIA_MESSAGES,
                        builder.text_layer(mt.MEDIA_MESSAGES,
                                           gojson.encode(encoded, sort_keys=False)))


def _message_json(message: Any) -> dict[str, Any]:
    """A message in api.Message's field order with its omitempty fields left out."""
    if not isinstance(message, dict):
        raise BadRequest("messages must be objects with role and content")
    out: dict[str, Any] = {"role": str(message.get("role", "")).lower(),
                           "content": str(message.get("content") or "")}
    for key in ("thinking", "images", "tool_calls", "tool_name", "tool_call_id"):
        if message.get(key):
            out[key] = message[key]
    return out


def _check_template(text: str) -> None:
    from pollama.template.go import Template, TemplateError

    try:
        Template.parse(text)
    except TemplateError as err:
        raise BadRequest(f"template error: {err}") from None


def _config_v2(config: dict[str, Any]) -> dict[str, Any]:
    """Ollama's ConfigV2 in its field order, omitempty fields dropped."""
    out: dict[str, Any] = {
        "model_format": config.get("model_format", ""),
        "model_family": config.get("model_family", ""),
        "model_families": config.get("model_families"),
        "model_type": config.get("model_type", ""),
        "file_type": config.get("file_type", ""),
    }
    for key in ("renderer", "parser", "requires", "remote_host", "remote_model", "capabilities",
                "context_length", "embedding_length", "base_name"):
        if config.get(key):
            out[key] = config[key]
    out["architecture"] = "amd64"
    out["os"] = "linux"
    return out
