"""`pollama worker`: this machine's devices, served to other machines' runners over llama.cpp's
RPC protocol (`ggml_backend_rpc_start_server`, as llama.cpp's own `rpc-server`).

The C server blocks for good (an accept loop, one client at a time), so it runs in a child
process; the `pollama worker` process forwards Ctrl-C and SIGTERM to it and waits, and the child
dies with its parent (PR_SET_PDEATHSIG) if that one is killed outright.

With the tensor cache on (llama.cpp's `-c`), the worker keeps every large tensor a runner sends
in a file named by the hash of its bytes, so the next load of the same model sends only hashes.
llama.cpp writes those files in place and trusts them when read; a file cut short by a stop in
the middle of a write would load as wrong weights. So the child keeps a journal
(`.pollama-journal`: when it started, and each file llama.cpp reported saved) and, on stop and
on start, removes the files written since the last start that were never reported saved.

    python -m pollama.engine.worker --listen 127.0.0.1:50052 [--cache-dir DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pollama.config import DEFAULT_RPC_PORT, parse_rpc_endpoint

DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_RPC_PORT}"
JOURNAL = ".pollama-journal"
WARNING = (
    "llama.cpp's RPC protocol has no authentication and no encryption: whoever can reach this "
    "port can use this machine's devices and read what they compute. Run workers on a "
    "trusted network only, never on one open to others."
)


class WorkerError(Exception):
    """A worker that cannot start as asked (printed as `Error: ...`)."""


def listen_address(raw: str) -> str:
    """`address:port` the C server can bind: llama.cpp's RPC transport takes an IPv4 address,
    so a host name is resolved here (`localhost` → `127.0.0.1`)."""
    try:
        endpoint = parse_rpc_endpoint(raw)
    except ValueError as err:
        raise WorkerError(f"--listen {err}") from None
    host, _, port = endpoint.rpartition(":")
    try:
        address = socket.gethostbyname(host)
    except OSError as err:
        raise WorkerError(f"--listen {raw}: cannot resolve {host}: {err}") from None
    return f"{address}:{port}"


def is_loopback(endpoint: str) -> bool:
    return ipaddress.ip_address(endpoint.rpartition(":")[0]).is_loopback


# -- the `pollama worker` process ------------------------------------------------------------

def run(listen: str = DEFAULT_LISTEN, *, allow_remote: bool = False,
        cache_dir: Path | None = None, threads: int = 0) -> int:
    """Serve until Ctrl-C or SIGTERM (exit status 0), or until the server fails (its status).

    A non-loopback `listen` needs `allow_remote`, and prints llama.cpp's warning either way.
    `cache_dir` None turns the tensor cache off.
    """
    endpoint = listen_address(listen)
    if not is_loopback(endpoint):
        if not allow_remote:
            raise WorkerError(
                f"--listen {listen} lets other machines reach this worker. {WARNING} "
                "Add --allow-remote to serve beyond this machine anyway.")
        banner = "!" * 72
        print(f"\n{banner}\nWARNING: listening on {endpoint}, beyond this machine.\n{WARNING}\n"
              f"{banner}\n", file=sys.stderr, flush=True)
    args = [sys.executable, "-m", "pollama.engine.worker", "--listen", endpoint,
            "--threads", str(threads)]
    if cache_dir is not None:
        args += ["--cache-dir", os.fspath(cache_dir)]
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # so the child imports this pollama
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    # Its own session: a Ctrl-C reaches this process, which stops the child itself.
    child = subprocess.Popen(args, env=env, start_new_session=True)
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()  # a signal runs `stop`, then the wait goes on until the child ends
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping.is_set():
        print("pollama worker stopped", file=sys.stderr, flush=True)
        return 0
    return code if code > 0 else 1


# -- the child: the C server ------------------------------------------------------------------

class Journal:
    """The tensor cache's record of complete files (see the module docstring)."""

    def __init__(self, cache_dir: Path) -> None:
        self.dir = cache_dir
        self.path = cache_dir / JOURNAL
        self._lock = threading.Lock()

    def repair(self) -> list[str]:
        """Remove the files written since the journal's start that were not reported saved."""
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return []
        started = next((int(w[1]) for w in (line.split() for line in lines)
                        if len(w) == 2 and w[0] == "start" and w[1].isdigit()), None)
        if started is None:
            return []
        saved = {line[6:] for line in lines if line.startswith("saved ")}
        removed = []
        for entry in self.dir.iterdir():
            if entry.name.startswith(".") or entry.name in saved:
                continue
            with contextlib.suppress(OSError):
                if entry.is_file() and entry.stat().st_mtime_ns >= started:
                    entry.unlink()
                    removed.append(entry.name)
        return removed

    def start(self) -> None:
        """A new session: files from now on count only once reported saved."""
        tmp = self.path.with_name(JOURNAL + ".tmp")
        tmp.write_text(f"start {time.time_ns()}\n")
        os.replace(tmp, self.path)

    def saved(self, name: str) -> None:
        with self._lock, open(self.path, "a") as f:
            f.write(f"saved {name}\n")


def _linux_child_setup() -> None:
    """Linux (glibc): SIGTERM this process when its parent dies (a `kill -9` of `pollama
    worker`), and line-buffer C's stdout, where the server prints its devices and clients."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError, ValueError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        libc.setvbuf(ctypes.c_void_p.in_dll(libc, "stdout"), None, 1, 0)  # _IOLBF


def _log_to(journal: Journal | None) -> Any:
    """A llama.cpp log callback: lines to stderr; a saved cache file into the journal."""
    from llama_cpp import llama_cpp as C

    def log(_level: int, text: bytes, _user: Any) -> None:
        message = text.decode("utf-8", "replace")
        if journal is not None and "saved to '" in message:
            journal.saved(Path(message.split("saved to '", 1)[1].split("'", 1)[0]).name)
        sys.stderr.write(message)
        sys.stderr.flush()

    callback = C.llama_log_callback(log)
    C.llama_log_set(callback, None)
    return callback


def child_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pollama.engine.worker")
    p.add_argument("--listen", required=True, help="IPv4 address:port")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    parent = os.getppid()
    _linux_child_setup()
    if os.getppid() != parent:  # it died before the request took effect
        return 1
    from pollama.engine import rpc_backend
    from pollama.engine.model import physical_cores

    if not rpc_backend.supported():
        print(f"Error: {rpc_backend.NOT_BUILT}", file=sys.stderr)
        return 3
    journal = None
    if args.cache_dir:
        cache = Path(args.cache_dir)
        try:
            cache.mkdir(parents=True, exist_ok=True)
            journal = Journal(cache)
            removed = journal.repair()
            journal.start()
        except OSError as err:
            print(f"Error: tensor cache {cache}: {err}", file=sys.stderr)
            return 1
        if removed:
            print(f"removed {len(removed)} cache file(s) a stop cut short", file=sys.stderr)
    callback = _log_to(journal)
    devices = rpc_backend.local_devices()
    threads = args.threads if args.threads > 0 else physical_cores()
    ended = threading.Event()

    def serve() -> None:
        try:
            rpc_backend.start_server(args.listen, args.cache_dir, threads, devices)
        finally:
            ended.set()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=serve, name="rpc-server", daemon=True).start()
    while not stop.is_set() and not ended.is_set():
        stop.wait(0.5)
    if journal is not None:
        journal.repair()  # a write cut short by this stop
    sys.stdout.flush()
    sys.stderr.flush()
    del callback
    if ended.is_set() and not stop.is_set():
        print(f"Error: could not serve on {args.listen} (is the port in use, or the address "
              "not one of this machine's?)", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    os._exit(child_main())  # the server thread never returns: don't wait for it
