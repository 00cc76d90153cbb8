"""The HTTP client the CLI uses: Ollama's API over httpx, NDJSON streams, server auto-start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx

from pollama import __version__
from pollama.config import Config
from pollama.proxy import proxy_for


class ClientError(Exception):
    """An error the server answered (or the connection failed with), as the user should see it."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


def _error_from(response: httpx.Response) -> ClientError:
    try:
        text = response.read().decode(errors="replace")
    except httpx.HTTPError:
        text = ""
    try:
        message = json.loads(text).get("error") or text
    except (ValueError, AttributeError):
        message = text.strip() or response.reason_phrase
    return ClientError(str(message), response.status_code)


class Client:
    """A pollama/Ollama server at `config.host`."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config.from_env()
        self.base_url = self.config.host.url
        headers = {"User-Agent": f"pollama/{__version__} ({sys.platform}) Python"}
        key = os.environ.get("OLLAMA_API_KEY", "").strip()
        if key:  # a server started with OLLAMA_API_KEYS wants one of them (beyond Ollama)
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(10.0, read=None),
            headers=headers,
            proxy=proxy_for(self.base_url), trust_env=False,  # Go's proxy rules (proxy.py)
        )

    def close(self) -> None:
        self._http.close()

    # -- server lifecycle ------------------------------------------------------------------

    def heartbeat(self) -> bool:
        try:
            return self._http.head("/", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def ensure_server(self, *, quiet: bool = False) -> None:
        """Start `pollama serve` in the background when nothing answers (Ollama makes you)."""
        if self.heartbeat():
            return
        host = self.config.host.host
        if host not in ("", "127.0.0.1", "localhost", "0.0.0.0", "::1", "::"):
            raise ClientError(f"could not connect to ollama server at {self.base_url}, "
                              "run 'pollama serve' to start it")
        log_dir = self.config.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "server.log"
        with open(log_path, "ab") as log_file:
            start = log_file.tell()
            process = subprocess.Popen(
                [sys.executable, "-m", "pollama", "serve"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, env=os.environ.copy(),
            )
        if not quiet:
            print(f"Started pollama server in the background (log: {log_path})", file=sys.stderr)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.heartbeat():
                return
            if process.poll() is not None:
                tail = log_path.read_bytes()[start:].decode(errors="replace").strip()
                last = tail.splitlines()[-1] if tail else f"exit status {process.returncode}"
                raise ClientError(f"the server could not start: {last} (log: {log_path})")
            time.sleep(0.1)
        raise ClientError(f"timed out waiting for server to start, see {log_path}")

    # -- requests --------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as err:
            raise ClientError(f"could not connect to ollama server: {err}") from err
        if response.status_code >= 400:
            raise _error_from(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def stream(self, path: str, body: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
        """POST and yield each NDJSON object; an `{"error"}` line raises ClientError."""
        try:
            with self._http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    raise _error_from(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    if isinstance(obj, dict) and obj.get("error"):
                        raise ClientError(str(obj["error"]), response.status_code)
                    yield obj
        except httpx.HTTPError as err:
            raise ClientError(f"connection to the server failed: {err}") from err

    def download(self, path: str, dest: Path) -> None:
        """GET `path` into `dest`, atomically: a partial file never takes the final name."""
        temp = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    raise _error_from(response)
                with open(temp, "wb") as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
            os.replace(temp, dest)
        except httpx.HTTPError as err:
            raise ClientError(f"connection to the server failed: {err}") from err
        finally:
            temp.unlink(missing_ok=True)

    def upload(self, path: str, source: Path) -> Any:
        """POST a file's bytes to `path`, streaming; returns the JSON answer."""
        def chunks() -> Iterator[bytes]:
            with open(source, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        try:
            response = self._http.post(path, content=chunks(),
                                       headers={"Content-Length": str(source.stat().st_size)})
        except httpx.HTTPError as err:
            raise ClientError(f"connection to the server failed: {err}") from err
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()

    def head_blob(self, digest: str) -> bool:
        response = self._http.head(f"/api/blobs/{digest}")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise _error_from(response)
        return True

    def upload_blob(self, digest: str, path: Path, on_progress: Any = None) -> None:
        """Upload a file as a blob, streaming it; `on_progress(sent, total)` follows along."""
        total = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            sent = 0
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    sent += len(chunk)
                    if on_progress:
                        on_progress(sent, total)
                    yield chunk

        response = self._http.post(f"/api/blobs/{digest}", content=chunks(),
                                   headers={"Content-Length": str(total)})
        if response.status_code >= 400:
            raise _error_from(response)
