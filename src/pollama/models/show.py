"""`POST /api/show`: everything about one model, in Ollama's ShowResponse shape (spec SHOW-*)."""

from __future__ import annotations

import contextlib
from typing import Any

from pollama.config import Config
from pollama.formats import gguf, modelfile
from pollama.go import go_time
from pollama.models.details import model_details
from pollama.models.info import build
from pollama.store import Store


def show_model(store: Store, config: Config, name: str, *, system: str = "",
               options: dict[str, Any] | None = None, verbose: bool = False) -> dict[str, Any]:
    """The show response for `name` (a request's `system` and `options` replace the model's,
    `verbose` adds whole metadata arrays); raises ModelNotFound."""
    info = build(store, config, name)
    model = info.model
    details = model_details(model.config, model.parent_model)
    if info.gguf is not None and details["quantization_level"] in ("", "unknown"):
        details["quantization_level"] = info.gguf.file_type
    system = system or model.system
    template = {"go": info.template.go_template, "jinja": info.template.chat_template}.get(
        info.template.kind) or "{{ .Prompt }}"
    params = dict(model.params)
    shown_params = {**params, **(options or {})}
    text = modelfile.format_modelfile(
        model.stored.name.display_shortest(),
        str(model.model_path) if model.model_path else "",
        adapters=[str(p) for p in model.adapter_paths],
        projectors=[str(p) for p in model.projector_paths],
        # Only a TEMPLATE layer is printed: a GGUF's own Jinja template needs no line, and
        # printing Ollama's `{{ .Prompt }}` default would replace it on re-create.
        template=model.template,
        system=system,
        parameters=shown_params,
        licenses=model.licenses,
        messages=model.messages,
        renderer=model.config.get("renderer", ""),
        parser=model.config.get("parser", ""),
        requires=model.config.get("requires", ""),
    )
    resp: dict[str, Any] = {}
    if model.licenses:
        resp["license"] = "\n".join(model.licenses)
    resp["modelfile"] = text
    if params:
        resp["parameters"] = modelfile.format_parameters(params)
    resp["template"] = template
    if system:
        resp["system"] = system
    for key in ("renderer", "parser"):
        if model.config.get(key):
            resp[key] = model.config[key]
    resp["details"] = details
    if model.messages:
        resp["messages"] = [{"role": m.get("role", ""), "content": m.get("content", "")}
                            for m in model.messages]
    resp["model_info"] = gguf.model_info(info.gguf, verbose) if info.gguf else {}
    if model.projector_paths:
        with contextlib.suppress(gguf.GGUFError):
            resp["projector_info"] = gguf.model_info(gguf.read(model.projector_paths[0]),
                                                     verbose)
    if info.gguf is not None and info.gguf.tensors:
        resp["tensors"] = info.gguf.tensors
    if info.capabilities:
        resp["capabilities"] = info.capabilities
    resp["modified_at"] = go_time(model.stored.modified_at)
    if model.config.get("requires"):
        resp["requires"] = model.config["requires"]
    return resp
