"""Test helpers: start a real `pollama serve`, run the real CLI, find the real model."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pollama.cli.bundled import smollm2_gguf

__all__ = ["Server", "Worker", "create_from_gguf", "free_port", "smollm2_gguf"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM a child still running, SIGKILL it after 15 s, and reap it."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Server:
    """A real `pollama serve` subprocess on a free loopback port with its own store and home."""

    new_session = False  # True: the server leads a process group of its own (to SIGKILL it)
    launcher: tuple[str, ...] = ()  # a command prefix: nsenter into a test's mount namespace

    def __init__(self, extra_env: dict[str, str] | None = None, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pollama-test-"))
        self.home = self.root / "home"
        self.models = self.root / "models"
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
        self.env.update({"HOME": str(self.home), "OLLAMA_MODELS": str(self.models),
                         "OLLAMA_HOST": f"127.0.0.1:{self.port}", "PYTHONUNBUFFERED": "1"})
        self.env.update(extra_env or {})
        self.log_path = self.root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen([*self.launcher, sys.executable, "-m", "pollama",
                                         "serve"], env=self.env, stdout=self._log, stderr=self._log,
                                        start_new_session=self.new_session)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx.get(self.url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log()}")

    def stop(self) -> None:
        terminate(self.process)
        if getattr(self, "_log", None):
            self._log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, input: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real `pollama` CLI against this server."""
        return subprocess.run([sys.executable, "-m", "pollama", *args], env={**self.env,
                              **(env or {})}, input=input, capture_output=True, text=True,
                              timeout=timeout)

    def client(self):
        import ollama

        return ollama.Client(host=self.url)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Worker:
    """A real `pollama worker` (llama.cpp's RPC server) on a free loopback port."""

    def __init__(self, root: Path, *args: str) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.cache = root / f"rpc-cache-{self.port}"
        self.log_path = root / f"worker-{self.port}.log"
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        from pollama.engine import rpc

        self._log = open(self.log_path, "ab")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pollama", "worker", "--listen", self.endpoint,
             "--cache-dir", str(self.cache), "--threads", "1", *self.args],
            env=env, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log()}")
            try:
                rpc.probe(self.endpoint, timeout=2)
                return self
            except rpc.WorkerUnavailable:
                time.sleep(0.1)
        raise RuntimeError(f"worker did not start: {self.log()}")

    def stop(self) -> int | None:
        terminate(self.process)
        if getattr(self, "_log", None):
            self._log.close()
        return self.process.returncode if self.process else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def create_from_gguf(server: Server, name: str, gguf: Path, **kwargs) -> None:
    """Create a model the way the official client does: create_blob, then create(files=...)."""
    client = server.client()
    digest = client.create_blob(gguf)
    client.create(model=name, files={gguf.name: digest}, **kwargs)
