"""Sharing models end to end through `pollama` itself: push and pull against a real
docker-registry, credentials, a pull cut off by a server restart, export and import."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import httpx

from tests.helpers import Server
from tests.integration.registry_fixture import Proxy, Registry, start_registry

GREEDY = {"temperature": 0, "seed": 1, "num_predict": 16}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def store_snapshot(server: Server, manifest: str) -> tuple[bytes, dict[str, bytes]]:
    raw = (server.models / "manifests" / manifest).read_bytes()
    data = json.loads(raw)
    blobs = {layer["digest"]: (server.models / "blobs" / layer["digest"].replace(":", "-"))
             .read_bytes() for layer in [*data["layers"], data["config"]]}
    return raw, blobs


def test_push_pull_round_trip_gives_same_bytes_and_answer(server, smol, registry: Registry,
                                                          tmp_path: Path):
    remote = f"{registry.host}/test/smollm2:135m"
    assert server.cli("cp", smol, remote).returncode == 0
    pushed = server.cli("push", remote, "--insecure")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushing manifest" in pushed.stderr and "success" in pushed.stderr
    assert f"You can find your model at:\n\n\t{remote}" in pushed.stdout
    answer = server.client().chat(model=smol, messages=QUESTION, options=GREEDY).message.content
    before = store_snapshot(server, f"{registry.host}/test/smollm2/135m")

    fresh = Server(root=tmp_path / "fresh").start()
    try:
        pulled = fresh.cli("pull", remote, "--insecure")
        assert pulled.returncode == 0, pulled.stderr
        assert "pulling manifest" in pulled.stderr
        assert "verifying sha256 digest" in pulled.stderr and "success" in pulled.stderr
        assert store_snapshot(fresh, f"{registry.host}/test/smollm2/135m") == before
        again = fresh.client().chat(model=remote, messages=QUESTION, options=GREEDY)
        assert again.message.content == answer
        # Through the official client too: the NDJSON progress ends in success.
        statuses = [p.status for p in fresh.client().pull(remote, insecure=True, stream=True)]
        assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    finally:
        fresh.cleanup()


def test_pull_errors(server, registry: Registry):
    missing = server.cli("pull", f"{registry.host}/test/nothing:here", "--insecure")
    assert missing.returncode == 1
    assert "Error: pull model manifest: file does not exist" in missing.stderr
    r = httpx.post(f"{server.url}/api/pull", json={"model": "bad/../name"})
    assert r.status_code == 400 and r.json() == {"error": "invalid model name"}
    r = httpx.post(f"{server.url}/api/push", json={})
    assert r.status_code == 400 and r.json() == {"error": "model is required"}
    plain = server.cli("pull", f"http://{registry.host}/test/nothing:here")
    assert plain.returncode == 1 and "insecure protocol http" in plain.stderr


def test_credentials_from_registries_json(smol, server, tmp_path: Path):
    reg = start_registry(tmp_path / "auth-registry", htpasswd=("alice", "s3cret"))
    try:
        remote = f"{reg.host}/alice/smol:1"
        server.cli("cp", smol, remote)
        denied = server.cli("push", remote, "--insecure")
        assert denied.returncode == 1
        assert denied.stderr.strip().splitlines()[-1] == (
            "Error: you are not authorized to push to this namespace, create the model under a "
            "namespace you own")
        creds = server.home / ".ollama" / "registries.json"
        creds.parent.mkdir(parents=True, exist_ok=True)
        creds.write_text(json.dumps({"auths": {reg.host: {"username": "alice",
                                                          "password": "wrong"}}}))
        wrong = server.cli("pull", remote, "--insecure")
        assert wrong.returncode == 1 and "unauthorized: access denied" in wrong.stderr
        creds.write_text(json.dumps({"auths": {reg.host: {"username": "alice",
                                                          "password": "s3cret"}}}))
        ok = server.cli("push", remote, "--insecure")
        assert ok.returncode == 0, ok.stderr
    finally:
        reg.stop()


def test_pull_cut_by_server_restart_resumes(server, smol, registry: Registry, tmp_path: Path):
    """Kill the server mid-download; after a restart the pull fetches only the missing bytes."""
    remote_name = "test/resume:1"
    server.cli("cp", smol, f"{registry.host}/{remote_name}")
    assert server.cli("push", f"{registry.host}/{remote_name}", "--insecure").returncode == 0
    manifest = json.loads((server.models / "manifests" / registry.host / "test/resume/1")
                          .read_bytes())
    model = next(x for x in manifest["layers"] if x["mediaType"].endswith(".model"))
    slow = Proxy(registry.host, rate=12 << 20)  # slow enough to be caught mid-blob
    fast = Proxy(registry.host)
    fresh = Server(root=tmp_path / "fresh").start()
    try:
        proc = subprocess.Popen(
            ["curl", "-s", "-N", f"{fresh.url}/api/pull", "-d",
             json.dumps({"model": f"{slow.host}/{remote_name}", "insecure": True})],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = fresh.models / "blobs" / (model["digest"].replace(":", "-") + "-partial-0")
        deadline = time.monotonic() + 60
        completed = 0
        while completed < (15 << 20):
            assert time.monotonic() < deadline, "the pull never got going"
            with contextlib.suppress(OSError, ValueError, KeyError):
                completed = json.loads(state.read_text())["Completed"]
            time.sleep(0.05)
        fresh.process.kill()  # the server dies mid-download
        fresh.process.wait()
        proc.kill()
        completed = json.loads(state.read_text())["Completed"]
        assert completed < model["size"]
        fresh.start()
        pulled = fresh.cli("pull", f"{fast.host}/{remote_name}", "--insecure")
        assert pulled.returncode == 0, pulled.stderr
        # Only the rest of the big blob crossed the wire (plus small blobs and headers).
        assert model["size"] - completed <= fast.down <= model["size"] - completed + (256 << 10)
        assert not list(fresh.models.rglob("*-partial*"))
        r = fresh.client().generate(model=f"{fast.host}/{remote_name}", prompt="Hi",
                                    options={"num_predict": 2})
        assert r.done
    finally:
        fresh.cleanup()
        slow.close()
        fast.close()


def test_export_import_round_trip(server, smol, tmp_path: Path):
    tar = tmp_path / "smol.tar"
    out = server.cli("export", smol, "-o", str(tar))
    assert out.returncode == 0, out.stderr
    assert tar.stat().st_size > 90_000_000
    answer = server.client().chat(model=smol, messages=QUESTION, options=GREEDY).message.content
    before = store_snapshot(server, "registry.ollama.ai/library/smollm2/135m")
    offline = Server(root=tmp_path / "offline").start()
    try:
        imported = offline.cli("import", str(tar))
        assert imported.returncode == 0, imported.stderr
        assert "smollm2:135m" in imported.stdout
        assert store_snapshot(offline, "registry.ollama.ai/library/smollm2/135m") == before
        again = offline.client().chat(model=smol, messages=QUESTION, options=GREEDY)
        assert again.message.content == answer
        renamed = offline.cli("import", str(tar), "--name", "copy:v2")
        assert renamed.returncode == 0, renamed.stderr
        assert "copy:v2" in {m.model for m in offline.client().list().models}
        broken = tmp_path / "broken.tar"
        broken.write_bytes(tar.read_bytes()[: 50_000_000])
        failed = offline.cli("import", str(broken), "--name", "broken")
        assert failed.returncode == 1
        assert "broken:latest" not in {m.model for m in offline.client().list().models}
        missing = server.cli("export", "nope", "-o", str(tmp_path / "x.tar"))
        assert missing.returncode == 1 and "not found" in missing.stderr
        assert not (tmp_path / "x.tar").exists()
    finally:
        offline.cleanup()
