"""The OpenAI-compatible API (`/v1/...`, spec 4.1): each route translates an OpenAI request
into a native one, runs the native service, and reshapes its output; errors in OpenAI's shape.

    chat.py         /v1/chat/completions
    completions.py  /v1/completions
    embeddings.py   /v1/embeddings
    models.py       /v1/models, /v1/models/{model}
    responses.py    /v1/responses, stored ones (GET/DELETE /v1/responses/{id})
    common.py       options, ids, stop, reasoning effort, images, tool calls, logprobs
    errors.py       OpenAI's error body and the route class that answers with it
"""

from fastapi import APIRouter

from pollama.server.openai import chat, completions, embeddings, models, responses

router = APIRouter()
for _module in (chat, completions, embeddings, models, responses):
    router.include_router(_module.router)

__all__ = ["router"]
