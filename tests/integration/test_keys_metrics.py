"""API keys and Prometheus metrics (beyond Ollama) against real servers and the real clients."""

from __future__ import annotations

import subprocess
import sys

import anthropic
import httpx
import ollama
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Server, free_port, smollm2_gguf

KEYS = "key-one,key-two"
HTTP_TIMEOUT = 300
GREEDY = {"temperature": 0, "seed": 1, "num_predict": 8}


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """A server that wants an API key, with SmolLM2 created through an authorized client."""
    srv = Server(extra_env={"OLLAMA_API_KEYS": KEYS, "OMP_WAIT_POLICY": "PASSIVE"}).start()
    client = ollama.Client(host=srv.url, headers={"Authorization": "Bearer key-one"})
    path = smollm2_gguf()
    client.create(model="smollm2:135m", files={path.name: client.create_blob(path)})
    yield srv
    srv.cleanup()


def test_every_route_but_health_needs_a_key(locked):
    assert httpx.get(locked.url).text == "Ollama is running"  # health checks stay open
    for method, path in (("GET", "/api/tags"), ("POST", "/api/chat"), ("GET", "/api/ps"),
                         ("POST", "/api/embed"), ("GET", "/metrics"), ("GET", "/v1/models")):
        r = httpx.request(method, f"{locked.url}{path}", json={}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
    bad = httpx.get(f"{locked.url}/api/tags", headers={"Authorization": "Bearer key-three"})
    assert bad.status_code == 401 and "API key" in bad.json()["error"]
    for headers in ({"Authorization": "Bearer key-one"}, {"authorization": "bearer key-two"},
                    {"x-api-key": "key-two"}):
        ok = httpx.get(f"{locked.url}/api/tags", headers=headers)
        assert ok.status_code == 200, headers


def test_cors_preflight_passes_and_a_401_carries_cors_headers(locked):
    origin = {"Origin": "http://localhost:3000"}
    pre = httpx.options(f"{locked.url}/api/chat", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 204  # gin-contrib/cors's answer to a preflight, as Ollama's
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    denied = httpx.get(f"{locked.url}/api/tags", headers=origin)
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_official_clients_with_and_without_the_key(locked):
    good = ollama.Client(host=locked.url, headers={"Authorization": "Bearer key-two"})
    answer = good.chat(model="smollm2:135m", messages=[{"role": "user", "content": "Hi"}],
                       options=GREEDY)
    assert answer.message.content
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=locked.url).list()
    assert err.value.status_code == 401

    oai = openai.OpenAI(base_url=f"{locked.url}/v1", api_key="key-one")
    assert any(m.id == "smollm2:135m" for m in oai.models.list())
    with pytest.raises(openai.AuthenticationError) as oerr:
        openai.OpenAI(base_url=f"{locked.url}/v1", api_key="nope").models.list()
    assert oerr.value.body["code"] == "invalid_api_key"

    ant = anthropic.Anthropic(base_url=locked.url, api_key="key-two")  # sends x-api-key
    msg = ant.messages.create(model="smollm2:135m", max_tokens=8,
                              messages=[{"role": "user", "content": "Hi"}])
    assert msg.content
    with pytest.raises(anthropic.AuthenticationError) as aerr:
        anthropic.Anthropic(base_url=locked.url, api_key="nope").messages.create(
            model="smollm2:135m", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
    assert aerr.value.body["error"]["type"] == "authentication_error"


def test_the_cli_sends_ollama_api_key(locked):
    ok = locked.cli("list", env={"OLLAMA_API_KEY": "key-one"})
    assert ok.returncode == 0 and "smollm2:135m" in ok.stdout
    denied = locked.cli("list")
    assert denied.returncode != 0 and "API key" in denied.stderr


def serve(env: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess[str] | None:
    """`pollama serve` with `env`: the finished process if it exits within `timeout`, else None
    (it is serving; it is stopped)."""
    base = Server()
    full = {**base.env, **env}
    proc = subprocess.Popen([sys.executable, "-m", "pollama", "serve"], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.communicate(timeout=30)
        return None
    finally:
        base.cleanup()


def test_serving_beyond_loopback_needs_keys_or_an_explicit_opt_out(tmp_path):
    port = free_port()
    refused = serve({"OLLAMA_HOST": f"0.0.0.0:{port}"})
    assert refused is not None and refused.returncode == 1
    assert "no API key protects it" in refused.stderr and "OLLAMA_ALLOW_INSECURE=1" in \
        refused.stderr
    assert serve({"OLLAMA_HOST": f"0.0.0.0:{port}", "OLLAMA_ALLOW_INSECURE": "1"},
                 timeout=8) is None
    keys = tmp_path / "keys"
    keys.write_text("# the team's keys\nkey-a\n\nkey-b  # ci\n")
    assert serve({"OLLAMA_HOST": f"0.0.0.0:{port}", "OLLAMA_API_KEYS_FILE": str(keys)},
                 timeout=8) is None
    missing = serve({"OLLAMA_API_KEYS_FILE": str(tmp_path / "absent")})
    assert missing is not None and missing.returncode == 1
    assert "OLLAMA_API_KEYS_FILE" in missing.stderr and "cannot be read" in missing.stderr


def test_a_keys_file_is_honoured(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# the team's keys\nkey-a\n\nkey-b  # ci\n")
    srv = Server(extra_env={"OLLAMA_API_KEYS_FILE": str(keys)}).start()
    try:
        for key, status in (("key-a", 200), ("key-b", 200), ("# the team's keys", 401),
                            ("key-b  # ci", 401)):
            r = httpx.get(f"{srv.url}/api/tags", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == status, key
        assert httpx.get(f"{srv.url}/api/tags", headers={"x-api-key": ""}).status_code == 401
    finally:
        srv.cleanup()


# -- metrics -----------------------------------------------------------------------------------


def scrape(server: Server, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{server.url}/metrics", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_requests(server, smol):
    before = scrape(server)
    body = {"model": smol, "prompt": "Count to three.", "stream": False, "options": GREEDY}
    for _ in range(2):  # the second reads its prompt from the KV prefix cache
        r = httpx.post(f"{server.url}/api/generate", json=body, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200
    done = r.json()
    httpx.post(f"{server.url}/api/chat", json={"model": "nope"}, timeout=HTTP_TIMEOUT)
    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": "/api/generate", "method": "POST", "status": "200"}
    assert grew("pollama_http_requests_total", **route) == 2
    assert grew("pollama_http_requests_total", route="/api/chat", method="POST",
                status="404") == 1
    assert grew("pollama_generated_tokens_total", model=smol) == 2 * done["eval_count"]
    assert grew("pollama_prompt_tokens_total", model=smol) == 2 * done["prompt_eval_count"]
    assert grew("pollama_prefix_cache_hits_total", model=smol) >= 1
    assert grew("pollama_prompt_cached_tokens_total", model=smol) > 0
    assert grew("pollama_generations_total", model=smol, reason=done["done_reason"]) == 2
    assert grew("pollama_time_to_first_token_seconds_count", model=smol) == 2
    assert grew("pollama_time_per_output_token_seconds_count", model=smol) == 2
    assert value(after, "pollama_loaded_models") == 1
    assert value(after, "pollama_model_memory_bytes", model=smol) > 50_000_000
    assert value(after, "pollama_queue_depth") == 0


def test_pull_bytes_are_counted(server, smol, registry):
    remote = f"{registry.host}/test/counted:latest"
    assert server.cli("cp", smol, remote).returncode == 0
    assert server.cli("push", remote, "--insecure").returncode == 0
    assert server.cli("rm", remote).returncode == 0
    fresh = Server().start()
    try:
        before = value(scrape(fresh), "pollama_pull_bytes_total")
        pulled = fresh.cli("pull", remote, "--insecure")
        assert pulled.returncode == 0, pulled.stderr
        size = sum(p.stat().st_size for p in (fresh.models / "blobs").iterdir())
        assert value(scrape(fresh), "pollama_pull_bytes_total") - before == size
    finally:
        fresh.cleanup()


def test_metrics_can_be_turned_off():
    srv = Server(extra_env={"OLLAMA_METRICS": "0"}).start()
    try:
        assert httpx.get(f"{srv.url}/metrics").status_code == 404
    finally:
        srv.cleanup()
