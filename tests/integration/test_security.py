"""Security against real servers: the loopback bind, the DNS-rebinding guard and CORS exactly as
Ollama's (spec API-08/API-09), request body limits, names and digests that never leave the
models folder, blob links out of it, and prompts kept out of the log."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server, free_port

TIMEOUT = 300
MAX_BODY = 64 << 20


# -- the bind address and the Host header -------------------------------------------------------


NETNS = ["unshare", "--map-root-user", "--net"]  # a network namespace with only lo in it
NETNS_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, time, httpx
    def check(cmd):
        subprocess.run(cmd, check=True, capture_output=True)
    check(["ip", "link", "set", "lo", "up"])
    check(["ip", "addr", "add", "203.0.113.7/32", "dev", "lo"])  # ours, inside this namespace
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env["OLLAMA_MODELS"] = sys.argv[1]
    server = subprocess.Popen([sys.executable, "-m", "pollama", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                httpx.get("http://127.0.0.1:11434", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        listening = [line.split()[1] for line in open("/proc/net/tcp").read().splitlines()[1:]
                     if line.split()[3] == "0A"]
        print("LISTEN", listening)
        for host in ("localhost:11434", "203.0.113.7:11434", "198.51.100.9", "evil.example"):
            r = httpx.get("http://127.0.0.1:11434/api/version", headers={"Host": host})
            print("HOST", host, r.status_code)
        try:
            httpx.get("http://203.0.113.7:11434", timeout=5)
            print("OTHER", "answered")
        except httpx.HTTPError:
            print("OTHER", "refused")
    finally:
        server.terminate()
        server.wait(30)
    # Bound beyond loopback (with a key), the Host guard is off, as in Ollama.
    env.update(OLLAMA_HOST="203.0.113.7:11434", OLLAMA_API_KEYS="k")
    server = subprocess.Popen([sys.executable, "-m", "pollama", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                httpx.get("http://203.0.113.7:11434", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = httpx.get("http://203.0.113.7:11434/api/version",
                      headers={"Host": "evil.example", "Authorization": "Bearer k"})
        print("WIDE", r.status_code)
    finally:
        server.terminate()
        server.wait(30)
""")


def test_default_bind_is_loopback_and_the_host_guard_knows_local_addresses(tmp_path):
    """In a network namespace of its own (so port 11434 is free), `pollama serve` with no
    OLLAMA_HOST listens on 127.0.0.1:11434 only; a Host naming one of the machine's own
    addresses passes, any other address or name is a 403; bound beyond loopback the guard is
    off."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("needs unshare and ip (Debian util-linux, iproute2: .ci/run installs them)")
    if subprocess.run([*NETNS, "true"], capture_output=True).returncode != 0:
        pytest.skip("this kernel refuses a network namespace to this user")
    script = tmp_path / "netns.py"
    script.write_text(NETNS_SCRIPT)
    env = {**os.environ, "HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    ran = subprocess.run([*NETNS, sys.executable, str(script), str(tmp_path / "m")],
                         capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert "LISTEN ['0100007F:2CAA']" in lines  # 127.0.0.1:11434 and nothing else
    assert "HOST localhost:11434 200" in lines
    assert "HOST 203.0.113.7:11434 200" in lines  # an address of this machine's interfaces
    assert "HOST 198.51.100.9 403" in lines
    assert "HOST evil.example 403" in lines
    assert "OTHER refused" in lines
    assert "WIDE 200" in lines


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A server with extra CORS origins and no model (these checks need none)."""
    srv = Server(extra_env={"OLLAMA_ORIGINS": "http://app.example.com,https://*.trusted.example,"
                            "chrome-extension://abcdefgh"}).start()
    yield srv
    srv.cleanup()


@pytest.mark.parametrize(("host", "status"), [
    ("", 200), ("localhost", 200), ("LOCALHOST:11434", 200), ("127.0.0.1:11434", 200),
    ("127.9.9.9", 200), ("[::1]:11434", 200), ("::1", 200), ("0.0.0.0:1", 200),
    ("10.1.2.3", 200), ("172.20.0.1:80", 200), ("192.168.1.1", 200), ("[fd00::9]:1", 200),
    ("my-box.local", 200), ("x.localhost:3000", 200), ("db.internal", 200),
    ("evil.example", 403), ("localhost.evil.example", 403), ("127.0.0.1.nip.io", 403),
    ("169.254.169.254", 403), ("8.8.8.8:11434", 403), ("[::ffff:8.8.8.8]:1", 403),
    ("100.64.0.1", 403), ("localhost.", 403), ("[::1]", 403),
])
def test_host_header_guard(bare, host, status):
    r = httpx.get(f"{bare.url}/api/version", headers={"Host": host})
    assert r.status_code == status
    if status == 403:
        assert r.content == b""  # no body, as Ollama


def test_host_guard_answers_options_itself(bare):
    r = httpx.options(f"{bare.url}/api/chat")
    assert (r.status_code, r.content) == (204, b"")
    assert httpx.options(f"{bare.url}/api/chat", headers={"Host": "evil.example"}
                         ).status_code == 403


def test_cors_allowed_and_foreign_origins(bare):
    url = f"{bare.url}/api/version"
    plain = httpx.get(url)
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    for origin in ("http://app.example.com", "https://a.trusted.example",
                   "http://localhost:5173", "http://127.0.0.1", "https://0.0.0.0:8443",
                   "chrome-extension://abcdefgh", "vscode-webview://x1", "tauri://localhost",
                   "app://obsidian.md", "file://"):
        r = httpx.get(url, headers={"Origin": origin})
        assert r.status_code == 200, origin
        assert r.headers["access-control-allow-origin"] == origin
        assert r.headers["vary"] == "Origin"
    for origin in ("http://evil.example", "https://trusted.example.evil.com",
                   "http://app.example.com.evil.com", "chrome-extension://other",
                   "http://localhost.evil.example", "null"):
        r = httpx.get(url, headers={"Origin": origin})
        assert (r.status_code, r.content) == (403, b""), origin
        assert "access-control-allow-origin" not in r.headers


def test_same_origin_requests_are_not_cors(bare):
    """A page served by this server (the web page) names its own origin: not a CORS request,
    whatever the host is called."""
    host = f"my-box.local:{bare.port}"
    r = httpx.get(f"{bare.url}/api/version", headers={"Host": host, "Origin": f"http://{host}"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_preflight(bare):
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,authorization,x-stainless-os"}
    r = httpx.options(f"{bare.url}/api/chat", headers={"Origin": "http://app.example.com",
                                                       **asked})
    assert (r.status_code, r.content) == (204, b"")
    assert r.headers["access-control-allow-origin"] == "http://app.example.com"
    assert r.headers["access-control-allow-methods"] == "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
    allowed = r.headers["access-control-allow-headers"].split(",")
    assert allowed[:6] == ["Authorization", "Content-Type", "User-Agent", "Accept",
                           "X-Requested-With", "Openai-Beta"]
    assert {"X-Stainless-Os", "X-Stainless-Timeout", "X-Api-Key"} <= set(allowed)
    assert r.headers["access-control-max-age"] == "43200"
    assert r.headers.get_list("vary") == ["Origin", "Access-Control-Request-Method",
                                          "Access-Control-Request-Headers"]
    foreign = httpx.options(f"{bare.url}/api/chat", headers={"Origin": "http://evil.example",
                                                             **asked})
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers


def test_a_foreign_page_cannot_even_send_a_simple_request(bare):
    """A page elsewhere may POST text/plain without a preflight; Ollama refuses it (403) before
    the route runs, so nothing is written."""
    data = b"planted by another site"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{bare.url}/api/blobs/{digest}", content=data,
                   headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert r.status_code == 403
    assert httpx.head(f"{bare.url}/api/blobs/{digest}").status_code == 404
    assert not (bare.models / "blobs" / digest.replace(":", "-")).exists()


def test_origins_star_allows_every_origin():
    srv = Server(extra_env={"OLLAMA_ORIGINS": "*"}).start()
    try:
        r = httpx.get(f"{srv.url}/api/version", headers={"Origin": "http://anything.example"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    finally:
        srv.cleanup()


@pytest.mark.parametrize("origins", ["app.example.com", "http://a.example,*.b.*"])
def test_serve_refuses_origins_that_cannot_match(tmp_path, origins):
    """Ollama panics on these at start; pollama says which entry and how to fix it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update(HOME=str(tmp_path), OLLAMA_ORIGINS=origins,
               OLLAMA_HOST=f"127.0.0.1:{free_port()}")
    ran = subprocess.run([sys.executable, "-m", "pollama", "serve"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1
    assert "Error: OLLAMA_ORIGINS entry" in ran.stderr


# -- request bodies -------------------------------------------------------------------------


def test_json_bodies_are_bounded_in_every_dialect(bare):
    big = b" " * (MAX_BODY + 1)
    for path, error in (("/api/chat", lambda b: b["error"]),
                        ("/api/generate", lambda b: b["error"]),
                        ("/api/embed", lambda b: b["error"]),
                        ("/v1/chat/completions", lambda b: b["error"]["message"]),
                        ("/v1/messages", lambda b: b["error"]["message"])):
        r = httpx.post(bare.url + path, content=big, timeout=TIMEOUT)
        assert r.status_code == 413, path
        assert error(r.json()).startswith("request body too large: the limit is 64 MiB"), path
    assert r.json()["error"]["type"] == "request_too_large"  # Anthropic's own type

    def chunks():  # no Content-Length: refused once the bytes pass the limit
        for _ in range(MAX_BODY // (1 << 20) + 2):
            yield b" " * (1 << 20)

    r = httpx.post(f"{bare.url}/api/chat", content=chunks(), timeout=TIMEOUT)
    assert r.status_code == 413
    # A body just under the limit is read and parsed as usual.
    r = httpx.post(f"{bare.url}/api/chat", content=b'{"model": ""}' + b" " * (MAX_BODY - 20),
                   timeout=TIMEOUT)
    assert r.status_code == 400 and r.json() == {"error": "model is required"}


def test_blob_uploads_are_streamed_to_disk_beyond_the_json_limit(bare):
    data = os.urandom(1 << 20) * (MAX_BODY // (1 << 20) + 3)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{bare.url}/api/blobs/{digest}", content=data, timeout=TIMEOUT)
    assert r.status_code == 201
    assert (bare.models / "blobs" / digest.replace(":", "-")).stat().st_size == len(data)
    (bare.models / "blobs" / digest.replace(":", "-")).unlink()


# -- names and digests stay inside the models folder ---------------------------------------


BAD_NAMES = ["../../outside:escape", "..", "../escape", "/etc/passwd", "/tmp/abs:latest",
             "a/../../../outside:escape", "smollm2:../../../outside/escape",
             "..%2f..%2foutside:escape", "registry.ollama.ai/../../outside:escape",
             "library/..:latest", "./smollm2", "~/escape", "..\\..\\outside", "a/b/c/d/e"]


@pytest.fixture(scope="module")
def planted(server, smol):
    """A valid manifest outside the models folder where `../../outside:escape` would lead if
    names could climb out of `manifests/` (so a route that followed it would find a model)."""
    manifest = server.models / "manifests/registry.ollama.ai/library/smollm2/135m"
    outside = server.root / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(manifest, outside / "escape")
    assert (server.models / "manifests/../../outside/escape").resolve() == \
        (outside / "escape").resolve()
    return outside


def _outside_files(server: Server) -> set[str]:
    """Every file beside the models folder (but the server's home and log), and the places
    absolute names would reach."""
    found = {str(p.relative_to(server.root)) for p in server.root.rglob("*")
             if p.relative_to(server.root).parts[0] not in ("models", "home", "server.log")}
    return found | {p for p in ("/tmp/abs", "/tmp/abs:latest", "/escape") if Path(p).exists()}


def test_model_names_never_leave_the_models_folder(server, smol, planted):
    before = _outside_files(server)
    manifests_before = sorted(p.name for p in (server.models / "manifests").rglob("*"))
    chat = [{"role": "user", "content": "hi"}]
    for name in BAD_NAMES:
        calls = [
            ("POST", "/api/show", {"model": name}),
            ("DELETE", "/api/delete", {"model": name}),
            ("POST", "/api/copy", {"source": name, "destination": "copied-from-outside"}),
            ("POST", "/api/copy", {"source": smol, "destination": name}),
            ("POST", "/api/create", {"model": name, "from": smol, "stream": False}),
            ("POST", "/api/create", {"model": "made-from-outside", "from": name,
                                     "stream": False}),
            ("POST", "/api/pull", {"model": name, "stream": False}),
            ("POST", "/api/push", {"model": name, "stream": False}),
            ("POST", "/api/generate", {"model": name, "prompt": "hi"}),
            ("POST", "/api/chat", {"model": name, "messages": chat}),
            ("POST", "/api/embed", {"model": name, "input": "hi"}),
            ("POST", "/api/embeddings", {"model": name, "prompt": "hi"}),
            ("POST", "/api/tokenize", {"model": name, "content": "hi"}),
            ("POST", "/api/conversations", {"model": name}),
            ("POST", "/v1/chat/completions", {"model": name, "messages": chat}),
            ("POST", "/v1/completions", {"model": name, "prompt": "hi"}),
            ("POST", "/v1/embeddings", {"model": name, "input": "hi"}),
            ("POST", "/v1/messages", {"model": name, "max_tokens": 8, "messages": chat}),
        ]
        for method, path, body in calls:
            r = httpx.request(method, server.url + path, json=body, timeout=TIMEOUT)
            assert r.status_code in (400, 404), (name, path, r.status_code, r.text)
            assert "error" in r.json(), (name, path)
        encoded = httpx.URL(server.url).copy_with(raw_path=(
            "/v1/models/" + name.replace("/", "%2F")).encode())
        assert httpx.get(encoded).status_code == 404, name
        r = httpx.get(f"{server.url}/api/export", params={"model": name}, timeout=TIMEOUT)
        assert r.status_code in (400, 404), (name, r.status_code)
        r = httpx.post(f"{server.url}/api/import", params={"model": name}, content=b"x",
                       timeout=TIMEOUT)
        assert r.status_code == 400, (name, r.status_code)
    assert _outside_files(server) == before
    assert (planted / "escape").read_bytes() == (
        server.models / "manifests/registry.ollama.ai/library/smollm2/135m").read_bytes()
    assert sorted(p.name for p in (server.models / "manifests").rglob("*")) == manifests_before


@pytest.mark.parametrize("digest", [
    "..%2F..%2Foutside%2Fescape", "sha256:..%2F..%2Fescape", "sha256-" + "0" * 63 + "%2F0",
    "sha256-" + "0" * 64 + "%2F..%2F..%2Fescape", "%2Fetc%2Fpasswd", "sha256%3A" + "g" * 64,
    "..", "sha256-" + "0" * 64 + "%00", "sha256-..%2F" + "0" * 61,
])
def test_blob_digests_never_leave_the_blobs_folder(server, digest):
    before = _outside_files(server)
    url = httpx.URL(server.url).copy_with(raw_path=f"/api/blobs/{digest}".encode())
    assert httpx.head(url).status_code in (400, 404)
    r = httpx.post(url, content=b"planted")
    assert r.status_code in (400, 404), r.text
    assert _outside_files(server) == before


def test_blob_links_out_of_the_models_folder_are_never_followed(server, smol):
    """A blob that is a symbolic link to a file elsewhere is not read, served or written
    through; writing the blob again replaces the link; a link inside the folder is fine."""
    client = server.client()
    client.create(model="linked", from_=smol, system="You are a careful assistant.")
    manifest = json.loads((server.models / "manifests/registry.ollama.ai/library/linked/latest"
                           ).read_bytes())
    layer = next(x for x in manifest["layers"]
                 if x["mediaType"] == "application/vnd.ollama.image.system")
    blob = server.models / "blobs" / layer["digest"].replace(":", "-")
    original = blob.read_bytes()
    secret = server.root / "secret.txt"
    secret.write_text("OUTSIDE-SECRET-4b1d")
    blob.unlink()
    blob.symlink_to(secret)

    shown = httpx.post(f"{server.url}/api/show", json={"model": "linked"})
    assert shown.status_code == 500 and "OUTSIDE-SECRET" not in shown.text
    assert "is a symbolic link to" in shown.json()["error"]
    assert "outside the models directory" in shown.json()["error"]
    generated = httpx.post(f"{server.url}/api/generate", json={"model": "linked", "prompt": "x",
                                                                "stream": False}, timeout=TIMEOUT)
    assert generated.status_code == 500 and "symbolic link" in generated.json()["error"]
    exported = httpx.get(f"{server.url}/api/export", params={"model": "linked"}, timeout=TIMEOUT)
    assert exported.status_code == 500 and b"OUTSIDE-SECRET" not in exported.content
    assert httpx.head(f"{server.url}/api/blobs/{layer['digest']}").status_code == 404

    # Uploading the true bytes writes a real blob in place of the link; the file it pointed at
    # is untouched.
    r = httpx.post(f"{server.url}/api/blobs/{layer['digest']}", content=original)
    assert r.status_code == 201
    assert secret.read_text() == "OUTSIDE-SECRET-4b1d"
    assert not blob.is_symlink() and blob.read_bytes() == original
    assert "SYSTEM You are a careful assistant." in client.show("linked").modelfile

    # A link that stays inside the models folder is followed as usual.
    inside = server.models / "kept-elsewhere-inside"
    inside.write_bytes(original)
    blob.unlink()
    blob.symlink_to(inside)
    assert "SYSTEM You are a careful assistant." in client.show("linked").modelfile

    # Deleting the model removes the link, never the file it points at.
    blob.unlink()
    blob.symlink_to(secret)
    client.delete("linked")
    assert not blob.is_symlink() and secret.read_text() == "OUTSIDE-SECRET-4b1d"
    inside.unlink()


# -- GGUF chat templates run in the sandbox -------------------------------------------------


HOSTILE_TEMPLATE = ("{{ cycler.__init__.__globals__.os.system('touch MARKER') }}"
                    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                    "{% endfor %}<|im_start|>assistant\n")


def test_a_gguf_template_reaching_for_python_internals_fails_cleanly(server, smollm2_path,
                                                                      tmp_path):
    marker = tmp_path / "template-ran"
    gguf = tmp_path / "hostile.gguf"
    made = subprocess.run([str(Path(sys.executable).parent / "gguf-new-metadata"),
                           "--chat-template", HOSTILE_TEMPLATE.replace("MARKER", str(marker)),
                           "--force", str(smollm2_path), str(gguf)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    client = server.client()
    client.create(model="hostile", files={gguf.name: client.create_blob(gguf)})
    gguf.unlink()
    log_before = len(server.log())
    messages = [{"role": "user", "content": "hi"}]
    why = ("error rendering the model's chat template: access to attribute '__init__' of "
           "'type' object is unsafe")
    r = httpx.post(f"{server.url}/api/chat", json={"model": "hostile", "messages": messages},
                   timeout=TIMEOUT)
    assert (r.status_code, r.json()) == (400, {"error": why})
    r = httpx.post(f"{server.url}/v1/chat/completions",
                   json={"model": "hostile", "messages": messages}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["message"] == why
    assert not marker.exists()
    assert "Traceback" not in server.log()[log_before:]
    assert httpx.get(f"{server.url}/api/tags").status_code == 200
    client.delete("hostile")


# -- the log ----------------------------------------------------------------------------------


def test_prompts_and_answers_stay_out_of_the_log(server, smol):
    """At the default level the log tells what ran (a runner started) but never what was said:
    not a prompt, a system prompt, an answer, an embedded text, nor a failed request's body."""
    marker = "PROMPT-MARKER-9c2e"
    quick = {"num_predict": 8, "temperature": 0}
    chat = [{"role": "system", "content": f"You know {marker}."},
            {"role": "user", "content": f"Repeat {marker} exactly."}]
    calls = [
        ("/api/generate", {"model": smol, "prompt": f"Say {marker}", "stream": False,
                           "options": quick}),
        ("/api/generate", {"model": smol, "prompt": f"Say {marker}", "raw": True,
                           "options": quick}),
        ("/api/chat", {"model": smol, "messages": chat, "options": quick}),
        ("/api/chat", {"model": smol, "messages": chat, "stream": False,
                       "options": {"num_predict": 40, "temperature": 0},
                       "format": {"type": "string", "enum": [marker]}}),  # the answer too
        ("/api/embed", {"model": smol, "input": [marker]}),
        ("/api/tokenize", {"model": smol, "content": marker}),
        ("/v1/chat/completions", {"model": smol, "messages": chat, "max_tokens": 8}),
        ("/v1/completions", {"model": smol, "prompt": marker, "max_tokens": 8}),
        ("/v1/messages", {"model": smol, "max_tokens": 8, "system": marker,
                          "messages": chat[1:]}),
        ("/v1/responses", {"model": smol, "input": marker, "max_output_tokens": 8}),
        # failures: a bad option, a bad image, a body that is not JSON
        ("/api/generate", {"model": smol, "prompt": marker, "options": {"num_predict": "x"}}),
        ("/api/chat", {"model": smol, "messages": [{"role": "user", "content": marker,
                                                     "images": [marker]}]}),
    ]
    for path, body in calls:
        r = httpx.post(server.url + path, json=body, timeout=TIMEOUT)
        assert r.status_code < 500, (path, r.text)
    assert marker in httpx.post(server.url + "/api/chat", json=calls[3][1],
                                timeout=TIMEOUT).json()["message"]["content"]
    httpx.post(f"{server.url}/api/chat", content=f"{{{marker}".encode(), timeout=TIMEOUT)
    made = httpx.post(f"{server.url}/api/conversations", json={"model": smol}).json()
    httpx.post(f"{server.url}/api/chat", json={"model": smol, "conversation": made["id"],
                                                "messages": chat[1:], "options": quick},
               timeout=TIMEOUT)
    log = server.log()
    assert "llama runner started" in log  # the requests ran and the log was written
    assert marker not in log
