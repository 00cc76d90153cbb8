"""What the server knows about a stored model: its layers, GGUF metadata, template, capabilities.

Built from the manifest and the GGUF header, and cached by manifest digest, so a request does
not re-read a 100 MB file's metadata. `list_summary()` keeps, per manifest digest too, the few
values `/api/tags` shows (Ollama's model list cache), without holding on to the GGUF header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pollama.config import Config
from pollama.formats import gguf
from pollama.store import Store, StoredManifest
from pollama.store.model import Model, load_model, model_from_manifest
from pollama.template.go import TemplateError
from pollama.template.prompt import PromptTemplate


@dataclass
class ModelInfo:
    model: Model
    gguf: gguf.GGUFInfo | None
    template: PromptTemplate
    capabilities: list[str]
    # Why the weights file cannot be read (missing, or no longer a valid GGUF), else "".
    damage: str = ""

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def n_ctx_train(self) -> int:
        return _gguf_int(self.gguf, "context_length")


def _token_text(info: gguf.GGUFInfo, key: str) -> str:
    token_id = info.kv.get(f"tokenizer.ggml.{key}_token_id")
    tokens = info.kv.get("tokenizer.ggml.tokens")
    if isinstance(token_id, int) and isinstance(tokens, list) and 0 <= token_id < len(tokens):
        return str(tokens[token_id])
    return ""


def go_template_capabilities(source: str) -> list[str]:
    """Capabilities a Go TEMPLATE adds (spec TPL-11): tools, insert, thinking."""
    from pollama.template.ollama import TemplateRenderError, parse, template_vars, thinking_tags

    try:
        template = parse(source)
        names = template_vars(template)
    except (TemplateRenderError, TemplateError):
        return []
    caps = []
    if "tools" in names:
        caps.append("tools")
    if "suffix" in names:
        caps.append("insert")
    if thinking_tags(template) is not None:
        caps.append("thinking")
    return caps


def _go_tool_round_trip(source: str) -> bool:
    """A Go template that renders tool calls and tool results back (Ollama's heuristic)."""
    from pollama.template.ollama import TemplateRenderError, parse, template_vars

    try:
        names = template_vars(parse(source))
    except (TemplateRenderError, TemplateError):
        return False
    return "tools" in names and "toolcalls" in names and (
        'eq .Role "tool"' in source or "tool_response" in source or "TOOL_RESULTS" in source)


def prefer_chat_template(chat_template: str, go_template: str) -> bool:
    """TPL-12: with OLLAMA_GO_TEMPLATE unset, the GGUF template wins when it can do more."""
    chat_caps = gguf.chat_template_capabilities(chat_template)
    go_caps = go_template_capabilities(go_template)
    chat_trip = gguf.chat_template_has_tool_round_trip(chat_template)
    go_trip = _go_tool_round_trip(go_template)
    if len(chat_caps) > len(go_caps):
        return not go_trip or chat_trip
    if sorted(chat_caps) != sorted(go_caps) or "tools" not in chat_caps:
        return False
    return chat_trip and not go_trip


_derived: dict[str, tuple[gguf.GGUFInfo | None, PromptTemplate, list[str]]] = {}


def build(store: Store, config: Config, name: str) -> ModelInfo:
    """Read a model by name (ModelNotFound if missing) and derive what requests need."""
    model = load_model(store, name)
    derived = _derived.get(model.digest)
    damage = ""
    if derived is None:
        info, damage = _read_weights(model)
        derived = _derive(model, config, info)
        if not damage:  # a damaged file may be put right (pulled again): read it again then
            if len(_derived) > 256:
                _derived.clear()
            _derived[model.digest] = derived
    info, template, caps = derived
    return ModelInfo(model, info, template, caps, damage)


def _read_weights(model: Model) -> tuple[gguf.GGUFInfo | None, str]:
    """The header of a model's GGUF, or why it cannot be read ("" when there are no weights)."""
    path = model.model_path
    if path is None:
        return None, ""
    try:
        return gguf.read(path), ""
    except FileNotFoundError:
        return None, f"its weights file {path.name} is missing"
    except (gguf.GGUFError, OSError) as err:
        return None, f"its weights file {path.name} is damaged ({err})"


def _derive(model: Model, config: Config, info: gguf.GGUFInfo | None
            ) -> tuple[gguf.GGUFInfo | None, PromptTemplate, list[str]]:
    chat_template = info.chat_template if info is not None else None
    go_template = model.template
    if go_template is not None and chat_template and (
            config.go_template is False or
            (config.go_template is None and prefer_chat_template(chat_template, go_template))):
        go_template = None  # the GGUF's own template runs instead (TPL-12)
    template = PromptTemplate(
        go_template=go_template,
        chat_template=chat_template,
        bos_token=_token_text(info, "bos") if info else "",
        eos_token=_token_text(info, "eos") if info else "",
    )
    caps: list[str] = []
    if info is not None:
        caps = list(gguf.gguf_capabilities(info, bool(model.projector_paths)))
    elif model.config.get("capabilities"):
        caps = list(model.config["capabilities"])
    if go_template is not None:
        # The Go template decides tools/insert/thinking; the GGUF still decides the rest.
        caps = [c for c in caps if c not in ("tools", "thinking", "insert")]
        caps += go_template_capabilities(go_template)
    return info, template, caps


# -- /api/tags --


@dataclass(frozen=True, slots=True)
class ListSummary:
    """What `/api/tags` shows of a model beyond its manifest (Ollama's modelListSummary)."""

    config: dict[str, Any]  # the config blob; treat as read-only (cached)
    parent_model: str  # `from` of the model layer
    capabilities: tuple[str, ...]  # as /api/show reports them (`ModelInfo.capabilities`)
    context_length: int  # the config's, else the GGUF's `<arch>.context_length`; 0 = unknown
    embedding_length: int  # the config's, else the GGUF's `<arch>.embedding_length`
    gguf_file_type: str  # the GGUF's quantisation name; "" when no GGUF was read


_summaries: dict[str, ListSummary] = {}


def list_summary(store: Store, config: Config, stored: StoredManifest) -> ListSummary:
    """The listing values of a stored model, cached by manifest digest.

    Raises (NotFound, ValueError) when the config blob is missing or is not a JSON object, or a
    template layer cannot be read: Ollama leaves such a model out of the list.
    """
    summary = _summaries.get(stored.digest)
    if summary is None:
        summary = _list_summary(store, config, stored)
        if len(_summaries) >= 4096:
            _summaries.clear()
        _summaries[stored.digest] = summary
    return summary


def _config_int(config: dict[str, Any], key: str) -> int:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _gguf_int(info: gguf.GGUFInfo | None, suffix: str) -> int:
    if info is None:
        return 0
    value = info.kv.get(f"{info.architecture}.{suffix}")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _list_summary(store: Store, config: Config, stored: StoredManifest) -> ListSummary:
    model_config: dict[str, Any] = {}
    if stored.manifest.config.digest:
        decoded = json.loads(store.blobs.read_bytes(stored.manifest.config.digest))
        if decoded is not None and not isinstance(decoded, dict):
            raise ValueError("config blob is not a JSON object")
        model_config = decoded or {}
    model = model_from_manifest(store, stored)
    model.config = model_config
    cached = _derived.get(stored.digest)
    # Without a request for this model yet, derive once and keep only the small values here:
    # `_derived` would hold every listed model's parsed header (megabytes each).
    info, _template, caps = cached if cached is not None else \
        _derive(model, config, _read_weights(model)[0])
    remote = bool(model_config.get("remote_host") or model_config.get("remote_model"))
    if remote:  # Ollama reads no weights for a model that runs elsewhere
        info = None
    return ListSummary(
        config=model_config,
        parent_model=model.parent_model,
        capabilities=tuple(caps),
        context_length=_config_int(model_config, "context_length") or
        _gguf_int(info, "context_length"),
        embedding_length=_config_int(model_config, "embedding_length") or
        _gguf_int(info, "embedding_length"),
        gguf_file_type=info.file_type if info is not None else "",
    )
