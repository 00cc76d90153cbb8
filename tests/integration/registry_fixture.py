"""A real OCI registry for tests: Debian's `docker-registry` (Docker Distribution 2.8).

Each registry gets a free loopback port, its own storage directory and a log file; the access
log (combined log format) lets a test count the bytes the registry served. With `htpasswd`, the
registry asks for HTTP basic credentials (a bcrypt file made by `htpasswd -Bbn`, Debian
`apache2-utils`); with a `TokenService`, for bearer tokens from it (Docker's token auth).
Tests skip with a reason when a binary is missing; CI installs both.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

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
                   tokens: TokenService | None = None, address: str = "127.0.0.1") -> Registry:
    """Start docker-registry in `workdir`, listening on `address`; skips the test if the
    binaries are missing. With `tokens`, the registry wants bearer tokens from that service."""
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
    if tokens is not None:
        auth = (f"auth:\n  token:\n    realm: {tokens.url}/token\n    service: {tokens.SERVICE}\n"
                f"    issuer: {tokens.ISSUER}\n    rootcertbundle: {tokens.cert_path}\n")
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


# -- a Docker token service ---------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class HttpFront:
    """A threaded HTTP/1.1 server on a free loopback port; every request goes to `handle`."""

    def __init__(self) -> None:
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                front.handle(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def reply(req: http.server.BaseHTTPRequestHandler, code: int, body: bytes,
              headers: dict[str, str]) -> None:
        req.send_response(code)
        for key, value in headers.items():
            req.send_header(key, value)
        if "Content-Length" not in headers:
            req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)


class TokenService(HttpFront):
    """The token server of Docker's token auth (as Harbor, GitLab or Docker Hub run one):
    `GET /token?service=..&scope=..` with HTTP basic credentials answers `{"token": <JWT>}`,
    an ES256 JWT whose x5c certificate the registry trusts (its `rootcertbundle`)."""

    SERVICE = "pollama-test-registry"
    ISSUER = "pollama-test-issuer"

    def __init__(self, workdir: Path, users: dict[str, str], lifetime: float = 300) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.users = users
        self.lifetime = lifetime
        self.granted: list[str] = []  # the scopes of every token given out
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pollama test tokens")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))
        self.cert_path = workdir / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        super().__init__()

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        status, body = self._answer(req.path, req.headers.get("Authorization", ""))
        self.reply(req, status, body, {"Content-Type": "application/json"})

    def _answer(self, path: str, authorization: str) -> tuple[int, bytes]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        try:
            user, _, password = base64.b64decode(
                authorization.removeprefix("Basic ")).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user, password = "", ""
        if not authorization.startswith("Basic ") or self.users.get(user) != password:
            return 401, b'{"details":"incorrect username or password"}'
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
            self.granted.append(scope)
        return 200, json.dumps({"token": self._jwt(user, access)}).encode()

    def _jwt(self, user: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {"iss": self.ISSUER, "sub": user, "aud": self.SERVICE, "iat": now,
                  "nbf": now - 10, "exp": now + int(self.lifetime),
                  "jti": base64.b16encode(os.urandom(8)).decode(), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}." \
                        f"{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(),
                                                   ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


# -- a throttling, counting TCP proxy -------------------------------------------------------------


LINK_BURST = 0.25  # seconds of a line's rate that a late connection may make up at once


@dataclass
class Connection:
    """One connection through a Proxy: when it opened and closed, and the bytes it brought."""

    opened: float
    closed: float | None = None
    down: int = 0


class Proxy:
    """Forwards 127.0.0.1:<port> to the registry; counts the bytes both ways and optionally
    paces those sent back.

    `rate` paces the whole link (all connections share it, as on a slow line);
    `connection_rate` paces each connection alone (as a CDN that caps every connection)."""

    def __init__(self, target: str, rate: float | None = None,
                 cut_after: int | None = None, connection_rate: float | None = None) -> None:
        self.target = target.split(":")
        self.rate = rate
        self.connection_rate = connection_rate
        self.cut_after = cut_after  # drop the first connection that passes this many bytes
        self.down = 0
        self.up = 0  # bytes the clients sent
        self.connections: list[Connection] = []
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
            record = Connection(time.monotonic())
            with self._lock:
                self.connections.append(record)
            threading.Thread(target=self._pump, args=(client, upstream, False, record),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True, record),
                             daemon=True).start()

    def most_at_once(self, min_down: int = 0) -> int:
        """The most connections open at one time among those that brought `min_down` bytes."""
        with self._lock:
            spans = [(c.opened, c.closed or time.monotonic()) for c in self.connections
                     if c.down >= min_down]
        edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
        most = now = 0
        for _, step in edges:
            now += step
            most = max(most, now)
        return most

    def _pump(self, src: socket.socket, dst: socket.socket, down: bool,
              record: Connection) -> None:
        passed = 0
        paced = self.rate or self.connection_rate
        try:
            while True:
                data = src.recv(65536 if paced else 262144)
                if not data:
                    break
                passed += len(data)
                if down and self.cut_after is not None and passed > self.cut_after:
                    self.cut_after = None
                    break
                if not down:
                    with self._lock:
                        self.up += len(data)
                else:
                    with self._lock:
                        self.down += len(data)
                        record.down += len(data)
                        now = time.monotonic()
                        if self.rate:  # a token bucket: time lost to a late wake-up (a
                            # busy machine) is made up, so one connection can fill the line
                            self._link_free_at = max(self._link_free_at, now - LINK_BURST) + \
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
                record.closed = time.monotonic()
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()
