"""Fault injection for the tests: mounts (a small disk, a read-only folder), runner and server
processes to kill, damaged GGUF files, and the checks that a store and a conversation database
came through whole.

Mounts. `Mounts()` makes its mounts in a user + mount namespace of its own when the kernel
allows it (`unshare --user --map-root-user --mount`, unprivileged, no trace in the host's mount
table), else in the host's namespace when the tests run as root, else the test skips. A server
that must see the mounts runs with `Mounts.launcher` before its command (`nsenter` into the
namespace); the test itself reaches those files through `Mounts.view(path)`
(`/proc/<holder>/root/...`: read, write, list and statvfs work there; never `realpath` such a
path, nor open an SQLite file through it — both follow the magic link to the host's view).

    mounts = Mounts()
    mounts.tmpfs(disk, "40m")                 # a 40 MB disk, full when a test fills it
    server = Server(...); server.launcher = mounts.launcher
    mounts.read_only(folder, True)            # EROFS for every writer, root included
    mounts.close()

Consistency. `check_store(models)` reads every manifest and every blob: `problems` lists what
a user would trip on (a manifest that does not parse or points at a missing or wrong-sized
blob, a blob whose bytes do not hash to its name), `leftovers` the temp and partial files that
the next pull resumes or a prune removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pollama.formats.modelfile import file_digest
from tests.helpers import Server

__all__ = ["GGUFLayout", "Mounts", "StoreCheck", "alive", "check_store", "conversation_db",
           "cpu_seconds", "fill", "free_bytes", "gguf_layout", "kill9", "make_old", "patched",
           "runner_pids", "wait_for"]

_BLOB = re.compile(r"sha256-[0-9a-f]{64}")


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 120.0,
             interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy and return it; fail the test after `timeout` (a hang
    guard, never a timing the test asserts)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(interval)


# -- processes ---------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runner_pids(server: Server) -> list[int]:
    """The runner processes of a server (its children running `pollama.engine.runner`)."""
    assert server.process is not None
    parent = server.process.pid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None or int(fields[1]) != parent or fields[0] in ("Z", "X"):
            continue
        with contextlib.suppress(OSError):
            if b"pollama.engine.runner" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return sorted(found)


# -- mounts ------------------------------------------------------------------------------------


def _userns_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                           capture_output=True)
    return probe.returncode == 0


class Mounts:
    """Mounts for one test; see the module's docstring."""

    def __init__(self) -> None:
        self._holder: subprocess.Popen[bytes] | None = None
        self._made: list[Path] = []
        if _userns_works():
            self._holder = subprocess.Popen(
                ["unshare", "--user", "--map-root-user", "--mount", "sleep", "infinity"])
            wait_for("the namespace", lambda: Path(f"/proc/{self._holder.pid}/ns/mnt").exists()
                     and os.readlink(f"/proc/{self._holder.pid}/ns/mnt")
                     != os.readlink("/proc/self/ns/mnt"), timeout=30)
        elif os.geteuid() != 0:
            pytest.skip("cannot mount here: no user namespaces (unshare --user) and not root")

    @property
    def namespaced(self) -> bool:
        return self._holder is not None

    @property
    def launcher(self) -> tuple[str, ...]:
        """A command prefix that runs a process where it sees these mounts."""
        if self._holder is None:
            return ()
        return ("nsenter", f"--target={self._holder.pid}", "--user", "--mount",
                "--preserve-credentials")

    def view(self, path: Path) -> Path:
        """`path` as this test process sees it, through the mounts."""
        if self._holder is None:
            return path
        return Path(f"/proc/{self._holder.pid}/root{path.resolve()}")

    def _mount(self, *args: str) -> None:
        done = subprocess.run([*self.launcher, "mount", *args], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mount {' '.join(args)} refused: {done.stderr.strip()}")

    def tmpfs(self, path: Path, size: str) -> Path:
        """Mount a tmpfs of `size` (e.g. "40m") on the existing directory `path`."""
        self._mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        self._made.append(path)
        return path

    def read_only(self, path: Path, read_only: bool = True) -> None:
        """Make the directory `path` read-only for every process that sees these mounts (a
        read-only bind mount of it on itself), or writable again."""
        if path not in self._made:
            self._mount("--bind", str(path), str(path))
            self._made.append(path)
        self._mount("-o", f"remount,bind,{'ro' if read_only else 'rw'}", str(path))

    def close(self) -> None:
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            self._holder = None
        else:
            for path in reversed(self._made):
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
        self._made.clear()


def fill(path: Path) -> int:
    """Write zeros into `path` until the disk is full; the bytes written."""
    written = 0
    with contextlib.suppress(OSError), open(path, "wb", buffering=0) as f:
        while True:
            written += f.write(b"\0" * (1 << 20))
    with contextlib.suppress(OSError), open(path, "ab", buffering=0) as f:
        while True:  # the last few KiB
            written += f.write(b"\0" * 4096)
    return written


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# -- the store and the conversation database --------------------------------------------------


@dataclass
class StoreCheck:
    """What `check_store` found in a models folder."""

    manifests: dict[str, set[str]] = field(default_factory=dict)  # name → digests it uses
    blobs: set[str] = field(default_factory=set)  # complete blobs, as `sha256:<hex>`
    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # temp and partial files

    @property
    def unreferenced(self) -> set[str]:
        used = set().union(*self.manifests.values()) if self.manifests else set()
        return self.blobs - used


def check_store(models: Path) -> StoreCheck:
    """Check every manifest and blob of a models folder (see the module's docstring)."""
    check = StoreCheck()
    blob_dir, manifest_dir = models / "blobs", models / "manifests"
    if blob_dir.is_dir():
        for entry in sorted(blob_dir.iterdir()):
            if not _BLOB.fullmatch(entry.name):
                check.leftovers.append(entry.name)
                continue
            digest = entry.name.replace("-", ":", 1)
            check.blobs.add(digest)
            if file_digest(entry) != digest:
                check.problems.append(f"blob {entry.name} does not hash to its name")
    if manifest_dir.is_dir():
        for path in sorted(manifest_dir.rglob("*")):
            if path.is_dir():
                continue
            rel = path.relative_to(manifest_dir)
            if path.name.startswith("."):
                check.leftovers.append(f"manifests/{rel}")
                continue
            try:
                data = json.loads(path.read_bytes())
                layers = [data["config"], *data.get("layers", [])]
                used = {layer["digest"]: int(layer["size"]) for layer in layers}
            except (ValueError, KeyError, TypeError) as err:
                check.problems.append(f"manifest {rel} does not parse: {err}")
                continue
            check.manifests[str(rel)] = set(used)
            for digest, size in used.items():
                blob = blob_dir / digest.replace(":", "-")
                if not blob.is_file():
                    check.problems.append(f"manifest {rel} needs missing blob {digest}")
                elif blob.stat().st_size != size:
                    check.problems.append(f"manifest {rel}: blob {digest} has "
                                          f"{blob.stat().st_size} bytes, not {size}")
    return check


def make_old(paths: list[Path], seconds: float = 2 * 3600) -> None:
    """Backdate files, so a prune (which spares files younger than an hour) considers them."""
    when = time.time() - seconds
    for path in paths:
        os.utime(path, (when, when))


_DB_CHECK = """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])  # as the server opens it: recovers a WAL a kill left
integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
rows = conn.execute("SELECT conversation_id, role, content FROM messages "
                    "ORDER BY conversation_id, id").fetchall()
print(json.dumps([integrity, rows]))
"""


def conversation_db(db: Path, launcher: tuple[str, ...] = ()) -> tuple[str, list[tuple[str, ...]]]:
    """`PRAGMA integrity_check` of a conversation database and its messages (conversation id,
    role, content) in order. Run in a process of its own, with `launcher` where the database
    lies on a test's mount (SQLite resolves the `/proc/<pid>/root` link a view goes through)."""
    done = subprocess.run([*launcher, sys.executable, "-c", _DB_CHECK, str(db)],
                          capture_output=True, text=True, check=True)
    integrity, rows = json.loads(done.stdout)
    return integrity, [tuple(row) for row in rows]


# -- damaged GGUF files -----------------------------------------------------------------------


@dataclass
class GGUFLayout:
    """Where the fields a damaged copy changes sit in a GGUF file (byte offsets)."""

    size: int
    n_tensors_at: int
    n_kv_at: int
    first_key_length_at: int
    array_count_at: dict[str, int]  # array key → the offset of its element count
    tensor_offset_at: dict[str, int]  # tensor name → the offset of its data offset


def gguf_layout(path: Path) -> GGUFLayout:
    """Walk a GGUF v3 header (well-formed: this reads the good file a test damages)."""
    data = path.read_bytes()
    pos = 4 + 4
    n_tensors_at, pos = pos, pos + 8
    n_kv_at, pos = pos, pos + 8
    n_tensors = struct.unpack_from("<Q", data, n_tensors_at)[0]
    n_kv = struct.unpack_from("<Q", data, n_kv_at)[0]
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string(at: int) -> tuple[str, int]:
        length = struct.unpack_from("<Q", data, at)[0]
        return data[at + 8:at + 8 + length].decode("utf-8", "replace"), at + 8 + length

    def skip_value(kind: int, at: int) -> int:
        if kind == 8:
            return string(at)[1]
        if kind == 9:
            inner, count = struct.unpack_from("<IQ", data, at)
            at += 12
            if inner == 8:
                for _ in range(count):
                    at = string(at)[1]
                return at
            return at + count * sizes[inner]
        return at + sizes[kind]

    arrays: dict[str, int] = {}
    first_key_length_at = pos
    for _ in range(n_kv):
        key, pos = string(pos)
        kind = struct.unpack_from("<I", data, pos)[0]
        pos += 4
        if kind == 9:
            arrays[key] = pos + 4
        pos = skip_value(kind, pos)
    offsets: dict[str, int] = {}
    for _ in range(n_tensors):
        name, pos = string(pos)
        dims = struct.unpack_from("<I", data, pos)[0]
        pos += 4 + 8 * dims + 4
        offsets[name] = pos
        pos += 8
    return GGUFLayout(len(data), n_tensors_at, n_kv_at, first_key_length_at, arrays, offsets)


def patched(data: bytes, at: int, value: int, width: int = 8) -> bytes:
    """`data` with the little-endian unsigned integer at `at` replaced."""
    return data[:at] + value.to_bytes(width, "little") + data[at + width:]


def kill9(server: Server) -> list[int]:
    """SIGKILL the server alone (as the OOM killer would) and return its runners' pids: they
    must end by themselves, their stdin closed."""
    assert server.process is not None
    runners = runner_pids(server)
    server.process.kill()
    server.process.wait()
    server._log.close()
    return runners
