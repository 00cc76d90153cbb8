"""Conversations kept by the server (beyond Ollama): `/api/conversations` and `/api/chat` with
a `conversation` field.

    POST   /api/conversations         {model, name?, title?, system?, options?} → the conversation
    GET    /api/conversations         ?limit=50&offset=0&q=words: newest first, `q` searches
                                      titles and message contents (FTS5, every word, as prefix)
    GET    /api/conversations/{ref}   the conversation with its messages (answers with stats,
                                      images by digest)
    GET    /api/conversations/{ref}/images/{digest}   an image's bytes
    PATCH  /api/conversations/{ref}   {title?, system?, options?, name?}
    DELETE /api/conversations/{ref}/messages?from=N   the messages from position N (0-based)
                                      on: regenerating is truncating at the question, then
                                      asking it again
    DELETE /api/conversations/{ref}

`ref` is a conversation's id or its name. Errors are Ollama's `{"error": ...}`: an unknown
conversation 404, a bad body 400, a name already taken 409, a full disk 500 naming it.
The store itself is `pollama.conversations` (SQLite under the pollama home).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import ConfigDict, Field

from pollama.conversations import ConversationStore
from pollama.conversations.store import STATS
from pollama.errors import BadRequest
from pollama.formats import options as opts
from pollama.inference.requests import OPTIONS, Message, require_model
from pollama.inference.requests import Request as Body
from pollama.inference.service import STOP_SEQUENCE
from pollama.server import openapi as doc
from pollama.server.native import types
from pollama.server.native.models import body_schema
from pollama.server.state import CONVERSATIONS_OFF, ServerState, State

router = APIRouter()
_WHY = {400: "a malformed body or parameter, or conversations are off (OLLAMA_CONVERSATIONS=0)",
        500: "deliberate: the conversation database could not be written (disk full)"}


class ChatRequest(types.ChatRequest):
    """`/api/chat`'s body with pollama's `conversation` field (named as Ollama's for errors)."""

    conversation: str | None = Field(
        None, description="beyond Ollama: the id or name of a stored conversation; the server "
        "adds `messages` to its history, answers from the whole history and stores the answer")


_REF = Path(description="the conversation's id or name")


def _strict_body(more: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """The schema of a body whose unknown fields are a 400 (`_parse`), plus `more`."""
    def extra(schema: dict[str, Any]) -> None:
        schema["additionalProperties"] = False
        more(schema)
    return extra


class CreateConversation(Body):
    model_config = ConfigDict(json_schema_extra=_strict_body(require_model))

    model: str = Field("", description="the model the conversation's turns use by default")
    name: str | None = Field(None, description="a unique name, usable in place of the id")
    title: str = Field("", description="a title (default: the start of the first message)")
    system: str = Field("", description="system prompt (default: the model's)")
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(
        None, description="options of every turn")


class UpdateConversation(Body):
    """Unknown fields are a 400 here; at least one field must be sent."""

    model_config = ConfigDict(json_schema_extra=_strict_body(
        lambda schema: schema.update(minProperties=1)))

    name: str | None = Field(None, description="a new unique name")
    title: str | None = Field(None, description="a new title")
    system: str | None = Field(None, description="a new system prompt (empty: the model's)")
    options: Annotated[dict[str, Any] | None, OPTIONS] = Field(
        None, description="options replacing the stored ones")


def _parse(raw: bytes, model: type[Body]) -> Any:
    """Parse a body; a field these routes do not know is a 400 (never silently ignored)."""
    data = types.decode_json(raw)
    body = types.validate(data, model)
    unknown = [k for k in data if k not in model.model_fields]
    if unknown:
        raise BadRequest(f'json: unknown field "{unknown[0]}"')
    return body


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Options a conversation keeps: known names, values of the right type."""
    for key in options or {}:
        if key not in opts.OPTIONS and key != "grammar":
            raise BadRequest(f'unknown option "{key}"')
    rest = {k: v for k, v in (options or {}).items() if k != "grammar"}
    opts.from_map(rest)  # raises on a value of the wrong type
    return dict(options or {})


@router.post("/api/conversations", openapi_extra=body_schema(CreateConversation),
             responses=doc.native(400, 404, 409, 500, ok=doc.Conversation, why=_WHY))
async def create(request: Request, server: State) -> dict[str, Any]:
    body: CreateConversation = _parse(await request.body(), CreateConversation)
    if server.conversations is None:
        raise BadRequest(CONVERSATIONS_OFF)
    info = server.inference.model_info(body.model, required_text="model is required")
    options = check_options(body.options)
    model = info.model.stored.name.display_shortest()
    return await server.db(lambda s: s.create(model, name=body.name, title=body.title,
                                              system=body.system, options=options))


@router.get("/api/conversations", responses=doc.native(400, ok=doc.ConversationList, why=_WHY))
async def list_conversations(
        server: State,
        limit: int = Query(50, description="conversations per page",
                           json_schema_extra={"minimum": 1, "maximum": 1000}),
        offset: int = Query(0, description="conversations to skip",
                            json_schema_extra={"minimum": 0}),
        q: str = Query("", description="words to search titles and messages for")
) -> dict[str, Any]:
    """Newest first; `has_more` says whether `offset + limit` finds more."""
    def page(store: ConversationStore) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000:  # checked before asking for one more row
            raise BadRequest("limit must be between 1 and 1000")
        return store.search(limit=min(limit + 1, 1000), offset=offset, q=q)

    found = await server.db(page)
    more = len(found) > limit
    return {"conversations": found[:limit], "has_more": more}


@router.get("/api/conversations/{ref}", responses=doc.native(
    400, 404, ok=doc.ConversationWithMessages, why=_WHY, plain_404=True))
async def get(server: State, ref: str = _REF) -> dict[str, Any]:
    return await server.db(lambda s: s.get(ref))


@router.get("/api/conversations/{ref}/images/{digest}", response_class=Response,
            responses=doc.native(400, 404, ok={"application/octet-stream": {"schema": {
                "type": "string", "format": "binary"}}}, why=_WHY, plain_404=True))
async def image(server: State, ref: str = _REF,
                digest: str = Path(description="the image's digest, sha256:<64 hex digits>",
                                   json_schema_extra={"pattern": doc.DIGEST})) -> Response:
    data = await server.db(lambda s: s.image(ref, digest))
    return Response(data, media_type="application/octet-stream")


@router.patch("/api/conversations/{ref}", openapi_extra=body_schema(UpdateConversation),
              responses=doc.native(400, 404, 409, 500, ok=doc.Conversation, why=_WHY,
                                   plain_404=True))
async def update(request: Request, server: State, ref: str = _REF) -> dict[str, Any]:
    body: UpdateConversation = _parse(await request.body(), UpdateConversation)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    if not changes:
        raise BadRequest("nothing to change: send title, system, options or name")
    for key in ("title", "system", "name"):
        if key in changes and changes[key] is None:
            raise BadRequest(f"{key} cannot be null")
    if "options" in changes:
        changes["options"] = check_options(changes["options"])
    return await server.db(lambda s: s.update(ref, changes))


@router.delete("/api/conversations/{ref}", response_class=Response,
               responses=doc.native(400, 404, 500, why=_WHY, plain_404=True))
async def delete(server: State, ref: str = _REF) -> Response:
    await server.db(lambda s: s.delete(ref))
    return Response(status_code=200)


@router.delete("/api/conversations/{ref}/messages",
               responses=doc.native(400, 404, 500, ok=doc.ConversationWithMessages, why=_WHY,
                                    plain_404=True))
async def truncate(server: State, ref: str = _REF,
                   start: int = Query(alias="from", json_schema_extra={"minimum": 0},
                                      description="the first position removed (0-based)")
                   ) -> dict[str, Any]:
    """Waits for a turn that is answering, so an answer is never stored after the cut."""
    conversation = await server.db(lambda s: s.get(ref))
    async with server.conversation_lock(conversation["id"]):
        return await server.db(lambda s: s.truncate(conversation["id"], start))


# -- /api/chat with a conversation --------------------------------------------------------


def _new_messages(req: ChatRequest) -> list[dict[str, Any]]:
    new = [m.to_dict() for m in (req.messages or [])]
    if not new:
        raise BadRequest("messages are required with conversation: send the new message; "
                         "the server keeps the history")
    if any(m["role"] == "system" for m in new):
        raise BadRequest("a conversation's system prompt is not a message: set it with PATCH "
                         "/api/conversations/{id}")
    return new


def _store_answer(store: ConversationStore, *, conversation_id: str, answer: dict[str, Any],
                  model: str, event: dict[str, Any]) -> None:
    stats = {k: event[k] for k in STATS if k in event}
    store.add_messages(conversation_id, [answer], model=model, stats=stats)


async def conversation_chat(server: ServerState, req: ChatRequest
                            ) -> AsyncGenerator[dict[str, Any], None]:
    """One turn of a stored conversation: `/api/chat`'s objects, the answer stored when done.

    The request's messages are committed before the answer starts, then the prompt is built
    from the whole stored history by the same path as any chat (`Inference.chat`: the system
    prompt kept, the oldest turns dropped first when the context is full). The model defaults
    to the conversation's; options are the conversation's with the request's on top.

    What is stored when a turn does not finish: the answer is written in one transaction with
    its stats when it is done, never in part. A crash, a `kill -9` or a client that goes away
    mid-answer leaves the new user message(s) stored and no answer; the next turn goes on from
    there. A request refused before any answer starts (unknown model, bad option, bad image)
    takes its messages back. Turns of one conversation are serialized: a second request waits
    for the running one to finish, then answers from the history including its answer.
    `_debug_render_only` renders the prompt from the stored history and stores nothing.
    """
    new = _new_messages(req)
    ref = req.conversation or ""
    conversation = await server.db(lambda s: s.get(ref))  # 404 before waiting on a lock
    conversation_id = conversation["id"]
    async with server.conversation_lock(conversation_id):
        conversation, history = await server.db(lambda s: s.history(conversation_id))
        model = req.model or conversation["model"]
        options = {**conversation["options"], **(req.options or {})}
        system = [{"role": "system", "content": conversation["system"]}] \
            if conversation["system"] else []
        messages = [Message.model_validate(m) for m in [*system, *history, *new]]
        turn = req.model_copy(update={"model": model, "options": options or None,
                                      "messages": messages})
        ids: list[int] = []
        if not req.debug_render_only:
            ids = await server.db(lambda s: s.add_messages(conversation_id, new))
        events = server.inference.chat(turn)
        started = False
        content: list[str] = []
        thinking: list[str] = []
        calls: list[dict[str, Any]] = []
        try:
            async for event in events:
                started = True
                event.pop(STOP_SEQUENCE, None)
                message = event.get("message") or {}
                content.append(message.get("content") or "")
                thinking.append(message.get("thinking") or "")
                calls.extend(message.get("tool_calls") or [])
                if event.get("done") and ids:
                    answer: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
                    if "".join(thinking):
                        answer["thinking"] = "".join(thinking)
                    if calls:
                        answer["tool_calls"] = calls
                    await server.db(partial(_store_answer, conversation_id=conversation_id,
                                            answer=answer, model=model, event=event))
                yield event
        except Exception:
            if ids and not started:  # refused before answering: the turn never happened
                await server.db(lambda s: s.remove_messages(ids))
            raise
        finally:
            await events.aclose()

