"""Ranged GETs of blob bytes, on the standard library's `http.client`.

The bulk of a pull goes through here rather than through httpx: `readinto` one reused buffer
costs about a third of the CPU of a new bytes object per read through h11, and on a fast link
the CPU is the limit (bench/bench_pull.py). Kept-alive connections are pooled per origin;
redirects are followed, with Authorization sent to the first host only. Proxies are chosen by
Go's rules (pollama/proxy.py): an http:// proxy gets absolute-URI requests, or a CONNECT tunnel
for https; a socks5:// one a SOCKS5 CONNECT (socksio, the protocol library httpx uses).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Callable
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from socksio import socks5

from pollama.proxy import ProxyError, proxy_for
from pollama.registry.client import MAX_REDIRECTS, REDIRECT_CODES, STALL_TIMEOUT, ssl_context
from pollama.registry.errors import RegistryError, RemoteNotFound

READ_SIZE = 1 << 20

Sink = Callable[[memoryview, int], None]


class RangeStalled(Exception):
    """No byte arrived for STALL_TIMEOUT seconds."""


class RangeBroken(Exception):
    """The connection failed or the body ended early; the range can be asked for again."""


class ReauthNeeded(Exception):
    """The registry answered 401 (a token expired); `challenge` is its WWW-Authenticate."""

    def __init__(self, challenge: str) -> None:
        super().__init__("401: token expired")
        self.challenge = challenge


class _SinkFailed(Exception):
    """Writing the bytes failed (a full disk): carried past the network error handling."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class RangeClient:
    """A pool of kept-alive connections for ranged GETs, shared by the transfer threads."""

    def __init__(self, user_agent: str) -> None:
        self.user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._busy: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()
        self._closed = False

    def fetch(self, url: str, start: int, end: int, headers: dict[str, str], sink: Sink,
              stop: threading.Event) -> tuple[str, int | None]:
        """GET bytes [start, end] of `url` and hand them to `sink(view, offset)` in order
        (all of them, unless `stop` is set).

        Returns the URL that served them (after redirects) and the size of the whole blob as
        the answer gave it (None if it did not)."""
        first_host = urlsplit(url).hostname
        headers = {**headers, "Range": f"bytes={start}-{end}", "User-Agent": self.user_agent}
        redirects = 0
        fresh = False
        while redirects <= MAX_REDIRECTS:
            parts = urlsplit(url)
            key = (parts.scheme, parts.hostname or "", parts.port or
                   (443 if parts.scheme == "https" else 80))
            conn, reused = self._take(key, fresh)
            reusable = False
            try:
                target, extra = self._target(conn, url, parts.path or "/", parts.query)
                try:
                    conn.request("GET", target, headers={**headers, **extra})
                    resp = conn.getresponse()
                except (OSError, http.client.HTTPException):
                    if not reused:
                        raise
                    fresh = True  # the server closed the idle connection: one more, new
                    continue
                fresh = False
                if resp.status in REDIRECT_CODES and resp.getheader("location"):
                    resp.read()
                    reusable = not resp.will_close
                    location = urljoin(url, resp.getheader("location", ""))
                    if urlsplit(location).hostname != parts.hostname:
                        headers.pop("Authorization", None)
                    url = location
                    redirects += 1
                    continue
                if resp.status == 401 and parts.hostname == first_host:
                    resp.read()
                    reusable = not resp.will_close
                    raise ReauthNeeded(resp.getheader("www-authenticate", ""))
                if resp.status == 404:
                    raise RemoteNotFound()
                if resp.status >= 400:
                    text = resp.read(4096).decode("utf-8", errors="replace")
                    raise RegistryError(f"{resp.status}: {text}", resp.status)
                if resp.status != 206 and not (resp.status == 200 and start == 0):
                    raise RegistryError(f"unexpected status code {resp.status} for a range")
                total = _total_size(resp, start)
                got = _read_body(resp, start, end, sink, stop)
                reusable = got == end + 1 - start and not resp.will_close
                return url, total
            except _SinkFailed as failed:
                raise failed.error from None  # the disk, not the network: not retried here
            except TimeoutError as err:
                raise RangeStalled() from err
            except (OSError, http.client.HTTPException) as err:
                raise RangeBroken(f"GET {url}: {err or type(err).__name__}") from err
            finally:
                self._give_back(key, conn, reusable)
        raise RegistryError(f"maximum redirects exceeded ({MAX_REDIRECTS}) for directURL")

    def close(self) -> None:
        """Close the idle connections, and break off the reads on the busy ones (their
        threads see an early end and return)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
            busy = list(self._busy)
        for conns in idle.values():
            for conn in conns:
                conn.close()
        for conn in busy:
            if conn.sock is not None:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)

    def _take(self, key: tuple[str, str, int],
              fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to the origin (unless `fresh`) or a new one; and whether it
        was idle."""
        with self._lock:
            idle = None if fresh else self._idle.get(key)
            conn, reused = (idle.pop(), True) if idle else (self._connect(*key), False)
            self._busy.add(conn)
            return conn, reused

    @staticmethod
    def _connect(scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        proxy_url = proxy_for(f"{scheme}://{host}:{port}/")
        proxy = urlsplit(proxy_url) if proxy_url else None
        if proxy is not None and proxy.scheme in ("socks5", "socks5h"):
            if scheme == "https":
                return _SocksHTTPSConnection(proxy, host, port, timeout=STALL_TIMEOUT,
                                             context=ssl_context())
            return _SocksHTTPConnection(proxy, host, port, timeout=STALL_TIMEOUT)
        if proxy is not None and proxy.scheme != "http":
            raise ProxyError(f"{proxy.scheme}:// proxies are not supported for downloads "
                             "(use http:// or socks5://)")
        if proxy is None:
            if scheme == "https":
                return http.client.HTTPSConnection(host, port, timeout=STALL_TIMEOUT,
                                                   context=ssl_context())
            return http.client.HTTPConnection(host, port, timeout=STALL_TIMEOUT)
        proxy_port = proxy.port or 80
        if scheme == "https":  # a CONNECT tunnel through the proxy
            conn = http.client.HTTPSConnection(proxy.hostname or "", proxy_port,
                                               timeout=STALL_TIMEOUT, context=ssl_context())
            conn.set_tunnel(host, port, headers=_proxy_authorization(proxy))
            return conn
        return http.client.HTTPConnection(proxy.hostname or "", proxy_port,
                                          timeout=STALL_TIMEOUT)

    @staticmethod
    def _target(conn: http.client.HTTPConnection, url: str, path: str,
                query: str) -> tuple[str, dict[str, str]]:
        """The request target: the absolute URL (and proxy credentials) through a plain-http
        proxy, else the path."""
        parts = urlsplit(url)
        if parts.scheme == "http" and not isinstance(conn, _SocksHTTPConnection):
            proxy_url = proxy_for(url)
            if proxy_url is not None:
                return url, _proxy_authorization(urlsplit(proxy_url))
        return f"{path}?{query}" if query else path, {}

    def _give_back(self, key: tuple[str, str, int], conn: http.client.HTTPConnection,
                   reusable: bool) -> None:
        with self._lock:
            self._busy.discard(conn)
        if reusable:
            with self._lock:
                if not self._closed:
                    self._idle.setdefault(key, []).append(conn)
                    return
        conn.close()


def _read_body(resp: http.client.HTTPResponse, start: int, end: int, sink: Sink,
               stop: threading.Event) -> int:
    """Read the body into one reused buffer; returns the bytes read (fewer only on `stop`)."""
    buffer = memoryview(bytearray(READ_SIZE))
    pos, want = start, end + 1 - start
    while pos <= end:
        if stop.is_set():
            resp.close()
            return pos - start
        n = resp.readinto(buffer[:min(READ_SIZE, end + 1 - pos)])
        if not n:
            raise RangeBroken(f"unexpected EOF after {pos - start} of {want} bytes")
        try:
            sink(buffer[:n], pos)
        except OSError as err:
            raise _SinkFailed(err) from err
        pos += n
    if resp.read(1):
        raise RegistryError("the registry sent more than the range asked for")
    return want


def _total_size(resp: http.client.HTTPResponse, start: int) -> int | None:
    """The blob's size from `Content-Range: bytes <start>-<end>/<size>` (or a 200's
    Content-Length); None when the answer does not say. A range that starts elsewhere than
    asked is refused."""
    if resp.status == 200:
        length = resp.getheader("content-length", "")
        return int(length) if length.isdigit() else None
    header = resp.getheader("content-range", "")
    unit, _, spec = header.partition(" ")
    span, _, size = spec.partition("/")
    first = span.partition("-")[0]
    if unit != "bytes" or not first.isdigit():
        return None
    if int(first) != start:
        raise RegistryError(f"the registry answered a range for {header!r} to one from {start}")
    return int(size) if size.isdigit() else None


def _proxy_authorization(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    user_pass = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(user_pass.encode()).decode()}


def _socks_connect(proxy: SplitResult, host: str, port: int,
                   timeout: float | None) -> socket.socket:
    """A socket to host:port through a SOCKS5 proxy (the proxy resolves the name)."""
    sock = socket.create_connection((proxy.hostname or "", proxy.port or 1080), timeout=timeout)
    try:
        conn = socks5.SOCKS5Connection()
        methods = [socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED]
        if proxy.username is not None:
            methods.append(socks5.SOCKS5AuthMethod.USERNAME_PASSWORD)
        conn.send(socks5.SOCKS5AuthMethodsRequest(methods))
        sock.sendall(conn.data_to_send())
        chosen = conn.receive_data(sock.recv(1024))
        if not isinstance(chosen, socks5.SOCKS5AuthReply):
            raise OSError("the SOCKS proxy answered out of turn")
        if chosen.method == socks5.SOCKS5AuthMethod.USERNAME_PASSWORD:
            conn.send(socks5.SOCKS5UsernamePasswordRequest(
                unquote(proxy.username or "").encode(), unquote(proxy.password or "").encode()))
            sock.sendall(conn.data_to_send())
            auth = conn.receive_data(sock.recv(1024))
            if not isinstance(auth, socks5.SOCKS5UsernamePasswordReply) or not auth.success:
                raise OSError("the SOCKS proxy refused the username and password")
        elif chosen.method != socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED:
            raise OSError("the SOCKS proxy wants an authentication method pollama lacks")
        conn.send(socks5.SOCKS5CommandRequest.from_address(socks5.SOCKS5Command.CONNECT,
                                                           (host, port)))
        sock.sendall(conn.data_to_send())
        reply = conn.receive_data(sock.recv(1024))
        if not isinstance(reply, socks5.SOCKS5Reply):
            raise OSError("the SOCKS proxy answered out of turn")
        if reply.reply_code != socks5.SOCKS5ReplyCode.SUCCEEDED:
            raise OSError(f"the SOCKS proxy could not connect to {host}:{port}: "
                          f"{reply.reply_code.name.lower().replace('_', ' ')}")
        return sock
    except BaseException:
        sock.close()
        raise


class _SocksHTTPConnection(http.client.HTTPConnection):
    def __init__(self, proxy: SplitResult, host: str, port: int, *, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._proxy = proxy

    def connect(self) -> None:
        self.sock = _socks_connect(self._proxy, self.host, self.port, self.timeout)


class _SocksHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, proxy: SplitResult, host: str, port: int, *, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._proxy = proxy
        self._ssl_context = context

    def connect(self) -> None:
        sock = _socks_connect(self._proxy, self.host, self.port, self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)
