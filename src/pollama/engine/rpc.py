"""RPC workers seen from Python: probe one over its wire protocol, plan a layer split, name the
workers a dead runner lost. No llama_cpp here: the server process uses it too.

llama.cpp's RPC backend (`ggml-rpc`) serves one client connection at a time, and its client
calls `abort()` when a worker cannot be reached or goes away. So before a runner hands an
endpoint to llama.cpp it asks the worker itself, with a timeout, for its protocol version,
devices and free memory (`probe`): a worker that is down, busy with another runner or of
another protocol version is skipped with the reason instead of killing the runner.

The wire format (ggml-rpc.cpp): a request is `cmd (1 byte) | size (u64) | data`, a reply
`size (u64) | data`, little-endian. The first request of a connection must be HELLO.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# ggml-rpc.h / ggml-rpc.cpp of the llama.cpp that llama-cpp-python 0.3.36 vendors.
PROTOCOL_MAJOR = 7
CMD_GET_DEVICE_MEMORY = 11
CMD_HELLO = 14
CMD_DEVICE_COUNT = 15
CONN_CAPS_SIZE = 24  # transport capabilities (RDMA); all zero: plain TCP
NOT_BUILT = ("this llama-cpp-python was built without llama.cpp's RPC backend: reinstall it "
             "with CMAKE_ARGS=\"-DGGML_RPC=on\" (`make install` does; see README, "
             "\"More than one machine\")")


class WorkerUnavailable(Exception):
    """A worker that cannot take this runner: down, busy, or speaking another version."""

    def __init__(self, endpoint: str, reason: str, *, busy: bool = False) -> None:
        super().__init__(f"RPC worker {endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason
        self.busy = busy  # it is there, serving another client


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker reported: its protocol version and each device's (free, total) bytes."""

    endpoint: str
    version: tuple[int, int, int]
    memory: tuple[tuple[int, int], ...]

    @property
    def free(self) -> int:
        return sum(free for free, _ in self.memory)


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """`host:port` → (host, port); the endpoint is already validated by config."""
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def _reason(err: OSError) -> str:
    """`connection refused`: the system's words for a socket error, whoever raised it."""
    return (os.strerror(err.errno) if err.errno else str(err) or type(err).__name__).lower()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the worker closed the connection")
        data += chunk
    return bytes(data)


def _call(sock: socket.socket, cmd: int, payload: bytes, reply_size: int) -> bytes:
    sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
    (size,) = struct.unpack("<Q", _recv_exact(sock, 8))
    if size != reply_size:
        raise ConnectionError(f"unexpected reply of {size} bytes to command {cmd}")
    return _recv_exact(sock, size)


def probe(endpoint: str, timeout: float = 5.0) -> WorkerInfo:
    """Ask a worker for its version, devices and free memory; raise WorkerUnavailable.

    A worker serving another client does not answer until that client leaves, so a HELLO
    without a reply within `timeout` means busy. The connection is closed afterwards; the
    worker then waits for the next client (the runner's own connection).
    """
    host, port = split_endpoint(endpoint)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise WorkerUnavailable(endpoint, f"no answer within {timeout:g} s") from None
    except OSError as err:
        raise WorkerUnavailable(endpoint, _reason(err)) from None
    with sock:
        try:
            hello = _call(sock, CMD_HELLO, bytes(CONN_CAPS_SIZE), 4 + CONN_CAPS_SIZE)
            version = (hello[0], hello[1], hello[2])
            if version[0] != PROTOCOL_MAJOR:
                raise WorkerUnavailable(
                    endpoint, f"it speaks RPC protocol {'.'.join(map(str, version))}, this "
                    f"server {PROTOCOL_MAJOR}.x: run the same llama-cpp-python on both")
            (count,) = struct.unpack("<I", _call(sock, CMD_DEVICE_COUNT, b"", 4))
            memory = []
            for device in range(count):
                reply = _call(sock, CMD_GET_DEVICE_MEMORY, struct.pack("<I", device), 16)
                free, total = struct.unpack("<QQ", reply)
                memory.append((free, total))
        except TimeoutError:
            raise WorkerUnavailable(
                endpoint, f"busy: no answer within {timeout:g} s (a worker serves one "
                "runner at a time)", busy=True) from None
        except OSError as err:
            raise WorkerUnavailable(endpoint, _reason(err)) from None
    if not memory:
        raise WorkerUnavailable(endpoint, "it has no devices")
    return WorkerInfo(endpoint, version, tuple(memory))


async def unreachable(endpoints: Sequence[str], timeout: float = 2.0) -> dict[str, str]:
    """The workers that do not answer now, each with the reason (for the error of a runner
    that died: which worker went away). A busy worker is there. A dying worker can still
    accept a connection for a moment, so each is asked for its HELLO, and asked again shortly
    when all seem alive."""

    def check(endpoint: str) -> str | None:
        try:
            probe(endpoint, timeout)
        except WorkerUnavailable as err:
            return None if err.busy else err.reason
        return None

    for attempt in range(2):
        if attempt:
            await asyncio.sleep(0.5)
        reasons = await asyncio.gather(*(asyncio.to_thread(check, e) for e in endpoints))
        gone = {e: r for e, r in zip(endpoints, reasons, strict=True) if r is not None}
        if gone:
            break
    return gone


@dataclass(frozen=True)
class Split:
    """How llama.cpp places a model: the last `offloaded` of its n_layer + 1 layers (the
    output layer counts) go to the RPC devices in the `tensor_split` proportions, the first
    ones stay on the local CPU."""

    offloaded: int
    tensor_split: tuple[float, ...]


def plan_split(n_layer: int, local_share: float, device_shares: Sequence[float],
               offloaded: int | None = None) -> Split:
    """Layers in proportion to the shares: `local_share` for this machine's CPU, one share
    per RPC device. `offloaded` (Ollama's num_gpu) fixes how many layers leave this machine.
    """
    layers = n_layer + 1
    remote = sum(device_shares)
    if offloaded is None:
        total = local_share + remote
        offloaded = round(layers * remote / total) if total > 0 else 0
    offloaded = max(0, min(layers, offloaded))
    if remote <= 0:
        offloaded = 0
    shares = tuple(float(s) for s in device_shares) if remote > 0 else ()
    return Split(offloaded, shares)


# A worker machine that vanishes (no reset, just silence) would leave the runner waiting
# forever on its reply: keepalive probes, and a bound on unacknowledged data, end the
# connection instead, which makes llama.cpp abort the runner with its RPC error.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 15, 5, 4
USER_TIMEOUT_MS = 60_000


def keep_alive_connections(endpoints: Sequence[str]) -> int:
    """Turn on TCP keepalive and a user timeout on this process's connections to `endpoints`
    (the sockets llama.cpp opened; found in /proc/self/fd). Returns how many were set."""
    peers = set()
    for endpoint in endpoints:
        host, port = split_endpoint(endpoint)
        with contextlib.suppress(OSError):
            peers.add((socket.gethostbyname(host), port))
    count = 0
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return 0
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            try:
                if sock.family != socket.AF_INET or sock.getpeername() not in peers:
                    continue
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
                count += 1
            except OSError:
                continue
    return count


def library_check() -> str:
    """'' when the installed llama-cpp-python has llama.cpp's RPC backend, else why not.
    Asked in a child process: the server itself never loads llama.cpp."""
    code = ("import sys\nfrom pollama.engine import rpc_backend\n"
            "sys.exit(0 if rpc_backend.supported() else 3)")
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # so the child imports this pollama
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"could not load llama-cpp-python to check it: {err}"
    if proc.returncode == 3:
        return NOT_BUILT
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"could not load llama-cpp-python: {tail}"
    return ""
