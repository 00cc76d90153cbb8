"""Ollama's api.ModelDetails of a stored model (tags, show, ps)."""

from __future__ import annotations

from typing import Any


def model_details(config: dict[str, Any], parent_model: str = "", *, context_length: int = 0,
                  embedding_length: int = 0) -> dict[str, Any]:
    """Ollama's api.ModelDetails of a config blob; the two lengths are omitted when 0."""
    details = {
        "parent_model": parent_model,
        "format": config.get("model_format", ""),
        "family": config.get("model_family", ""),
        "families": config.get("model_families"),
        "parameter_size": config.get("model_type", ""),
        "quantization_level": config.get("file_type", ""),
    }
    if context_length:
        details["context_length"] = context_length
    if embedding_length:
        details["embedding_length"] = embedding_length
    return details
