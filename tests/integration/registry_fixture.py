"""A real OCI registry for tests: Debian's `docker-registry` (Docker Distribution 2.8).

Each registry gets a free loopback port, its own storage directory and a log file; the access
log (combined log format) lets a test count the bytes the registry served. With `htpasswd`, the
registry asks for HTTP basic credentials (a bcrypt file made by `htpasswd -Bbn`, Debian
`apache2-utils`). Tests skip with a reason when a binary is missing; CI installs both.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

_ACCESS = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(\w+) (\S+) [^"]*" (\d{3}) (\d+|-)')


@dataclass(frozen=True)
class Access:
    method: str
    path: str
    status: int
    size: int


@dataclass
class Registry:
    """A running docker-registry process."""

    host: str  # 127.0.0.1:<port>
    root: Path  # storage.filesystem.rootdirectory
    log_path: Path
    process: subprocess.Popen[bytes]
    credentials: tuple[str, str] | None = None
    _marks: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def access_log(self) -> list[Access]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            m = _ACCESS.match(line)
            if m:
                size = 0 if m.group(4) == "-" else int(m.group(4))
                entries.append(Access(m.group(1), m.group(2), int(m.group(3)), size))
        return entries

    def blob_bytes_served(self, digest: str) -> int:
        """Body bytes of every GET of this blob so far (ranged or not)."""
        return sum(a.size for a in self.access_log()
                   if a.method == "GET" and a.path.split("?")[0].endswith(f"/blobs/{digest}"))

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes."""
        hexd = digest.split(":", 1)[1]
        return self.root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(workdir: Path, *, htpasswd: tuple[str, str] | None = None,
                   address: str = "127.0.0.1") -> Registry:
    """Start docker-registry in `workdir`, listening on `address`; skips the test if the
    binaries are missing."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (Debian package docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "storage"
    root.mkdir(exist_ok=True)
    port = free_port()
    auth = ""
    if htpasswd is not None:
        tool = shutil.which("htpasswd")
        if tool is None:
            pytest.skip("htpasswd is not installed (Debian package apache2-utils)")
        line = subprocess.run([tool, "-Bbn", *htpasswd], check=True, capture_output=True,
                              text=True).stdout.strip()
        (workdir / "htpasswd").write_text(line + "\n")
        auth = (f"auth:\n  htpasswd:\n    realm: pollama-test\n"
                f"    path: {workdir / 'htpasswd'}\n")
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  formatter: text\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}:{port}\n  secret: pollama-test-secret\n"
        + auth)
    log_path = workdir / "registry.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the process keeps it
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                               stderr=subprocess.STDOUT)
    log.close()
    registry = Registry(f"{address}:{port}", root, log_path, process, htpasswd)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{registry.url}/v2/", timeout=1).status_code in (200, 401):
                return registry
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            registry.stop()
            raise RuntimeError(f"docker-registry did not answer: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """An open registry (no auth)."""
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry that wants HTTP basic credentials `tester` / `s3cret-pass`."""
    reg = start_registry(tmp_path / "auth-registry", htpasswd=("tester", "s3cret-pass"))
    yield reg
    reg.stop()


# -- a throttling, counting TCP proxy -------------------------------------------------------------


LINK_BURST = 256 * 1024


class Proxy:
    """Forwards 127.0.0.1:<port> to the registry; counts (and optionally paces) bytes sent back.

    `rate` paces the whole link (all connections share it, as on a slow line);
    `connection_rate` paces each connection alone (as a CDN that caps every connection)."""

    def __init__(self, target: str, rate: float | None = None,
                 cut_after: int | None = None, connection_rate: float | None = None) -> None:
        self.target = target.split(":")
        self.rate = rate
        self.connection_rate = connection_rate
        self.cut_after = cut_after  # drop the first connection that passes this many bytes
        self.down = 0
        self.open = 0  # connections open now, and the most at once
        self.most_open = 0
        self._link_free_at = 0.0  # when the shared link has sent what it was given
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
            with self._lock:
                self.open += 1
                self.most_open = max(self.most_open, self.open)
            threading.Thread(target=self._pump, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        passed = 0
        paced = self.rate or self.connection_rate
        try:
            while True:
                data = src.recv(16384 if paced else 262144)
                if not data:
                    break
                passed += len(data)
                if down and self.cut_after is not None and passed > self.cut_after:
                    self.cut_after = None
                    break
                if down:
                    with self._lock:
                        self.down += len(data)
                        now = time.monotonic()
                        if self.rate:  # a token bucket: time lost to a late wake-up is
                            # made up (up to 256 KiB), so one connection can fill the line
                            self._link_free_at = max(self._link_free_at,
                                                     now - LINK_BURST / self.rate) + \
                                len(data) / self.rate
                        until = self._link_free_at if self.rate else now
                    if self.connection_rate:
                        until = max(until, now + len(data) / self.connection_rate)
                    time.sleep(max(until - now, 0))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if down:
                with self._lock:
                    self.open -= 1
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()
