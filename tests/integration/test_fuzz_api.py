"""schemathesis against the server's own `/openapi.json`: every operation of every dialect,
positive and negative requests from the schema, on a real `pollama serve` with real models.

What must hold for every request: no 5xx that is not deliberate (a deliberate one is documented
for the operation and its text names a deliberate cause: a Go template that fails, as in Ollama;
a registry that cannot be reached), every status and content type is documented, JSON answers
match their documented schema, no request hangs (a timeout fails the run), the server process
survives, no runner dies, and the log holds no traceback.

The server runs with `smollm2:135m` (the bundled model) and `tiny` (tests/vision.py: a
random-weight vision model, fast to load and to run). A hook points about half of the
generated requests at one of them, so generation, embeddings, tokenizing and images really run,
caps every answer at a few tokens (`num_predict`, `max_tokens`...) so runs finish, and keeps
the fuzzer from deleting or overwriting those two models. Registry traffic never leaves the
machine: HTTP(S)_PROXY points at a closed loopback port (every pull or push of a remote name
fails at once with a deliberate 500), and names on 127.0.0.1 reach a closed port too.

`test_api_fuzz` runs a short pass in the normal suite; `test_api_fuzz_long` (`make test-long`)
runs hundreds of examples per operation and the stateful phase. Each prints its figures:
operations, requests sent, and failures by check.
"""

from __future__ import annotations

import base64
import collections
import copy
import io
import json
import random
import re
import resource
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import strategies as st  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.engine import Status, events  # noqa: E402
from schemathesis.engine import from_schema as engine_for  # noqa: E402

from pollama.formats.options import RUNNER_OPTIONS  # noqa: E402
from pollama.names import parse  # noqa: E402
from tests.helpers import Server, create_from_gguf, free_port  # noqa: E402
from tests.vision import solid_png, write_vision_model  # noqa: E402

SMOL = "smollm2:135m"
TINY = "tiny"
FIXTURES = (SMOL, TINY)
MAX_TOKENS = 6  # every generated answer is cut here: fuzzing is about requests, not prose
REQUEST_TIMEOUT = 120  # seconds; a request still unanswered then is a hang, and fails the run
SERVER_MEMORY = 12 << 30  # address space of the server and its runners: a fuzzed option that
#                            asks llama.cpp for absurd buffers fails there, not on the machine
PNG = base64.b64encode(solid_png((200, 30, 30))).decode()

# The text of every deliberate 5xx, by cause (openapi.py documents them per operation); any
# other 5xx fails the run.
_TEMPLATE = re.compile(r"^template: ")  # a Go TEMPLATE that fails (Ollama answers 500)
_UNREACHABLE = re.compile(r"All connection attempts failed")  # the closed proxy or port
DELIBERATE_5XX: dict[str, list[re.Pattern[str]]] = {
    "/api/generate": [_TEMPLATE],
    "/api/chat": [_TEMPLATE],
    "/api/embeddings": [re.compile(r"^the input length exceeds the context length$")],
    "/api/pull": [_UNREACHABLE],
    "/api/create": [_UNREACHABLE],  # a missing `from` model is pulled
    # as in Ollama: a push of a model the store does not hold
    "/api/push": [_UNREACHABLE, re.compile(r"^open .*/manifests/.*: no such file or directory$")],
}


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))
    return str(error or "")


@schemathesis.check
def only_deliberate_server_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 5xx must be documented for the operation and be one of the deliberate causes."""
    if response.status_code < 500:
        return None
    documented = str(response.status_code) in case.operation.definition.raw.get("responses", {})
    text = _error_text(response.content)
    causes = DELIBERATE_5XX.get(case.operation.path, [])
    if not documented or not any(p.search(text) for p in causes):
        raise AssertionError(f"{response.status_code} that is not deliberate: {text[:300]}")
    return None


# -- keeping generated requests useful and short -----------------------------------------------

_GENERATING = ("/api/generate", "/api/chat", "/v1/chat/completions", "/v1/completions",
               "/v1/responses", "/v1/messages", "/api/conversations")
_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Operations whose `model` names what they write or remove: never the fixtures.
_WRITES_MODEL = {("POST", "/api/create"), ("DELETE", "/api/delete"), ("POST", "/api/pull")}


def _is_fixture(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    parsed = parse(name)
    return parsed.is_valid and any(parsed == parse(f) for f in FIXTURES)


def _short(value: Any) -> Any:
    """A token limit within [0, MAX_TOKENS]; a value of another type stays (a negative case)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)
                         and not 0 <= value <= MAX_TOKENS):
        return MAX_TOKENS
    return value


def _cap(body: dict[str, Any], path: str) -> None:
    """Every answer a few tokens long, whatever the fuzzer asked for."""
    if not path.startswith(_GENERATING):
        return
    options = body.get("options")
    if options is None:
        options = body["options"] = {}
    if isinstance(options, dict):
        options["num_predict"] = _short(options.get("num_predict"))
    for key in _TOKEN_LIMITS:
        if key in body:
            body[key] = _short(body[key])
    if path == "/v1/messages" or (path.startswith("/v1/") and not any(
            k in body for k in _TOKEN_LIMITS)):
        body["max_tokens" if path != "/v1/responses" else "max_output_tokens"] = MAX_TOKENS


def _aim(body: Any, method: str, path: str, model: str | None, image: bool,
         reload: bool) -> Any:
    """The fuzzer's body, pointed at a real model (`model`) and made to finish quickly; load-time
    options (a runner reload each) are kept only when `reload` is drawn."""
    if not isinstance(body, dict):
        return body
    body = copy.deepcopy(body)  # the generated value stays as hypothesis made it
    if not reload and isinstance(body.get("options"), dict):
        body["options"] = {k: v for k, v in body["options"].items() if k not in RUNNER_OPTIONS}
    if model is not None and (method, path) not in _WRITES_MODEL and path != "/api/copy":
        body["model"] = model
    if path == "/api/create" and model is not None:
        body["from"] = model
    if path == "/api/copy" and model is not None:
        body["source"] = model
    messages = body.get("messages")
    if image and isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("images"), list):
                message["images"] = [PNG]
    if image and isinstance(body.get("images"), list):
        body["images"] = [PNG]
    _cap(body, path)
    return body


_LAYOUT_NAMES = ["oci-layout", "index.json", "blobs/sha256/" + "0" * 64, "../escape", "/abs",
                 "blobs/sha256/../../x", "manifest.json"]


def _tarball(members: list[tuple[str, bytes]]) -> bytes:
    """An archive for /api/import: OCI layout names (and hostile ones) with fuzzed contents."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


tarballs = st.lists(st.tuples(st.sampled_from(_LAYOUT_NAMES), st.binary(max_size=200)
                              | st.just(b'{"imageLayoutVersion": "1.0.0"}')
                              | st.just(b'{"schemaVersion": 2, "manifests": []}')),
                    max_size=5).map(_tarball)


@schemathesis.serializer("application/x-tar")
def _tar_body(ctx: Any, value: Any) -> bytes:
    """An import body as generated: bytes as they are, anything else as its JSON."""
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def _protect(body: Any, method: str, path: str) -> None:
    """Never let a request delete, overwrite or rename onto a fixture model."""
    if not isinstance(body, dict):
        return
    if (method, path) in _WRITES_MODEL:
        for key in ("model", "name"):
            if _is_fixture(body.get(key)):
                body[key] = "fuzz-victim"
    if path == "/api/copy" and _is_fixture(body.get("destination")):
        body["destination"] = "fuzz-copy"


def install_hooks(schema: Any) -> None:
    @schema.hook("flatmap_body")
    def aim(context: Any, body: Any) -> Any:
        operation = context.operation
        method, path = operation.method.upper(), operation.path
        if path == "/api/import":
            return st.just(body) | tarballs
        return st.tuples(st.sampled_from([None, SMOL, TINY, TINY]), st.booleans(),
                         st.sampled_from([False, False, False, True])).map(
            lambda choice: _aim(body, method, path, *choice))


@schemathesis.hook("before_call")  # every phase's requests pass here (a global hook)
def _before_call(context: Any, case: Any, kwargs: Any) -> None:
    method, path = case.operation.method.upper(), case.operation.path
    _protect(case.body, method, path)
    if isinstance(case.body, dict):
        _cap(case.body, path)


# -- the server --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[Server]:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: registries fail at once
    server = Server(extra_env={"HTTPS_PROXY": closed, "HTTP_PROXY": closed,
                               "OLLAMA_KEEP_ALIVE": "10m"}).start()
    assert server.process is not None
    resource.prlimit(server.process.pid, resource.RLIMIT_AS, (SERVER_MEMORY, SERVER_MEMORY))
    try:
        create_from_gguf(server, SMOL, smollm2_path)
        root = tmp_path_factory.mktemp("fuzz-vision")
        text, projector = write_vision_model(root)
        modelfile = root / "Modelfile"
        modelfile.write_text(f"FROM {text}\nFROM {projector}\nPARAMETER temperature 0\n")
        made = server.cli("create", TINY, "-f", str(modelfile))
        assert made.returncode == 0, made.stderr
        # something for the routes that read stored things to find
        httpx.post(f"{server.url}/api/conversations", json={"model": SMOL, "name": "fuzz"},
                   timeout=60).raise_for_status()
        yield server
    finally:
        server.cleanup()


# -- running schemathesis ----------------------------------------------------------------------


@dataclass
class FuzzRun:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    by_phase: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds_by: collections.Counter[str] = field(default_factory=collections.Counter)
    slow_requests: list[tuple[float, str]] = field(default_factory=list)
    server_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0

    def summary(self) -> str:
        lines = [f"schemathesis: {len(self.operations)} operations, {self.requests} requests "
                 f"({dict(self.by_phase)}) in {self.seconds:.0f} s, seed {self.seed}; "
                 f"statuses {dict(sorted(self.statuses.items()))}"]
        lines += [f"  slowest: {label} {seconds:.0f} s"
                  for label, seconds in self.seconds_by.most_common(8)]
        lines += [f"  slow request: {seconds:.1f} s {what}" for seconds, what in self.slow_requests]
        lines += [f"  5xx (deliberate, checked): {n} x {what}"
                  for what, n in self.server_errors.most_common()]
        lines += [f"  FAIL {label} [{check}]: {text}"
                  for (label, check), text in sorted(self.failures.items())]
        lines += [f"  ERROR {e}" for e in self.errors]
        return "\n".join(lines)


def run_schemathesis(server: Server, *, max_examples: int, stateful: bool,
                     coverage: str = "all", seed: int | None = None) -> FuzzRun:
    seed = random.randrange(2**32) if seed is None else seed
    config = SchemathesisConfig.from_dict({
        "seed": seed,
        "request-timeout": REQUEST_TIMEOUT,
        "suppress-health-check": ["all"],
        "generation": {"max-examples": max_examples, "mode": "all"},
        "phases": {"examples": {"enabled": True},
                   "coverage": {"enabled": True, "generation": {"mode": coverage},
                                "unexpected-methods": ["patch", "trace"]},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": stateful}},
        "checks": {"not_a_server_error": {"enabled": False},
                   "status_code_conformance": {"enabled": True},
                   "content_type_conformance": {"enabled": True},
                   "response_schema_conformance": {"enabled": True},
                   "response_headers_conformance": {"enabled": False},
                   "negative_data_rejection": {"enabled": False},
                   "positive_data_acceptance": {"enabled": False},
                   "missing_required_header": {"enabled": False},
                   "unsupported_method": {"enabled": True},
                   "use_after_free": {"enabled": False},
                   "ensure_resource_availability": {"enabled": False},
                   "ignored_auth": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)
    install_hooks(schema)
    run = FuzzRun(seed=seed)
    started = time.monotonic()
    for event in engine_for(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            run.operations.add(recorder.label)
            run.seconds_by[f"{event.phase.value} {recorder.label}"] += event.elapsed_time
            for interaction in recorder.interactions.values():
                run.requests += 1
                run.by_phase[event.phase.value] += 1
                if interaction.response is not None:
                    run.statuses[interaction.response.status_code] += 1
                    if interaction.response.status_code >= 500:
                        text = _error_text(interaction.response.content or b"")[:90]
                        run.server_errors[f"{recorder.label}: {text}"] += 1
                    run.slow_requests.append((interaction.response.elapsed, (
                        f"{interaction.request.method} {interaction.request.uri} "
                        f"{(interaction.request.body or b'')[:300]!r}")))
                    run.slow_requests = sorted(run.slow_requests, reverse=True)[:5]
            for checks in recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        text = (f"{failure.title}: {failure.message}"[:400] + "\n    "
                                + check.failure_info.code_sample[:1500])
                        run.failures.setdefault((recorder.label, check.name), text)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.format()}"[:3000])
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
    run.seconds = time.monotonic() - started
    return run


def assert_server_healthy(server: Server) -> None:
    assert server.process is not None and server.process.poll() is None, "the server died"
    assert httpx.get(server.url, timeout=10).text == "Ollama is running"
    log = server.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    crashed = [line for line in log.splitlines() if "has terminated" in line]
    assert not crashed, "\n".join(crashed)
    for model in FIXTURES:  # the hook kept them: later tests may rely on them
        assert httpx.post(f"{server.url}/api/show", json={"model": model},
                          timeout=60).status_code == 200


def _keep_log(server: Server, name: str) -> None:
    """The server's log beside the other test artifacts (git-ignored), for a failed run."""
    artifacts = Path(__file__).resolve().parent.parent / "artifacts" / "fuzz"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / f"{name}.log").write_text(server.log())


@pytest.mark.timeout(1200)  # a guard against a hang, not a timing: runs take 2-5 minutes
def test_api_fuzz(fuzz_server: Server) -> None:
    run = run_schemathesis(fuzz_server, max_examples=25, stateful=False, coverage="positive",
                           seed=1)
    print(run.summary())
    _keep_log(fuzz_server, "api-fuzz")
    assert len(run.operations) >= 40
    assert not run.failures and not run.errors, run.summary()
    assert_server_healthy(fuzz_server)


@pytest.mark.long
@pytest.mark.timeout(7200)
def test_api_fuzz_long(fuzz_server: Server) -> None:
    run = run_schemathesis(fuzz_server, max_examples=300, stateful=True)
    print(run.summary())
    _keep_log(fuzz_server, "api-fuzz-long")
    assert not run.failures and not run.errors, run.summary()
    assert_server_healthy(fuzz_server)


# -- what fuzzing found, pinned: each was a 500, a hang or a dead runner on a real server ------

_DEEP = "[" * 5000 + "]" * 5000
FOUND = [
    # (method, path, body or raw bytes, status, a fragment of the answer)
    ("POST", "/api/generate", _DEEP, 400, "exceeded max depth"),
    ("POST", "/v1/chat/completions", _DEEP, 400, "exceeded max depth"),
    ("POST", "/v1/messages", _DEEP, 400, "exceeded max depth"),
    ("POST", "/api/generate", '{"model": "tiny", "keep_alive": NaN}', 400,
     "invalid character 'N'"),
    ("POST", "/api/generate", {"model": SMOL, "prompt": "hi", "stream": False,
                               "format": {"type": "string", "maxLength": 30000}}, 400,
     "too complex"),  # was: the runner died of SIGSEGV in llama.cpp's grammar parser
    ("POST", "/api/generate", {"model": SMOL, "prompt": "hi", "stream": False,
                               "grammar": "root ::= " + "(" * 3000 + '"a"' + ")" * 3000}, 400,
     "nested more than"),
    ("POST", "/api/generate", {"model": TINY, "prompt": "hi", "stream": False, "raw": True,
                               "options": {"num_predict": 2, "num_batch": 1}}, 200, '"done":true'),
    ("POST", "/api/tokenize", {"model": TINY, "content": "hi", "options": {"num_batch": -3}},
     200, '"tokens"'),  # both were a SIGABRT of the runner (a batch below its slots)
    ("POST", "/api/tokenize", {"model": TINY, "content": "hi",
                               "options": {"num_thread": 100000}}, 400, "at most 512"),
    ("POST", "/api/generate", {"model": TINY, "prompt": "hi", "stream": False,
                               "template": "{{range 1000000000}}x{{end}}"}, 500,
     "exceeded 1000000 execution steps"),  # deliberate 500 (a template error, as Ollama)
    ("POST", "/v1/chat/completions", {"model": TINY, "max_tokens": 2, "messages": [
        {"role": "user", "content": "hi", "tool_call_id": 5}]}, 400, "tool_call_id"),
    ("GET", "/api/conversations?q=a%00b", None, 200, '"conversations"'),
    ("GET", f"/api/conversations?offset={2**70}", None, 200, '"conversations":[]'),
    ("POST", "/api/generate", {"model": TINY, "keep_alive": 1e300}, 200, '"done":true'),
    ("GET", "/api/ps", None, 200, '"expires_at"'),  # was a 500 after the keep_alive above
    ("TRACE", "/api/tags", None, 405, "405 method not allowed"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"), FOUND,
                         ids=[f"{m} {p[:30]} {i}" for i, (m, p, *_) in enumerate(FOUND)])
def test_what_fuzzing_found_stays_fixed(fuzz_server: Server, method: str, path: str, body: Any,
                                        status: int, fragment: str) -> None:
    kwargs: dict[str, Any] = {}
    if isinstance(body, str):
        kwargs["content"] = body.encode()
    elif body is not None:
        kwargs["json"] = body
    r = httpx.request(method, fuzz_server.url + path, timeout=REQUEST_TIMEOUT, **kwargs)
    assert r.status_code == status, r.text[:500]
    assert fragment in r.text
    if method == "TRACE":
        assert r.headers["allow"] == "GET, HEAD"
    assert "has terminated" not in fuzz_server.log()
