"""The OpenAPI document's completeness, in-process: what schemathesis needs to fuzz every route
(tests/integration/test_fuzz_api.py) holds for every route, including ones added later."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pollama.config import Config
from pollama.server.app import create_app


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("home")
    config = Config.from_env({"HOME": str(home), "OLLAMA_MODELS": str(home / "models"),
                              "OLLAMA_API_KEYS": "k1"})
    with TestClient(create_app(config), base_url="http://127.0.0.1:11434") as client:
        r = client.get("/openapi.json", headers={"Authorization": "Bearer k1"})
    assert r.status_code == 200
    return dict(r.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


def test_every_dialect_is_there(document: dict[str, Any]) -> None:
    paths = set(document["paths"])
    for path in ("/api/generate", "/api/chat", "/api/embed", "/api/create", "/api/pull",
                 "/api/tokenize", "/api/conversations/{ref}", "/api/blobs/{digest}",
                 "/v1/chat/completions", "/v1/responses", "/v1/messages", "/metrics",
                 "/ui/{file}"):
        assert path in paths
    assert len(operations(document)) >= 43


def test_every_body_a_route_reads_is_documented(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        if method in ("POST", "PATCH") and path != "/api/conversations/{ref}/messages":
            assert "requestBody" in op, f"{method} {path} documents no body"


def test_errors_are_documented_in_each_dialects_shape(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        responses = op["responses"]
        assert "422" not in responses  # a bad parameter is a 400 here
        for status, response in responses.items():
            if not status.startswith(("4", "5")) or method == "HEAD" or path.startswith("/ui"):
                continue
            schema = response["content"]["application/json"]["schema"]["$ref"]
            expected = ("AnthropicErrorResponse" if path.startswith("/v1/messages") else
                        "OpenAIErrorResponse" if path.startswith("/v1/") else "ErrorResponse")
            assert schema.endswith("/" + expected), (method, path, status)
        if path not in ("/", "/ui", "/ui/{file}"):  # API keys are configured above
            assert "401" in responses, f"{method} {path}"
        if "requestBody" in op and path not in ("/api/blobs/{digest}", "/api/import"):
            assert "413" in responses, f"{method} {path}"  # the body limit (server/limits.py)


def test_operation_ids_are_unique_and_refs_resolve(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    text = json.dumps(document)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in document["components"]["schemas"], ref


def test_documented_constraints_do_not_change_what_is_accepted(tmp_path: Path) -> None:
    """The schema says `model` is required and `top_p` is at most 1; the server still answers
    as Ollama does: its own texts decide, not FastAPI's validation."""
    config = Config.from_env({"HOME": str(tmp_path), "OLLAMA_MODELS": str(tmp_path / "m")})
    with TestClient(create_app(config), base_url="http://127.0.0.1:11434") as client:
        assert client.post("/api/show", json={}).json() == {"error": "model is required"}
        r = client.post("/api/generate", json={"model": "nope", "options": {"top_p": 7}})
        assert r.status_code == 404 and r.json() == {"error": "model 'nope' not found"}
        r = client.head("/api/blobs/sha256:xyz")
        assert r.status_code == 400
        r = client.get("/api/conversations", params={"limit": 0})
        assert r.json() == {"error": "limit must be between 1 and 1000"}
