"""LangChain's ChatOllama against a real pollama server: invoke, stream, structured output.

(OllamaEmbeddings is tested with the embeddings, ChatOpenAI with the OpenAI dialect.)
"""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_ollama import ChatOllama
from pydantic import BaseModel, Field

from tests.helpers import Server


@pytest.fixture(scope="module")
def server():
    srv = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE"}).start()
    yield srv
    srv.cleanup()


def llm(server, model: str, **kwargs) -> ChatOllama:
    return ChatOllama(model=model, base_url=server.url, temperature=0, seed=7, num_predict=16,
                      **kwargs)


MESSAGES = [SystemMessage("Answer in a few words."), HumanMessage("Name a primary color.")]


def test_invoke_and_stream_give_the_same_answer(server, smol):
    answer = llm(server, smol).invoke(MESSAGES)
    assert answer.content.strip()
    assert answer.response_metadata["model"] == smol
    assert answer.response_metadata["done_reason"] in ("stop", "length")
    usage = answer.usage_metadata
    assert usage and usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 16
    chunks = list(llm(server, smol).stream(MESSAGES))
    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == answer.content


class Color(BaseModel):
    name: str = Field(description="the color's name", max_length=16)
    warm: bool


def test_structured_output_follows_the_schema(server, smol):
    structured = llm(server, smol, num_ctx=1024).with_structured_output(
        Color, method="json_schema")
    color = structured.invoke("Describe the color red as JSON.")
    assert isinstance(color, Color) and color.name


def test_unknown_model_raises(server, smol):
    with pytest.raises(Exception, match="not found"):
        llm(server, "no-such-model").invoke("hi")
