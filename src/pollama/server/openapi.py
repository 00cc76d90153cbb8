"""The server's OpenAPI document (`GET /openapi.json`): every route, its body, parameters, and
every status and content type it answers with, in each dialect's error shape.

The schema documents; it never decides. Bodies are parsed by `native/types.parse_body` (any
content type, Go's error texts) or the dialects' own readers, never by FastAPI, so a field the
schema bounds (`options.top_p` in [0, 1]) is still judged by the route. Deliberate 5xx answers
are listed with their causes: a runner that fails to load or dies, a store that cannot be
written (disk full), a Go template that fails (Ollama answers 500), a registry that cannot be
reached, and 503 for a full queue. `tests/integration/test_fuzz_api.py` runs schemathesis
against this document and holds the server to it.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from pollama.server.limits import MAX_BODY, STREAMED_PATHS

JSON = "application/json"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
TEXT = "text/plain"

Responses = dict[int | str, dict[str, Any]]


class _Open(BaseModel):
    """A documented object that may carry more fields than it lists."""

    model_config = ConfigDict(extra="allow")


# -- errors ----------------------------------------------------------------------------------


class ErrorResponse(BaseModel):
    """Ollama's error: `{"error": "<text>"}` (also the last line of a stream that failed)."""

    error: str = Field(description="what went wrong, in Ollama's words where Ollama has them")


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error (400), not_found_error (404), "
                      "api_error (others)")
    param: str | None
    code: str | None


class OpenAIErrorResponse(BaseModel):
    """The OpenAI dialect's error object."""

    error: OpenAIErrorDetail


class AnthropicErrorDetail(BaseModel):
    type: str = Field(description="invalid_request_error, not_found_error, api_error, "
                      "overloaded_error, ...")
    message: str


class AnthropicErrorResponse(BaseModel):
    """The Anthropic dialect's error object (with a `request-id` header)."""

    type: Literal["error"]
    error: AnthropicErrorDetail
    request_id: str


_WHY = {
    400: "the body or a parameter is malformed, names something invalid, or asks for what "
         "pollama refuses; `error` says which",
    401: "an API key is required (OLLAMA_API_KEYS) and none or a wrong one was sent",
    404: "the model (or conversation, response, blob) does not exist",
    409: "the name is already taken",
    413: f"the body is larger than {MAX_BODY >> 20} MiB (files go through /api/blobs/:digest)",
    499: "the client went away before the upload finished",
    500: "deliberate: the model runner failed to load or died, or the model's Go template "
         "failed (Ollama answers 500)",
    503: "the queue is full (OLLAMA_MAX_QUEUE): try again",
}
_ROUTER_404 = {TEXT: {"schema": {"type": "string", "const": "404 page not found"}}}


def _error_response(model: type[BaseModel], status: int, why: str | None,
                    plain_404: bool) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": {
        "$ref": f"#/components/schemas/{model.__name__}"}}}
    if status == 404 and plain_404:
        content.update(_ROUTER_404)
    return {"description": why or _WHY.get(status, ""), "content": content}


def _sse_event(names: list[str] | None) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1: the schema of an event stream is an event's)."""
    event: dict[str, Any] = {"type": "string"}
    if names:
        event["enum"] = names
    return {"type": "object", "properties": {
        "event": event,
        "data": {"type": "string", "contentMediaType": JSON,
                 "description": "a JSON object (OpenAI's stream ends with `[DONE]`); an "
                                "error object ends a stream that failed"}},
        "required": ["data"]}


def _responses(error: type[BaseModel], statuses: tuple[int, ...], ok: Any, stream: str | None,
               ok_status: int, why: dict[int, str] | None, plain_404: bool,
               event_names: list[str] | None = None) -> Responses:
    out: Responses = {}
    content: dict[str, Any] = {}
    if ok is None:
        pass
    elif isinstance(ok, dict):
        content = ok
    else:
        content[JSON] = {"schema": {"$ref": f"#/components/schemas/{ok.__name__}"}}
    if stream == SSE:
        content[SSE] = {"schema": _sse_event(event_names)}
    elif stream:
        content[stream] = {"schema": {"type": "string", "description": "one JSON object a "
                                      "line; an `{\"error\": ...}` line ends a failed stream"}}
    entry: dict[str, Any] = {"description": "success"}
    if content:
        entry["content"] = content
    out[ok_status] = entry
    for status in statuses:
        out[status] = _error_response(error, status, (why or {}).get(status), plain_404)
    return out


def native(*statuses: int, ok: Any = None, stream: bool = False, ok_status: int = 200,
           why: dict[int, str] | None = None, plain_404: bool = False) -> Responses:
    """`responses=` of a native route: `ok` a model (JSON), a content dict, or None (no
    body); `stream` adds NDJSON; each error status answers `ErrorResponse`."""
    return _responses(ErrorResponse, statuses, ok, NDJSON if stream else None, ok_status, why,
                      plain_404)


def openai(*statuses: int, ok: Any = None, stream: bool = False,
           why: dict[int, str] | None = None, plain_404: bool = False) -> Responses:
    return _responses(OpenAIErrorResponse, statuses, ok, SSE if stream else None, 200, why,
                      plain_404)


ANTHROPIC_EVENTS = ["message_start", "content_block_start", "ping", "content_block_delta",
                    "content_block_stop", "message_delta", "message_stop", "error"]


def anthropic(*statuses: int, ok: Any = None, stream: bool = False,
              why: dict[int, str] | None = None) -> Responses:
    return _responses(AnthropicErrorResponse, statuses, ok, SSE if stream else None, 200, why,
                      False, ANTHROPIC_EVENTS)


# -- raw bodies and parameters (documented only: the routes check them, with Ollama's texts) --

DIGEST = r"^sha256[:-][0-9a-fA-F]{64}$"
MODEL_NAME = ("a model name: [host/][namespace/]model[:tag], e.g. llama3.2 or "
              "registry.example.com/team/model:7b")


def raw_body(media_type: str, description: str) -> dict[str, Any]:
    """`openapi_extra` of a route whose body is bytes, not JSON."""
    return {"requestBody": {"required": True, "description": description, "content": {
        media_type: {"schema": {"type": "string", "format": "binary"}}}}}


# -- success bodies --------------------------------------------------------------------------


class VersionResponse(BaseModel):
    version: str


class ModelDetails(_Open):
    parent_model: str
    format: str
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str


class ListedModel(_Open):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class ListResponse(BaseModel):
    models: list[ListedModel]


class RunningModel(_Open):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class ProcessResponse(BaseModel):
    models: list[RunningModel]


class ShowResponse(_Open):
    modelfile: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class GenerateResponse(_Open):
    """`stream: false` (and each NDJSON line, `done` false until the last)."""

    model: str
    created_at: str
    response: str
    done: bool


class ChatMessage(_Open):
    role: str
    content: str


class ChatResponse(_Open):
    model: str
    created_at: str
    message: ChatMessage
    done: bool


class ProgressResponse(_Open):
    """The last progress object of create/pull/push with `stream: false`."""

    status: str


class EmbedResponse(_Open):
    model: str
    embeddings: list[list[float]]


class EmbeddingResponse(BaseModel):
    embedding: list[float]


class TokenizeResponse(BaseModel):
    model: str
    tokens: list[int]
    total_duration: int


class DetokenizeResponse(BaseModel):
    model: str
    content: str
    total_duration: int


class ImportResponse(BaseModel):
    status: Literal["success"]
    model: str


class Conversation(_Open):
    id: str
    model: str
    title: str
    system: str
    options: dict[str, Any]
    created_at: str
    updated_at: str


class ConversationList(BaseModel):
    conversations: list[Conversation]
    has_more: bool


class ConversationWithMessages(Conversation):
    messages: list[dict[str, Any]]


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class OpenAIModelList(BaseModel):
    object: Literal["list"]
    data: list[OpenAIModel]


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[dict[str, Any]]


class Completion(_Open):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[dict[str, Any]]


class OpenAIEmbeddingList(_Open):
    object: Literal["list"]
    data: list[dict[str, Any]]
    model: str


class OpenAIResponse(_Open):
    id: str
    object: Literal["response"]
    status: str
    model: str
    output: list[dict[str, Any]]


class DeletedResponse(_Open):
    id: str
    object: Literal["response.deleted"]
    deleted: Literal[True]


class AnthropicMessage(_Open):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None


class TokenCount(BaseModel):
    input_tokens: int


# Every model above is put in components/schemas by `document`, referenced by name.
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorResponse, OpenAIErrorResponse, AnthropicErrorResponse, VersionResponse, ListResponse,
    ProcessResponse, ShowResponse, GenerateResponse, ChatResponse, ProgressResponse,
    EmbedResponse, EmbeddingResponse, TokenizeResponse, DetokenizeResponse, ImportResponse,
    Conversation, ConversationList, ConversationWithMessages, OpenAIModel, OpenAIModelList,
    ChatCompletion, Completion, OpenAIEmbeddingList, OpenAIResponse, DeletedResponse,
    AnthropicMessage, TokenCount,
)


# -- the document ----------------------------------------------------------------------------


def _add_component(components: dict[str, Any], model: type[BaseModel], *,
                   mode: Literal["validation", "serialization"]) -> None:
    body = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    components.update(body.pop("$defs", {}))
    components[model.__name__] = body


def _extra_paths() -> dict[str, Any]:
    """Routes FastAPI does not list: the web page's files (a mounted directory)."""
    page_types = {kind: {"schema": {"type": "string"}} for kind in (
        "text/html; charset=utf-8", "text/javascript; charset=utf-8",
        "text/css; charset=utf-8", "image/svg+xml", "image/png", JSON)}
    return {
        "/ui": {"get": {
            "operationId": "web_page_redirect", "summary": "the web chat page: to /ui/",
            "responses": {"307": {"description": "redirect to /ui/"}}}},
        "/ui/{file}": {"get": {
            "operationId": "web_page_file", "summary": "the web chat page's files",
            "parameters": [{"name": "file", "in": "path", "required": True,
                            "description": "a file of the page (empty: index.html)",
                            "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "the file", "content": page_types},
                "404": {"description": "no such file",
                        "content": {TEXT: {"schema": {"type": "string"}}}}}}},
    }


def _error_ref(path: str) -> dict[str, Any]:
    """The error object of the dialect `path` belongs to."""
    if path.startswith("/v1/messages"):
        name = AnthropicErrorResponse.__name__
    elif path.startswith("/v1/"):
        name = OpenAIErrorResponse.__name__
    else:
        name = ErrorResponse.__name__
    return {JSON: {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _open_to_all(path: str) -> bool:
    """Paths an API key does not guard (server/auth.py): the heartbeat and the web page."""
    return path == "/" or path == "/ui" or path.startswith("/ui/")


def document(app: FastAPI, request_models: dict[str, type[BaseModel]], *,
             keys: bool = False) -> dict[str, Any]:
    """The OpenAPI document of `app`: FastAPI's, with the bodies routes parse themselves,
    the response models, unique operation ids, no 422 (a bad parameter is a 400 here: the
    app's handler), the routes mounted outside FastAPI's router, and with API `keys` a 401
    on every guarded operation."""
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in request_models.values():
        _add_component(components, model, mode="validation")
    for model in RESPONSE_MODELS:
        _add_component(components, model, mode="serialization")
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    schema["paths"].update(_extra_paths())
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            operation["operationId"] = f"{method}_{path}".replace("/", "_").replace(
                "{", "").replace("}", "").strip("_")
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {"description": _WHY[400], "content": _error_ref(path)}
            if keys and not _open_to_all(path):
                responses["401"] = {"description": _WHY[401], "content": _error_ref(path)}
            if "requestBody" in operation and not path.startswith(STREAMED_PATHS):
                responses["413"] = {"description": _WHY[413], "content": _error_ref(path)}
            if method == "head":
                for response in responses.values():
                    response.pop("content", None)
    return schema
